package demo

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo/userdb"
)

// The request mix. Reads of existing users take what is left.
const (
	updateShare  = 0.01 // UPDATE the row, then Delete it from the cache
	missingShare = 0.05 // ids above the largest: "not found", cached negatively
	hotShare     = 0.10 // the hot key of the stampede moment
	zipfS        = 1.1  // skew of the ids read and updated
	missingIDs   = 1000 // distinct missing ids, also Zipf-distributed
)

type opKind uint8

const (
	opRead opKind = iota + 1
	opMissing
	opHot
	opUpdate
)

// mix draws the requests of one worker. The same seed gives the same
// sequence, so that the cached run and the baseline send the same requests.
type mix struct {
	rng     *rand.Rand
	users   *rand.Zipf
	missing *rand.Zipf
	maxID   int64
}

func newMix(seed uint64, users int) *mix {
	rng := rand.New(rand.NewPCG(seed, 0x7469657263616368))
	return &mix{
		rng:     rng,
		users:   rand.NewZipf(rng, zipfS, 1, uint64(users-1)),
		missing: rand.NewZipf(rng, zipfS, 1, missingIDs-1),
		maxID:   int64(users),
	}
}

func (m *mix) next() (opKind, int64) {
	r := m.rng.Float64()
	switch {
	case r < updateShare:
		return opUpdate, int64(m.users.Uint64()) + 1
	case r < updateShare+missingShare:
		return opMissing, m.maxID + 1 + int64(m.missing.Uint64())
	case r < updateShare+missingShare+hotShare:
		return opHot, hotID
	}
	return opRead, int64(m.users.Uint64()) + 1
}

// target is what the workers send requests to: the fleet of cached
// instances, or the database directly (the baseline).
type target interface {
	// read returns nil or an error wrapping tiercache.ErrNotFound for a
	// user that does not exist.
	read(ctx context.Context, instance int, id int64) error
	hot(ctx context.Context, instance int) error
	update(ctx context.Context, instance int, id int64, name, email string) error
	// hitRatio is the cache's hit ratio so far; ok is false without a cache.
	hitRatio() (r float64, ok bool)
}

// direct is the baseline: every request goes to the origin.
type direct struct{ db *userdb.DB }

func (d direct) read(ctx context.Context, _ int, id int64) error {
	_, err := d.db.User(ctx, id)
	if errors.Is(err, userdb.ErrNotFound) {
		return tiercache.ErrNotFound
	}
	return err
}

func (d direct) hot(ctx context.Context, i int) error { return d.read(ctx, i, hotID) }

func (d direct) update(ctx context.Context, _ int, id int64, name, email string) error {
	_, err := d.db.Update(ctx, id, name, email)
	return err
}

func (direct) hitRatio() (float64, bool) { return 0, false }

// phase is one run of the workload.
type phase struct {
	name      string
	duration  time.Duration
	workers   int
	instances int
	rate      int // requests per second in all; 0: as fast as they go
	users     int
	seed      uint64
	target    target
	db        *userdb.DB
	// stampede, if not zero, is the time at which every worker reads the
	// hot key once, on top of the mix; hot reads in [stampede,
	// stampede+window) are counted.
	stampede time.Time
	window   time.Duration
	progress *progress
	// step is that of the phase's timeline; 0 records none.
	step     time.Duration
	timeline *timeline
	// hotCalls, if set, returns when the hot key's loader ran, for the
	// timeline.
	hotCalls func() []time.Time
}

// result is what a phase measured.
type result struct {
	elapsed  time.Duration
	requests uint64
	reads    uint64 // reads of users, existing or not, and of the hot key
	updates  uint64
	notFound uint64
	errors   uint64
	firstErr error
	// origin queries during the phase
	originReads, originWrites uint64
	latency                   histogram // of reads
	hotInWindow               uint64
	timeline                  Timeline
}

// worker is the state of one worker goroutine.
type worker struct {
	res   result
	edits int
}

