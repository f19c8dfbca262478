package host

import (
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBan: a node that failed is banned once, whether its slot still holds
// it (the slot goes on as a new node) or has gone on as another node
// already (node_replaced came before the verdict that failed it).
func TestBan(t *testing.T) {
	var evs []Event
	r := &run{
		slots:  []slot{{node: "node-0"}, {node: "node-1"}},
		banned: map[string]bool{},
		rec:    newRecorder("t1", io.Discard, func(ev Event) { evs = append(evs, ev) }),
	}
	p := &partState{index: -1}
	at := func(slot int, node, id string) *attempt {
		return &attempt{id: id, slot: slot, node: node, part: p}
	}

	// Slot 0 still holds node-0: it goes on as node-2.
	r.ban(at(0, "node-0", "s1"), "rejected")
	require.Len(t, evs, 1)
	assert.Equal(t, EventNodeBanned, evs[0].Kind)
	assert.Equal(t, "node-0", evs[0].Node)
	assert.Equal(t, "node-2", evs[0].NewNode)
	assert.Equal(t, 0, *evs[0].Slot)
	assert.Equal(t, "node-2", r.slots[0].node)

	// Another failed attempt of node-0, judged later: banned already.
	r.ban(at(0, "node-0", "s2"), "rejected")
	assert.Len(t, evs, 1)

	// Slot 1 went on from node-1 to node-3 before node-1's result was
	// rejected: node-1 is banned, and slot 1 keeps node-3, which did
	// nothing wrong.
	r.replaceNode(1, EventNodeReplaced, "nothing for node-1")
	require.Len(t, evs, 2)
	assert.Equal(t, "node-3", r.slots[1].node)
	r.ban(at(1, "node-1", "s3"), "rejected")
	require.Len(t, evs, 3)
	assert.Equal(t, EventNodeBanned, evs[2].Kind)
	assert.Equal(t, "node-1", evs[2].Node)
	assert.Empty(t, evs[2].NewNode)
	assert.Equal(t, 1, *evs[2].Slot)
	assert.Contains(t, evs[2].Reason, "node-3")
	assert.Equal(t, "node-3", r.slots[1].node)

	// And node-1 only once.
	r.ban(at(1, "node-1", "s4"), "rejected")
	assert.Len(t, evs, 3)
	assert.Equal(t, 2, r.rec.snapshot().Banned)
	assert.Equal(t, map[string]bool{"node-0": true, "node-1": true}, r.banned)
}
