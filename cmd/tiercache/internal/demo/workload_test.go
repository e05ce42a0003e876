package demo

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo/userdb"
)

// gated is a target that says when a request enters it, then sends it to
// the origin.
type gated struct {
	direct
	entered chan struct{}
}

func (g gated) enter() {
	select {
	case g.entered <- struct{}{}:
	default:
	}
}

func (g gated) read(ctx context.Context, i int, id int64) error {
	g.enter()
	return g.direct.read(ctx, i, id)
}

func (g gated) hot(ctx context.Context, i int) error {
	g.enter()
	return g.direct.hot(ctx, i)
}

func (g gated) update(ctx context.Context, i int, id int64, name, email string) error {
	g.enter()
	return g.direct.update(ctx, i, id, name, email)
}

// TestProgressCountsRequestsInFlight: the progress line counts a request
// when it is sent, as the origin counts a query when it starts. It counted
// requests when they were answered, so the requests in flight (one per
// worker) showed as origin queries without requests: more queries than
// requests in the baseline, where each request is one query.
func TestProgressCountsRequestsInFlight(t *testing.T) {
	// An hour per query: the first request stays in flight until the end.
	db, err := userdb.Open(t.Context(), filepath.Join(t.TempDir(), "users.db"), &userdb.Options{Latency: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Seed(t.Context(), 100); err != nil {
		t.Fatal(err)
	}
	g := gated{direct: direct{db}, entered: make(chan struct{}, 1)}
	p := &phase{name: "baseline", duration: time.Hour, workers: 1, instances: 1, users: 100, seed: 1, target: g, db: db}
	r0, w0 := db.Queries()
	var sent, hot atomic.Uint64
	sample := p.sampler(&sent, r0, w0)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		start := time.Now()
		p.work(ctx, 0, &worker{}, start, start.Add(time.Hour), &sent, &hot)
	}()
	<-g.entered
	requests, _, _, _ := sample()
	cancel()
	<-done
	if requests != 1 {
		t.Errorf("with one request in flight, the progress shows %d requests, want 1", requests)
	}
	if requests, _, _, origin := sample(); origin > requests {
		t.Errorf("progress shows %d origin queries for %d requests, each one query at most", origin, requests)
	}
}
