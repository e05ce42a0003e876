package fleet

import (
	"bytes"
	"errors"
	"sync"

	"github.com/tiercache/tiercache/driver"
)

// A process hears the tracking invalidations of its own writes too, and
// dropping its copy on each would cost a read of the shared tier after
// every Set and fill (and lose L1 hits that the messages, which a process
// does not hear from itself, keep). But Redis merges the invalidations of
// one key in one turn of its event loop, so an invalidation of a key this
// process just wrote may also stand for another client's write: it cannot
// be ignored. So the process remembers the bytes of its writes in flight
// (own), and on an invalidation of one of those keys reads the key (the
// copy may be held, or about to be: the fill's reply races the message): if it
// still holds those bytes, the copy (made from them) stands; anything else
// (other bytes, nothing, an error, another invalidation of the key during
// the read) drops it. A check that cannot start (too many at once) drops
// too. Dropping is always safe; keeping is only ever done on the
// evidence of the shared tier itself.
type own struct {
	mu     sync.Mutex
	writes map[string]*ownWrite // by key
}

type ownWrite struct {
	value    []byte
	checking bool // a read of the key is in flight
	dirty    bool // another invalidation came during it
}

// maxOwn bounds the writes remembered; past it writes are not, and their
// invalidations drop copies.
const maxOwn = 4096

// maxOwnChecks bounds the reads in flight; an invalidation that finds
// them all busy drops its copies.
const maxOwnChecks = 16

// wrote remembers that this process is writing value under key (before the
// write is sent, so that its invalidation cannot come first).
func (o *own) wrote(key string, value []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.writes == nil {
		o.writes = make(map[string]*ownWrite)
	}
	if w := o.writes[key]; w != nil {
		w.value = value
		w.dirty = w.checking // the read in flight may have read the older write
		return
	}
	if len(o.writes) < maxOwn {
		o.writes[key] = &ownWrite{value: value}
	}
}

// failed forgets a write that was not stored (a failed Set, a fill whose
// lock was lost): no invalidation will come for it.
func (o *own) failed(key string, value []byte) {
	o.mu.Lock()
	if w := o.writes[key]; w != nil && !w.checking && bytes.Equal(w.value, value) {
		delete(o.writes, key)
	}
	o.mu.Unlock()
}

// forget forgets every write (after a flush: nothing is left to keep).
func (o *own) forget() {
	o.mu.Lock()
	o.writes = nil
	o.mu.Unlock()
}

// invalidated decides what an invalidation of key does: drop (no write of
// this process is remembered, or a check is running), or check (the caller
// must start one and report with checked).
func (o *own) invalidated(key string) (check bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	w := o.writes[key]
	switch {
	case w == nil:
		return false
	case w.checking:
		w.dirty = true
		return false
	}
	w.checking = true
	return true
}

// checked reports what a check read (err: the read failed) and whether
// the copy stands.
func (o *own) checked(key string, got []byte, err error) (keep bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	w := o.writes[key]
	if w == nil {
		return false // forgotten: a flush dropped the copy already
	}
	delete(o.writes, key)
	return err == nil && !w.dirty && got != nil && bytes.Equal(got, w.value)
}

// checkOwn checks invalidations of keys (of ids) that may be this
// process's own writes, in the background, with one read of them all; each
// copy is dropped unless the shared tier still holds the bytes written.
//
// The read is a hint's, not a request's: it bypasses the circuit breaker's
// counting (a failure only drops copies) and is not made while the breaker
// is open; and one invalidation message checks at most driver.MaxBatch
// keys (a fill of more drops the rest).
func (t *Tier) checkOwn(keys, ids []string) {
	if len(keys) > driver.MaxBatch {
		t.dropUnchecked(keys[driver.MaxBatch:], ids[driver.MaxBatch:])
		keys, ids = keys[:driver.MaxBatch], ids[:driver.MaxBatch]
	}
	if t.Down() {
		t.dropUnchecked(keys, ids)
		return
	}
	select {
	case t.ownSem <- struct{}{}:
	default:
		t.dropUnchecked(keys, ids)
		return
	}
	t.wg.Go(func() {
		defer func() { <-t.ownSem }()
		got, err := t.store.Get(t.ctx, keys)
		for i, k := range keys {
			var v []byte
			if err == nil && i < len(got) {
				v = got[i]
			}
			if !t.own.checked(k, v, err) {
				t.drop(ids[i])
			}
		}
	})
}

// dropUnchecked drops the copies of ids whose checks are not made.
func (t *Tier) dropUnchecked(keys, ids []string) {
	for i, k := range keys {
		t.own.checked(k, nil, errUnchecked)
		t.drop(ids[i])
	}
}

var errUnchecked = errors.New("not checked")