// run drives the phase's workers until its duration is up or ctx is done.
func (p *phase) run(ctx context.Context, start time.Time) *result {
	end := start.Add(p.duration)
	p.timeline = newTimeline(start, p.duration, p.step)
	stopTimeline := p.timeline.sample(p.counters)
	r0, w0 := p.db.Queries()
	var sent, hotInWindow atomic.Uint64
	workers := make([]worker, p.workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() { p.work(ctx, i, &workers[i], start, end, &sent, &hotInWindow) })
	}
	stop := p.progress.start(p.name, start, p.duration, p.sampler(&sent, r0, w0))
	wg.Wait()
	stop()
	stopTimeline()

	res := &result{elapsed: time.Since(start), hotInWindow: hotInWindow.Load()}
	var hot []time.Time
	if p.hotCalls != nil {
		hot = p.hotCalls()
	}
	res.timeline = p.timeline.result(hot)
	r1, w1 := p.db.Queries()
	res.originReads, res.originWrites = r1-r0, w1-w0
	for i := range workers {
		w := &workers[i].res
		res.requests += w.requests
		res.reads += w.reads
		res.updates += w.updates
		res.notFound += w.notFound
		res.errors += w.errors
		if res.firstErr == nil {
			res.firstErr = w.firstErr
		}
		res.latency.merge(&w.latency)
	}
	return res
}

// sampler returns the progress display's sample of the phase: requests
// sent so far, and origin queries since r0 reads and w0 writes. Both count
// what has started: a request is counted before it is sent, as the origin
// counts a query before it runs, so that the requests in flight (up to one
// per worker) do not show as origin queries without requests.
func (p *phase) sampler(sent *atomic.Uint64, r0, w0 uint64) sample {
	return func() (uint64, float64, bool, uint64) {
		r, w := p.db.Queries()
		ratio, ok := p.target.hitRatio()
		return sent.Load(), ratio, ok, r - r0 + w - w0
	}
}

// work runs worker n until end or until ctx is done, counting each request
// in sent before it sends it.
func (p *phase) work(ctx context.Context, n int, w *worker, start, end time.Time, sent, hotInWindow *atomic.Uint64) {
	m := newMix(p.seed*1_000_003+uint64(n), p.users)
	inst := n % p.instances
	var interval time.Duration
	if p.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(p.workers) / float64(p.rate))
	}
	// Stagger the workers over one interval so they do not fire together.
	next := start.Add(interval * time.Duration(n) / time.Duration(p.workers))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	burst := p.stampede.IsZero()
	for ctx.Err() == nil {
		if interval > 0 {
			if wait := time.Until(next); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
			next = next.Add(interval)
			if late := time.Since(next); late > 100*time.Millisecond {
				next = time.Now() // fell far behind: do not burst to catch up
			}
		}
		now := time.Now()
		if !now.Before(end) {
			return
		}
		kind, id := m.next()
		if !burst && !now.Before(p.stampede) {
			kind, burst = opHot, true // everyone wants the hot key as it expires
		}
		if kind == opHot && !now.Before(p.stampede) && now.Before(p.stampede.Add(p.window)) {
			hotInWindow.Add(1)
		}
		sent.Add(1)
		t0 := time.Now()
		var err error
		switch kind {
		case opUpdate:
			w.edits++
			name := "User " + strconv.FormatInt(id, 10) + " (edit " + strconv.Itoa(w.edits) + ")"
			err = p.target.update(ctx, inst, id, name, "user"+strconv.FormatInt(id, 10)+"@example.org")
			w.res.updates++
		case opHot:
			err = p.target.hot(ctx, inst)
		default:
			err = p.target.read(ctx, inst, id)
		}
		took := time.Since(t0)
		if kind != opUpdate {
			w.res.reads++
			w.res.latency.record(took)
		}
		w.res.requests++
		p.timeline.record(t0, took, kind != opUpdate)
		switch {
		case err == nil:
		case errors.Is(err, tiercache.ErrNotFound) && kind != opUpdate:
			w.res.notFound++
		case ctx.Err() != nil:
			return
		default:
			w.res.errors++
			if w.res.firstErr == nil {
				w.res.firstErr = err
			}
		}
	}
}
