package breaker

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

// t0 is an arbitrary unix time in ns, on a slot boundary.
const t0 = int64(1_700_000_000) * int64(time.Second)

func TestLifecycle(t *testing.T) {
	var changes []string
	b := New(Config{}, func(from, to State) { changes = append(changes, from.String()+">"+to.String()) })
	if b.Probe() {
		t.Fatal("Probe moved a closed breaker")
	}
	b.Trip()
	if b.State() != Open || b.Allow() {
		t.Fatalf("after Trip: state %v, Allow %v; want open, false", b.State(), b.Allow())
	}
	if !b.Probe() {
		t.Fatal("Probe of an open breaker refused")
	}
	if b.Allow() {
		t.Fatal("half-open breaker let a caller's call through: probes are the owner's")
	}
	b.Probed(false)
	if b.State() != Open {
		t.Fatalf("after a failed probe: %v, want open", b.State())
	}
	b.Probe()
	b.Probed(true)
	if b.State() != Closed || !b.Allow() {
		t.Fatalf("after a good probe: %v, want closed", b.State())
	}
	want := []string{"closed>open", "open>half-open", "half-open>open", "open>half-open", "half-open>closed"}
	if len(changes) != len(want) {
		t.Fatalf("changes = %v, want %v", changes, want)
	}
	for i := range want {
		if changes[i] != want[i] {
			t.Fatalf("changes = %v, want %v", changes, want)
		}
	}
}

// TestScatteredFailuresKeepItClosed: what a healthy Redis under load looks
// like (a missed deadline now and then, even five in a row, among thousands
// of calls a second) never opens it. The breaker it replaces opened on any
// five failures in a row.
func TestScatteredFailuresKeepItClosed(t *testing.T) {
	b := New(Config{}, nil)
	now := t0
	for i := range 20_000 { // 10 s at 2,000 calls/s, 2% failing in runs of 5
		now += ms / 2
		if i%250 >= 245 {
			b.Failure(now)
		} else {
			b.Success(now)
		}
	}
	if got := b.State(); got != Closed {
		t.Fatalf("state %v after 2%% of calls failed in runs of 5, want closed", got)
	}
}

// TestOpensOnRate: failing calls open it once they are Rate of the window
// and at least MinFailures; not before.
func TestOpensOnRate(t *testing.T) {
	b := New(Config{MinFailures: 5, Rate: 0.5, Window: time.Second}, nil)
	now := t0
	// 10 calls a 100 ms slot, alternating, for a second: half fail, but
	// the first failures are below the minimum and below the rate.
	for i := range 8 {
		now += 10 * ms
		if i%2 == 0 {
			b.Success(now)
		} else {
			b.Failure(now)
		}
	}
	if b.State() != Closed {
		t.Fatalf("opened with 4 failures of 8, MinFailures 5")
	}
	b.Success(now)
	b.Failure(now) // 5 of 10: at the rate, at the minimum
	if b.State() != Open {
		t.Fatalf("state %v with 5 failures of 10 calls, want open", b.State())
	}
}

// TestBelowRateStaysClosed: many failures, but under Rate of the window's
// calls, spread so that each slot has successes.
func TestBelowRateStaysClosed(t *testing.T) {
	b := New(Config{Rate: 0.5}, nil)
	now := t0
	for range 1000 {
		now += ms
		b.Success(now)
		b.Success(now)
		b.Failure(now) // a third fail
	}
	if b.State() != Closed {
		t.Fatalf("opened at a failure rate of 1/3, Rate 0.5")
	}
}

// TestStoppedAnswering: after a second of successes, calls all fail: it opens
// within the next tenth of the window (once a slot has MinFailures
// failures and no success), not once the successes have left the window.
func TestStoppedAnswering(t *testing.T) {
	b := New(Config{}, nil)
	now := t0
	for range 10_000 {
		now += ms / 10
		b.Success(now)
	}
	opened := int64(-1)
	for i := range 1000 {
		now += ms / 10
		b.Failure(now)
		if b.State() == Open {
			opened = int64(i)
			break
		}
	}
	// Calls of 0.1 ms: 100 ms without a success is 1,000 failures.
	if opened < 930 || opened > 1010 {
		t.Fatalf("opened after %d failures, want after 100 ms without a success (1,000)", opened)
	}
}

// TestSlowFailuresInARow: calls that each wait for a deadline longer than a
// slot (a paused Redis, one caller) fail one per slot, below the rate while
// the successes before them are in the window: MinFailures of them in a row,
// with no success for a tenth of the window, open it.
func TestSlowFailuresInARow(t *testing.T) {
	b := New(Config{MinFailures: 3}, nil)
	now := t0
	for range 20 {
		now += ms
		b.Success(now)
	}
	for i := range 3 {
		now += 101 * ms
		b.Failure(now)
		if want := i == 2; (b.State() == Open) != want {
			t.Fatalf("after %d failures of 101 ms each: state %v, want open only after 3", i+1, b.State())
		}
	}
	// A success between them starts the count again.
	b = New(Config{MinFailures: 3}, nil)
	for range 20 {
		now += ms
		b.Success(now)
	}
	for i := range 6 {
		now += 101 * ms
		if i == 2 {
			b.Success(now)
			continue
		}
		b.Failure(now)
		if b.State() == Open && i < 5 {
			t.Fatalf("opened at call %d, with a success at call 2", i)
		}
	}
	if b.State() != Open {
		t.Fatalf("state %v after 3 failures in a row after the success, want open", b.State())
	}
}

// TestOldFailuresLeaveTheWindow: failures more than a Window ago do not count.
func TestOldFailuresLeaveTheWindow(t *testing.T) {
	b := New(Config{MinFailures: 5}, nil)
	now := t0
	for range 4 {
		now += ms
		b.Success(now)
		b.Failure(now)
	}
	now += 2 * int64(time.Second)
	b.Success(now)
	b.Failure(now) // 1 of 2 in the window: under MinFailures
	if b.State() != Closed {
		t.Fatal("failures from two windows ago counted")
	}
}

// TestProbedForgetsTheWindow: after a successful probe, the failures that
// opened it do not reopen it on the next failure.
func TestProbedForgetsTheWindow(t *testing.T) {
	b := New(Config{}, nil)
	now := t0
	for range 10 {
		b.Failure(now)
	}
	if b.State() != Open {
		t.Fatal("10 failures, no success: not open")
	}
	b.Probe()
	b.Probed(true)
	b.Success(now)
	b.Failure(now)
	if b.State() != Closed {
		t.Fatal("reopened by the failures before the probe")
	}
}

func TestOneProbeUnderConcurrency(t *testing.T) {
	b := New(Config{}, nil)
	b.Trip()
	var wg sync.WaitGroup
	var probes atomic.Int32
	start := make(chan struct{})
	for range 64 {
		wg.Go(func() {
			<-start
			if b.Probe() {
				probes.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if got := probes.Load(); got != 1 {
		t.Fatalf("%d probes, want 1", got)
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	b := New(Config{}, nil)
	if n := testing.AllocsPerRun(100, func() {
		if b.Allow() {
			b.Success(t0)
		}
	}); n != 0 {
		t.Fatalf("Allow and Success allocate %v times", n)
	}
}
