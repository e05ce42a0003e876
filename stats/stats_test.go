package stats

import (
	"sync"
	"testing"
	"time"
)

func TestCounterSnapshot(t *testing.T) {
	c := NewCounter()
	c.RecordRequest(Hit, L1, 0)
	c.RecordRequest(Hit, L1, 0)
	c.RecordRequest(Hit, L2, 0)
	c.RecordRequest(Negative, L1, 0)
	c.RecordRequest(Negative, L2, 0)
	c.RecordRequest(Stale, L2, 0)
	c.RecordRequest(Miss, Origin, 0)
	c.RecordRequest(StaleIfError, L1, 0)
	c.RecordRequest(Fallback, None, 0)
	c.RecordRequest(Error, None, 0)
	c.RecordLoad(2*time.Millisecond, false)
	c.RecordLoad(3*time.Millisecond, true)
	for _, e := range Events() {
		c.RecordEvent(e)
	}
	c.RecordEvent(LockWait)

	s := c.Snapshot()
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"L1Hits", s.L1Hits, 2}, {"L2Hits", s.L2Hits, 1}, {"NegativeHits", s.NegativeHits, 2},
		{"StaleHits", s.StaleHits, 1}, {"Misses", s.Misses, 1}, {"StaleIfError", s.StaleIfError, 1},
		{"Fallbacks", s.Fallbacks, 1}, {"Errors", s.Errors, 1}, {"Loads", s.Loads, 2},
		{"LoadErrors", s.LoadErrors, 1}, {"LockWaits", s.LockWaits, 2}, {"SharedLoads", s.SharedLoads, 1},
		{"Refreshes", s.Refreshes, 1}, {"EarlyRefreshes", s.EarlyRefreshes, 1},
		{"RefreshesDropped", s.RefreshesDropped, 1}, {"LockAcquired", s.LockAcquired, 1},
		{"LockContended", s.LockContended, 1}, {"LockWaitTimeouts", s.LockWaitTimeouts, 1},
		{"FillsLost", s.FillsLost, 1}, {"L2Errors", s.L2Errors, 1}, {"L2Corrupt", s.L2Corrupt, 1},
		{"Invalidations", s.Invalidations, 1}, {"L1Evictions", s.L1Evictions, 1},
		{"Total", s.Total(), 10}, {"Requests(Negative, L2)", s.Requests(Negative, L2), 1},
		{"Requests(out of range)", s.Requests(Outcome(200), L1), 0},
		{"Event(LockWait)", s.Event(LockWait), 2}, {"Event(out of range)", s.Event(Event(200)), 0},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %d, want %d", ch.name, ch.got, ch.want)
		}
	}
	if s.LoadTime != 5*time.Millisecond {
		t.Errorf("LoadTime = %v, want 5ms", s.LoadTime)
	}
	// Hits: 2 L1 + 1 L2 + 2 negative + 1 stale = 6 of 10.
	if got := s.HitRatio(); got != 0.6 {
		t.Errorf("HitRatio = %v, want 0.6", got)
	}
	var empty Snapshot
	if got := empty.HitRatio(); got != 0 {
		t.Errorf("HitRatio of no requests = %v, want 0", got)
	}
}

func TestCounterConcurrent(t *testing.T) {
	c := NewCounter()
	const goroutines, each = 16, 10_000
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				c.RecordRequest(Hit, L1, 0)
			}
		})
	}
	wg.Wait()
	if got := c.Snapshot().L1Hits; got != goroutines*each {
		t.Fatalf("L1Hits = %d, want %d", got, goroutines*each)
	}
}

func TestNames(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{L1.String(), "l1"}, {L2.String(), "l2"}, {Origin.String(), "origin"}, {None.String(), "none"},
		{Hit.String(), "hit"}, {StaleIfError.String(), "stale_if_error"}, {Error.String(), "error"},
		{LockWaitTimeout.String(), "lock_wait_timeout"}, {Tier(9).String(), "Tier(9)"}, {Event(99).String(), "Event(99)"},
	} {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
	if len(Outcomes()) != numOutcomes-1 || len(Tiers()) != numTiers-1 || len(Events()) != int(numEvents)-1 {
		t.Error("Outcomes, Tiers or Events does not list every value")
	}
}

func BenchmarkRecordRequest(b *testing.B) {
	c := NewCounter()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.RecordRequest(Hit, L1, 0)
		}
	})
}
