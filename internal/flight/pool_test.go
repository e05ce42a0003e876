package flight

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// A job submitted while a goroutine is idle runs on it: sequential jobs use
// one goroutine, and a blocked job makes the next one start another.
func TestPoolReusesIdleGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p Pool[chan int]
		var mu sync.Mutex
		ran := 0
		p.Run = func(reply chan int) {
			mu.Lock()
			ran++
			mu.Unlock()
			reply <- 1
		}
		for range 10 {
			reply := make(chan int, 1)
			if !p.Submit(reply) {
				t.Fatal("Submit refused before Close")
			}
			<-reply
			synctest.Wait() // the goroutine is idle again
		}
		if n := p.count(); n != 1 {
			t.Errorf("%d goroutines for 10 sequential jobs, want 1", n)
		}
		if !p.Close(time.Second) {
			t.Error("Close: jobs still running")
		}
		if ran != 10 {
			t.Errorf("ran %d jobs, want 10", ran)
		}
		if p.Submit(make(chan int, 1)) {
			t.Error("Submit accepted a job after Close")
		}
	})
}

func TestPoolBlockedJobAndCloseGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p Pool[chan struct{}]
		p.Run = func(release chan struct{}) { <-release }
		stuck := make(chan struct{})
		p.Submit(stuck)
		other := make(chan struct{})
		p.Submit(other) // the first goroutine is busy: a second one starts
		synctest.Wait()
		if n := p.count(); n != 2 {
			t.Fatalf("%d goroutines, want 2", n)
		}
		close(other)
		start := time.Now()
		if p.Close(time.Second) {
			t.Error("Close reported every job done while one is blocked")
		}
		if took := time.Since(start); took != time.Second {
			t.Errorf("Close waited %v, want its grace (1s)", took)
		}
		close(stuck) // the blocked job returns; its goroutine exits
		synctest.Wait()
		if n := p.count(); n != 0 {
			t.Errorf("%d goroutines left after Close and the job's return", n)
		}
	})
}

// An idle goroutine exits after poolIdle.
func TestPoolIdleGoroutineExits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p Pool[int]
		p.Run = func(int) {}
		p.Submit(1)
		time.Sleep(poolIdle + time.Millisecond)
		synctest.Wait()
		if n := p.count(); n != 0 {
			t.Errorf("%d goroutines after %v idle, want 0", n, poolIdle)
		}
	})
}

func (p *Pool[T]) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.workers
}
