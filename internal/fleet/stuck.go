package fleet

import (
	"context"
	"sync"
	"time"

	"github.com/tiercache/tiercache/driver"
)

// Locks this process may hold whose release failed: a lock attempt whose
// reply was lost while Redis froze may even be taken after the request gave
// up (Redis runs it when it resumes), and with nobody to release it every
// process that misses the key waits for it (up to LockWait) until it
// expires. They are released again by the maintenance loop once the tier
// answers (the release is conditional on the token: an expired or retaken
// lock is left alone), up to maxStuck of them for at most maxStuckAge.
type stuckLocks struct {
	mu    sync.Mutex
	locks []stuckLock
}

type stuckLock struct {
	req   driver.LockRequest
	until int64 // cache clock: past it the lock has expired anyway
}

const (
	maxStuck    = 4096
	maxStuckAge = time.Minute // more than any sensible LockTTL
)

// add remembers reqs, released in vain at now.
func (s *stuckLocks) add(reqs []driver.LockRequest, now int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range reqs {
		if len(s.locks) >= maxStuck {
			return // left to expire
		}
		s.locks = append(s.locks, stuckLock{req: r, until: now + int64(maxStuckAge)})
	}
}

// take removes and returns up to n of the locks still worth releasing at
// now.
func (s *stuckLocks) take(n int, now int64) []driver.LockRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []driver.LockRequest
	kept := s.locks[:0]
	for _, l := range s.locks {
		switch {
		case now >= l.until:
		case len(out) < n:
			out = append(out, l.req)
		default:
			kept = append(kept, l)
		}
	}
	clear(s.locks[len(kept):])
	s.locks = kept
	return out
}

func (s *stuckLocks) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.locks)
}

// releaseStuck releases a batch of stuck locks, putting them back if the
// tier fails, and reports whether more are left.
func (t *Tier) releaseStuck(ctx context.Context) (more bool, err error) {
	now := t.cfg.Now()
	reqs := t.stuck.take(driver.MaxBatch, now)
	if len(reqs) == 0 {
		return false, nil
	}
	err = t.call(ctx, func(ctx context.Context) error { return t.store.Unlock(ctx, reqs) })
	if err != nil {
		t.stuck.add(reqs, now) // their age restarts: bounded by maxStuck all the same
		return true, err
	}
	return t.stuck.len() > 0, nil
}
