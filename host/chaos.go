package host

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// ChaosKind is a way the host sabotages an attempt on purpose.
type ChaosKind string

// The kinds of chaos.
const (
	// ChaosCrash kills the provider as Compute is called: the attempt fails
	// as a crash, and nothing is copied back even if it answered first.
	ChaosCrash ChaosKind = "crash"
	// ChaosHang makes the provider stall: the host waits for the attempt's
	// deadline (RunConfig.SubtaskTimeout) as for a provider that does not
	// answer, then kills it; the attempt fails as a timeout. Each costs a
	// whole SubtaskTimeout, so set a short one with it.
	ChaosHang ChaosKind = "hang"
	// ChaosWrong alters the output once it is copied back, before Verify:
	// every byte is inverted (an empty file gets one byte), so no check
	// can take it for the original.
	ChaosWrong ChaosKind = "wrong"
	// ChaosGarbage replaces the output, once it is copied back, with as
	// many random bytes (at least 64).
	ChaosGarbage ChaosKind = "garbage"
)

// chaosKinds returns the kinds in the order in which a draw is matched
// against the rates.
func chaosKinds() [4]ChaosKind {
	return [...]ChaosKind{ChaosCrash, ChaosHang, ChaosWrong, ChaosGarbage}
}

// Chaos is fault injection: the host sabotages attempts at the given rates
// to show that a task still ends right. Each rate is the probability, from
// 0 to 1, that an attempt is sabotaged that way; together they add up to
// at most 1.
//
// Decisions are reproducible, whatever the timing: the k-th attempt at a
// part is sabotaged or not by a draw from a generator seeded with Seed, the
// part and k. A part is known by its subtask params, which are the same for
// every attempt at it, so this needs nothing app-specific. (A draw keyed by
// the subtask's place in the run would not do: verification runs beside
// computing, so which part is handed out n-th depends on when verdicts come
// back.) So two runs with the same seed sabotage the same attempts of the
// same parts in the same ways.
//
// So that chaos never fails a task the app could finish, at most one
// attempt per part is sabotaged: the app's own limit on a part's attempts
// (gtask apps: 3 by default) then always leaves room to recover, and the
// failures chaos causes do not count against RunConfig.MaxAttempts.
type Chaos struct {
	Crash, Hang, Wrong, Garbage float64
	// Seed seeds the draws. Default 0.
	Seed uint64
}

// ParseChaos reads chaos from its command-line form, comma-separated
// key=value pairs: "crash=0.1,hang=0.05,wrong=0.1,garbage=0.05,seed=7".
// Rates are numbers from 0 to 1 (a missing one is 0) adding up to at most
// 1; seed is an unsigned integer (default 0). A key may appear once. The
// empty string means no chaos: nil, and no error. Errors name the pair at
// fault.
func ParseChaos(s string) (*Chaos, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	c := &Chaos{}
	seen := map[string]bool{}
	for pair := range strings.SplitSeq(s, ",") {
		pair = strings.TrimSpace(pair)
		key, val, ok := strings.Cut(pair, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || key == "" || val == "" {
			return nil, fmt.Errorf("chaos: %q: want key=value, e.g. crash=0.1", pair)
		}
		if seen[key] {
			return nil, fmt.Errorf("chaos: %q: %s is given twice", pair, key)
		}
		seen[key] = true
		if key == "seed" {
			seed, err := strconv.ParseUint(val, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("chaos: %q: the seed must be an unsigned integer", pair)
			}
			c.Seed = seed
			continue
		}
		rate := c.rate(ChaosKind(key))
		if rate == nil {
			return nil, fmt.Errorf("chaos: %q: unknown key %q; want crash, hang, wrong, garbage or seed", pair, key)
		}
		f, err := strconv.ParseFloat(val, 64)
		if err != nil || !(f >= 0 && f <= 1) { // NaN fails too
			return nil, fmt.Errorf("chaos: %q: the %s rate must be a number from 0 to 1", pair, key)
		}
		*rate = f
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// rate returns the field holding kind's rate, or nil for no such kind.
func (c *Chaos) rate(kind ChaosKind) *float64 {
	switch kind {
	case ChaosCrash:
		return &c.Crash
	case ChaosHang:
		return &c.Hang
	case ChaosWrong:
		return &c.Wrong
	case ChaosGarbage:
		return &c.Garbage
	}
	return nil
}

// Validate checks the rates: each from 0 to 1, adding up to at most 1.
func (c *Chaos) Validate() error {
	sum := 0.0
	for _, k := range chaosKinds() {
		r := *c.rate(k)
		if !(r >= 0 && r <= 1) { // NaN fails too
			return fmt.Errorf("chaos: the %s rate is %v; it must be from 0 to 1", k, r)
		}
		sum += r
	}
	// A little slack for decimal rates that add up to 1 in decimal but not
	// quite in binary (0.1+0.2+0.3+0.4).
	if sum > 1+1e-9 {
		return fmt.Errorf("chaos: the rates add up to %v; they must add up to at most 1", sum)
	}
	return nil
}

// String is the command-line form of c, which ParseChaos reads back.
func (c *Chaos) String() string {
	if c == nil {
		return ""
	}
	var parts []string
	for _, k := range chaosKinds() {
		if r := *c.rate(k); r != 0 {
			parts = append(parts, fmt.Sprintf("%s=%s", k, strconv.FormatFloat(r, 'g', -1, 64)))
		}
	}
	return strings.Join(append(parts, fmt.Sprintf("seed=%d", c.Seed)), ",")
}

// decide returns what chaos does to the attempt-th attempt at the part
// known by key ("" for nothing), and the generator its sabotage draws from
// (garbage bytes).
func (c *Chaos) decide(key [32]byte, attempt int) (ChaosKind, *rand.Rand) {
	if c == nil {
		return "", nil
	}
	h := sha256.New()
	h.Write(key[:])
	binary.Write(h, binary.BigEndian, uint64(attempt))
	rng := rand.New(rand.NewPCG(c.Seed, binary.BigEndian.Uint64(h.Sum(nil))))
	u := rng.Float64()
	for _, k := range chaosKinds() {
		r := *c.rate(k)
		if u < r {
			return k, rng
		}
		u -= r
	}
	return "", nil
}
