package main

import (
	"encoding/binary"
	"os"
)

// commits reads how many write transactions the bbolt file at path has
// committed: the txid of its newer meta page. The daemon holds the file's
// lock, so bbolt cannot open it here; its two meta pages are read as
// bytes instead (page header 16 bytes, then magic, version, page size,
// flags, root bucket (16 bytes), freelist, high water mark, txid). Each
// commit of bbolt is two fdatasyncs (the pages, then the meta page). It
// returns -1 when the file does not look like a bbolt file of this
// machine's byte order.
func commits(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	const (
		magic     = 0xED0CDAED
		offMagic  = 16
		offPgSize = 24
		offTxid   = 64
	)
	buf := make([]byte, 72)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return -1
	}
	le := binary.LittleEndian
	if le.Uint32(buf[offMagic:]) != magic {
		return -1
	}
	best := int64(le.Uint64(buf[offTxid:]))
	pageSize := int64(le.Uint32(buf[offPgSize:]))
	if _, err := f.ReadAt(buf, pageSize); err == nil && le.Uint32(buf[offMagic:]) == magic {
		best = max(best, int64(le.Uint64(buf[offTxid:])))
	}
	return best
}
