package tiercache_test

// Tests from the second adversarial review (each failed on the code it reviewed): GetMany whose context ends mid-way, and a huge
// GetMany. (Both held up.)

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
)

// TestGetManyDeadlineMidway: a GetMany whose context ends while its
// batch loader runs returns at its deadline with the context's error for
// the ids not answered; the load goes on for the others and is shared: a
// second GetMany gets every id from the one load.
func TestGetManyDeadlineMidway(t *testing.T) {
	c := newCache(t, srv(t).Addr(), tiercache.Options[user]{})
	db := &batchOrigin{origin: newOrigin()}
	ids := make([]string, 2000)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
		db.rows[ids[i]] = user{ID: ids[i]}
	}
	db.delay = make(chan struct{})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	m, err := c.GetMany(ctx, ids, db.load)
	if took := time.Since(start); took > 300*time.Millisecond || !errors.Is(err, context.DeadlineExceeded) || len(m) != 0 {
		t.Fatalf("GetMany with a 50ms deadline: %d values, %v, after %v", len(m), err, took)
	}
	close(db.delay)
	m, err = c.GetMany(t.Context(), ids, db.load)
	if err != nil || len(m) != len(ids) {
		t.Fatalf("second GetMany: %d values, %v", len(m), err)
	}
	db.mu.Lock()
	calls := len(db.batch)
	db.mu.Unlock()
	if calls != 1 {
		t.Errorf("%d batch loads for the two GetManys, want 1", calls)
	}
}

// TestHugeGetMany: a cold GetMany of 50 000 ids in one process and then
// the same ids from another: one batch load, the second from L2.
func TestHugeGetMany(t *testing.T) {
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}, L1: tiercache.L1[user]{Size: 100_000}}
	a := newCache(t, srv(t).Addr(), o)
	b := newCache(t, srv(t).Addr(), o)
	db := &batchOrigin{origin: newOrigin()}
	ids := make([]string, 50_000)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
		db.rows[ids[i]] = user{ID: ids[i]}
	}
	start := time.Now()
	m, err := a.GetMany(t.Context(), ids, db.load)
	cold := time.Since(start)
	if err != nil || len(m) != len(ids) {
		t.Fatalf("cold GetMany: %d, %v", len(m), err)
	}
	if err := tiercache.WaitIdle(t.Context(), a); err != nil { // its fills
		t.Fatal(err)
	}
	start = time.Now()
	m, err = b.GetMany(t.Context(), ids, db.load)
	warm := time.Since(start)
	if err != nil || len(m) != len(ids) || len(db.batch) != 1 {
		t.Fatalf("L2 GetMany: %d, %v, %d batch loads", len(m), err, len(db.batch))
	}
	// Times are reported, not asserted (no timing assertions in tests): the
	// test's timeout bounds a hang.
	t.Logf("GetMany of %d ids: cold %v, from L2 %v", len(ids), cold.Round(time.Millisecond), warm.Round(time.Millisecond))
}
