package fleet

// Tests from the second adversarial review (each failed on the code it reviewed): the pending set's overflow and the carry-over.

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/stats"
)

// TestOverflowBumpsOnce: docs/architecture.md, "A write failed": past
// the bound on pending ids "the process no longer knows which ids are
// pending, so it treats every id as pending ... and, once Redis answers,
// moves the keyspace to a new runtime version" — one move, which costs the
// whole fleet its cache (every process flushes, every key is cold). The
// writes that overflowed the set are also this process's recent writes;
// the move carries them over into the pending set (pointless: the new
// keyspace is empty), which overflows it again, and the maintenance loop
// moves the keyspace a second time.
func TestOverflowBumpsOnce(t *testing.T) {
	var switches atomic.Int64
	tier := startTier(t, Config{Name: "adv2-overflow", Local: &recorder{}, Record: func(e stats.Event) {
		if e == stats.VersionSwitch {
			switches.Add(1)
		}
	}}, func(tier *Tier) {
		tier.pending.mu.Lock()
		tier.pending.limit = 100 // maxPending, scaled down
		tier.pending.mu.Unlock()
	})
	before := tier.Space().Gen
	base := switches.Load()

	// One bulk Delete of 101 ids fails (its context was cancelled: nothing
	// reached Redis): more than the set can track.
	ids := make([]string, 101)
	for i := range ids {
		ids[i] = "id-" + strconv.Itoa(i)
	}
	failed, cancelFailed := context.WithCancel(t.Context())
	cancelFailed()
	if err := tier.Delete(failed, ids); err == nil {
		t.Fatal("Delete with a cancelled context succeeded")
	}
	waitFor(t, func() bool {
		all, _ := tier.pending.overflowed()
		return tier.Space().Gen > before && !all
	}, "the keyspace to move and the pending set to be known again")
	// Let a second move, if any, happen: the maintenance loop acts at once.
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) && switches.Load()-base < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	if n := switches.Load() - base; n != 1 {
		t.Errorf("one overflow of the pending set moved the keyspace %d times (generation %d -> %d), want once", n, before, tier.Space().Gen)
	}
}
