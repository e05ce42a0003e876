package fleet

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache/stats"
)

// Writes this process could not complete in the shared tier, and writes of
// processes on an older generation carried over to this one's keys, are
// pending: the key of each id must be deleted (and the deletion announced)
// before the shared tier can be trusted for it again. Deleting is always
// safe, whatever happened since: a failed Set is completed by deleting the
// key too, and the next read loads from the origin. Until then the cache
// loads pending ids from the origin and keeps them out of the shared tier,
// so a process never serves a value older than its own write, even when
// the write failed.
type pending struct {
	mu  sync.Mutex
	ids map[string]uint64 // id -> the mark's sequence number
	seq uint64
	n   atomic.Int64 // len(ids), or -1 while all is set: the fast check
	// all is set when more than maxPending ids were pending: which ones is
	// no longer known, so every id is pending until the keyspace has moved
	// to a new generation (see repairAll). Ids marked since are tracked
	// again, afresh.
	all       bool
	overflows int
	limit     int // maxPending; tests make it small
}

// maxPending bounds the pending ids (about 100 MB of ids at the most).
const maxPending = 1 << 20

const (
	minRepairBackoff = 50 * time.Millisecond
	maxRepairBackoff = 2 * time.Second
)

func (p *pending) add(ids ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ids == nil {
		p.ids = make(map[string]uint64)
	}
	for _, id := range ids {
		p.seq++
		p.ids[id] = p.seq
	}
	if len(p.ids) > p.limit {
		p.all, p.ids = true, nil
		p.overflows++
	}
	p.store()
}

// store updates the fast check; the caller holds p.mu.
func (p *pending) store() {
	if p.all {
		p.n.Store(-1)
		return
	}
	p.n.Store(int64(len(p.ids)))
}

func (p *pending) has(id string) bool {
	if p.n.Load() == 0 {
		return false
	}
	p.mu.Lock()
	_, ok := p.ids[id]
	ok = ok || p.all
	p.mu.Unlock()
	return ok
}

// overflowed reports whether every id is pending, and how many times the
// set overflowed so far.
func (p *pending) overflowed() (bool, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.all, p.overflows
}

// recovered ends the "every id" state, unless the set overflowed again
// since the count k.
func (p *pending) recovered(k int) {
	p.mu.Lock()
	if p.overflows == k {
		p.all = false
	}
	p.store()
	p.mu.Unlock()
}

// take returns up to n pending ids and their marks.
func (p *pending) take(n int) ([]string, []uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]string, 0, min(n, len(p.ids)))
	marks := make([]uint64, 0, cap(ids))
	for id, m := range p.ids {
		if len(ids) == n {
			break
		}
		ids = append(ids, id)
		marks = append(marks, m)
	}
	return ids, marks
}

// done forgets the ids whose marks are unchanged: an id marked again since
// take stays pending.
func (p *pending) done(ids []string, marks []uint64) {
	p.mu.Lock()
	for i, id := range ids {
		if p.ids[id] == marks[i] {
			delete(p.ids, id)
		}
	}
	p.store()
	p.mu.Unlock()
}

// repairAll moves the keyspace to a new generation when the pending ids
// are no longer known (k is the overflow count it answers): no value written
// under the old one is read again.
func (t *Tier) repairAll(ctx context.Context, k int) error {
	if !t.caps.Generations {
		return errTooManyPending
	}
	t.warn(ctx, "tiercache: moving the keyspace to a new runtime version, so that no process serves a value older than the writes that failed", t.channel, errTooManyPending)
	// The writes the bump would carry over are the ones it answers: carried
	// back into pending, they would overflow it again.
	t.recentMu.Lock()
	t.recent = nil
	t.recentMu.Unlock()
	if _, err := t.Bump(ctx); err != nil {
		return err
	}
	t.pending.recovered(k)
	return nil
}

var errTooManyPending = errors.New("tiercache: more writes failed than can be tracked")

// markPending leaves ids for the maintenance loop to delete (see Pending):
// for a write that could not even be attempted.
func (t *Tier) markPending(ids []string) {
	t.pending.add(ids...)
	t.repairSoon()
}

// repairSoon asks the maintenance loop to repair now.
func (t *Tier) repairSoon() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// repair deletes (and announces) the keys of a batch of pending ids in the
// keyspace in effect, and reports whether more are pending.
func (t *Tier) repair(ctx context.Context) (more bool, err error) {
	if more, err := t.releaseStuck(ctx); err != nil {
		return true, err
	} else if more {
		return true, nil
	}
	if all, k := t.pending.overflowed(); all {
		return true, t.repairAll(ctx, k)
	}
	ids, marks := t.pending.take(512)
	if len(ids) == 0 {
		return false, nil
	}
	// Not Ready: this runs on the maintenance loop, which does the syncs
	// Ready would wait for.
	if !t.known.Load() {
		t.syncSoon()
		return true, errNoGeneration
	}
	space := t.space.Load()
	err = t.call(ctx, func(ctx context.Context) error {
		return t.store.Delete(ctx, keysOf(space, ids), t.note(opCarried, space, ids...))
	})
	if err != nil {
		return true, err
	}
	t.pending.done(ids, marks)
	for _, id := range ids {
		// Copies loaded from the origin meanwhile are fine; what matters is
		// that a read that starts now goes to the shared tier, which no
		// longer holds an older value.
		t.cfg.Local.Invalidate(id)
		t.cfg.Record(stats.WriteRepaired)
	}
	return t.pending.n.Load() > 0, nil
}
