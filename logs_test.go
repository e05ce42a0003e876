package tiercache_test

// Tests from the second adversarial review (each failed on the code it reviewed): one Warn per event.

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
)

// TestSubscriptionFailureLoggedOnce: docs/architecture.md,
// Observability: "Warn for degradations, once per event (a failed load, not
// per waiter; an undecodable entry; the breaker opening; the subscription
// lost; ...)". A subscription that cannot be established (here the ACL
// refuses the channel: a misconfiguration that lasts until an operator
// fixes it) is one degradation; the cache must not log "invalidation
// subscription lost" at every retry, forever (one every 2 s at the most
// backoff: 1 800 an hour per cache), while it works otherwise.
func TestSubscriptionFailureLoggedOnce(t *testing.T) {
	s := cachetest.StartRedis(t)
	const pw = "adv2-pw"
	name := keyspaceName(t)
	// Every key of the keyspace, but not its channel.
	acl := append([]string{"ACL", "SETUSER", "app", "reset", "on", ">" + pw, "~*", "&some-other-channel"}, advACLCommands...)
	if _, err := s.Do(acl...); err != nil {
		t.Fatal(err)
	}
	var buf cachetest.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c := advACLCache(t, s, "app", pw, tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: name}, Logger: logger})
	db := newOrigin("1")
	if _, err := c.Get(t.Context(), "1", db.load); err != nil {
		t.Fatal(err)
	}
	// An observation window: the subscription retries with backoff.
	window := time.NewTimer(4 * time.Second)
	<-window.C
	lost := 0
	for _, rec := range records(t, &buf) {
		if msg, _ := rec["msg"].(string); strings.Contains(msg, "subscription") {
			lost++
			if lost == 1 {
				t.Logf("first: %v: %v", rec["msg"], rec["err"])
			}
		}
	}
	if lost > 2 {
		t.Errorf("a subscription refused by the ACL was logged at Warn %d times in 4 s (the cache works otherwise: L2 hits %d); want once per event",
			lost, c.Stats().L2Hits)
	}
}

// TestRedisOutageLoggedOnce: the same rule ("Warn for degradations,
// once per event (...; the breaker opening; the subscription lost; ...)")
// for one Redis outage: Redis is killed and stays down. The cache logs the
// breaker opening again after every failed probe (one per Cooldown, 1 s)
// and the subscription lost after every failed resubscription (one per 2 s
// at most backoff): thousands of Warns per hour of one outage, per cache,
// with no traffic at all.
func TestRedisOutageLoggedOnce(t *testing.T) {
	s := cachetest.StartRedis(t)
	var buf cachetest.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c := newCache(t, s.Addr(), tiercache.Options[user]{Logger: logger})
	if _, err := c.Get(t.Context(), "1", newOrigin("1").load); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	window := time.NewTimer(5 * time.Second) // an observation window: one outage, no traffic
	<-window.C
	counts := map[string]int{}
	for _, rec := range records(t, &buf) {
		msg, _ := rec["msg"].(string)
		counts[msg]++
	}
	t.Logf("Warn records during 5 s of one outage: %v", counts)
	for msg, n := range counts {
		if n > 2 {
			t.Errorf("%q logged %d times during one Redis outage of 5 s without traffic; want once per event", msg, n)
		}
	}
}
