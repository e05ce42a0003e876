package flight

import (
	"sync"
	"time"
)

// poolIdle is how long a Pool's goroutine waits for another job before it
// exits.
const poolIdle = time.Second

// A Pool runs jobs on goroutines that wait for the next job when they are
// done, so that a job started while one is idle costs no goroutine and no
// allocation. A job that blocks holds its goroutine; the next job gets
// another. Set Run before the first Submit.
type Pool[T any] struct {
	// Run does a job.
	Run func(T)

	jobs    chan T // unbuffered: a send succeeds only to an idle goroutine
	mu      sync.Mutex
	closed  bool
	quit    chan struct{}
	wg      sync.WaitGroup
	workers int
}

// Submit hands job to an idle goroutine, or starts one for it. It reports
// false, without running job, after Close.
func (p *Pool[T]) Submit(job T) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	if p.jobs == nil {
		p.jobs, p.quit = make(chan T), make(chan struct{})
	}
	jobs := p.jobs
	p.mu.Unlock()
	select {
	case jobs <- job:
		return true
	default:
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	p.workers++
	go p.work(job)
	return true
}

func (p *Pool[T]) work(job T) {
	defer func() {
		p.mu.Lock()
		p.workers--
		p.mu.Unlock()
		p.wg.Done()
	}()
	idle := time.NewTimer(poolIdle)
	defer idle.Stop()
	for {
		p.Run(job)
		idle.Reset(poolIdle)
		select {
		case job = <-p.jobs:
		case <-idle.C:
			return
		case <-p.quit:
			return
		}
	}
}

// Close makes later Submits fail, lets idle goroutines exit, and waits up
// to grace for running jobs to return; it reports whether they all did.
func (p *Pool[T]) Close(grace time.Duration) bool {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		if p.quit != nil {
			close(p.quit)
		}
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	return waitFor(done, grace)
}
