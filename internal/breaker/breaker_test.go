package breaker

import (
	"sync"
	"testing"
	"time"
)

func TestLifecycle(t *testing.T) {
	var changes []string
	b := New(3, time.Second, func(from, to State) { changes = append(changes, from.String()+">"+to.String()) })
	now := int64(1_000_000_000)

	// Failures below the threshold, or interrupted by a success, keep it closed.
	b.Failure(now)
	b.Failure(now)
	b.Success()
	b.Failure(now)
	b.Failure(now)
	if got := b.State(); got != Closed {
		t.Fatalf("after 2 consecutive failures: state %v, want closed", got)
	}
	b.Failure(now)
	if got := b.State(); got != Open {
		t.Fatalf("after 3 consecutive failures: state %v, want open", got)
	}
	if b.Allow(now + int64(999*time.Millisecond)) {
		t.Fatal("open breaker allowed a call before the cooldown")
	}
	// After the cooldown exactly one caller probes.
	probeAt := now + int64(time.Second)
	if !b.Allow(probeAt) {
		t.Fatal("breaker did not allow a probe after the cooldown")
	}
	if b.Allow(probeAt) {
		t.Fatal("half-open breaker allowed a second call while the probe runs")
	}
	// A failed probe reopens it for another cooldown.
	b.Failure(probeAt)
	if got := b.State(); got != Open {
		t.Fatalf("after failed probe: state %v, want open", got)
	}
	if b.Allow(probeAt + int64(500*time.Millisecond)) {
		t.Fatal("reopened breaker allowed a call before its new cooldown")
	}
	if !b.Allow(probeAt + int64(time.Second)) {
		t.Fatal("no probe after the second cooldown")
	}
	b.Success()
	if got := b.State(); got != Closed {
		t.Fatalf("after successful probe: state %v, want closed", got)
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

func TestOneProbeUnderConcurrency(t *testing.T) {
	b := New(1, time.Second, nil)
	b.Failure(0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	start := make(chan struct{})
	for range 64 {
		wg.Go(func() {
			<-start
			if b.Allow(int64(2 * time.Second)) {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	if allowed != 1 {
		t.Fatalf("%d callers allowed in half-open, want 1", allowed)
	}
}

func TestAllowClosedDoesNotAllocate(t *testing.T) {
	b := New(5, time.Second, nil)
	if n := testing.AllocsPerRun(100, func() { b.Allow(1) }); n != 0 {
		t.Fatalf("Allow allocates %v times", n)
	}
}
