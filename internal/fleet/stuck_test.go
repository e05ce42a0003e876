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
	// The breaker stays open a Cooldown after Trip.
	tier := startTier(t, Config{Name: "stuck", Local: &recorder{}, Cooldown: 300 * time.Millisecond}, nil)
	ctx := t.Context()
	key := tier.space.Load().Key("42")
	req := driver.LockRequest{Key: key, Token: driver.NewToken()}
	res, err := tier.Lock(ctx, []driver.LockRequest{req}, time.Minute)
	if err != nil || !res[0].Acquired {
		t.Fatalf("Lock = %+v, %v", res, err)
	}
	tier.brk.Trip()
	tier.Unlock(ctx, []driver.LockRequest{req}) // fails at once: the breaker is open
	if n, _ := srv(t).Do("EXISTS", keys.Lock(key)); n != int64(1) || tier.Breaker() == "closed" {
		t.Fatalf("after a release with the breaker open: EXISTS %v, breaker %s; want 1 and open", n, tier.Breaker())
	}
	// Nothing else releases the lock (its TTL is a minute): the background
	// probe closes the breaker after Cooldown, and the failed release is
	// made again.
	waitFor(t, func() bool { n, _ := srv(t).Do("EXISTS", keys.Lock(key)); return n == int64(0) },
		"the failed release to be made again (the lock's TTL is a minute)")
	if n := tier.stuck.len(); n != 0 {
		t.Errorf("%d stuck locks left after the release", n)
	}
}
