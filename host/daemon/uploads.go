package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bounds of how often the uploads are swept: a quarter of
// Config.UploadTTL, within these.
const (
	minSweepEvery = 10 * time.Millisecond
	maxSweepEvery = time.Hour
)

// orphanGrace is the least age of a file of uploads/ that no record names
// before a sweep removes it: an upload being written (NAME.part), or one
// written whose record is being committed, is younger.
const orphanGrace = time.Hour

// sweepLoop sweeps the uploads now, then every every, until Close.
func (d *Daemon) sweepLoop(every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if n, err := d.sweepUploads(time.Now()); err != nil {
			if !errors.Is(err, errStoreClosed) {
				d.log.Warn("sweeping the uploads", "err", err)
			}
		} else if n > 0 {
			d.log.Info("old uploads removed", "uploads", n, "ttl", d.cfg.UploadTTL)
		}
		select {
		case <-d.closed:
			return
		case <-tick.C:
		}
	}
}

// sweepUploads removes the uploads older than Config.UploadTTL at now,
// their records in one commit first, then their files, and answers how
// many. CreateTask links an upload into the task's staged inputs before
// the commit storing the task, which checks that the upload's record is
// still there: so a task stored has its input (its own link to the file),
// and a CreateTask racing with the sweep either sees the record, and had
// linked the file before the sweep removes it, or fails, asking for the
// file again. Then it removes the files of uploads/ that no record names
// (an upload cut short by a crash, a removal that failed), when older than
// the TTL and orphanGrace.
func (d *Daemon) sweepUploads(now time.Time) (int, error) {
	ttl := d.cfg.UploadTTL
	if ttl <= 0 {
		return 0, nil
	}
	expired := func(rec *uploadRec) bool { return !now.Before(rec.Created.Add(ttl)) }
	// A read first: most sweeps find nothing, and commit nothing.
	var old []string
	err := d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bUploads).ForEach(func(k, v []byte) error {
			var rec uploadRec
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("upload %q: %w", k, err)
			}
			if expired(&rec) {
				old = append(old, rec.ID)
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("reading the uploads: %w", err)
	}
	var gone []string
	if len(old) > 0 {
		err = d.w.update(func(tx *bolt.Tx) error {
			gone = gone[:0]
			b := tx.Bucket(bUploads)
			for _, id := range old {
				rec, err := getJSON[uploadRec](b, []byte(id))
				if errors.Is(err, errNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if !expired(rec) {
					continue
				}
				if err := b.Delete([]byte(id)); err != nil {
					return err
				}
				gone = append(gone, id)
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("deleting old uploads: %w", err)
		}
	}
	var errs []error
	for _, id := range gone {
		if err := os.Remove(d.uploadPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err) // the next sweep removes it as an orphan
		}
	}
	errs = append(errs, d.sweepOrphans(now, max(ttl, orphanGrace)))
	return len(gone), errors.Join(errs...)
}

// sweepOrphans removes the files of uploads/ that no upload record names
// and that have not been written for grace.
func (d *Daemon) sweepOrphans(now time.Time, grace time.Duration) error {
	dir := filepath.Join(d.cfg.DataDir, "uploads")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	var errs []error
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || now.Sub(fi.ModTime()) < grace {
			continue // gone meanwhile, or young
		}
		id := strings.TrimSuffix(e.Name(), ".part")
		if id == e.Name() {
			var known bool
			err := d.db.View(func(tx *bolt.Tx) error {
				known = tx.Bucket(bUploads).Get([]byte(id)) != nil
				return nil
			})
			if err != nil || known {
				continue
			}
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
