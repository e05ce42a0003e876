package fleet

import (
	"testing"
	"time"

	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/internal/keys"
)

// TestStuckLockReleasedAfterRecovery: a release that fails (here the breaker
// is open) is not left to the lock's expiry: once the tier answers again
// the maintenance loop releases it. Before, a lock attempt whose reply was
// lost while Redis froze stayed for its whole LockTTL after Redis resumed,
// and a request that missed the key waited for it (4.6 s in the serve
// outage test).
func TestStuckLockReleasedAfterRecovery(t *testing.T) {
	tier, _ := newTier(t, "stuck")
	ctx := t.Context()
	key := tier.space.Load().Key("42")
	req := driver.LockRequest{Key: key, Token: driver.NewToken()}
	res, err := tier.Lock(ctx, []driver.LockRequest{req}, time.Minute)
	if err != nil || !res[0].Acquired {
		t.Fatalf("Lock = %+v, %v", res, err)
	}
	tier.brk.Trip()
	tier.Unlock(ctx, []driver.LockRequest{req}) // fails: the breaker is open
	if n, _ := srv(t).Do("EXISTS", keys.Lock(key)); n != int64(1) {
		t.Fatalf("EXISTS %s = %v after a failed release, want 1", keys.Lock(key), n)
	}
	if tier.stuck.len() != 1 {
		t.Fatalf("%d stuck locks remembered, want 1", tier.stuck.len())
	}
	// The background probe closes the breaker; the release follows.
	waitFor(t, func() bool { n, _ := srv(t).Do("EXISTS", keys.Lock(key)); return n == int64(0) },
		"the failed release to be made again (the lock's TTL is a minute)")
	if n := tier.stuck.len(); n != 0 {
		t.Errorf("%d stuck locks left after the release", n)
	}
}
