package tiercache_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/redisstore"
)

// TestModel is a model-based randomized test of the consistency contract.
// Two families of caches (another Prefix and Name, the same ids) share one
// private redis-server; each family has its own origin and a few "processes"
// (each a Cache with its own go-redis client and redisstore.Store) whose
// goroutines read (Get, GetMany), write ("origin write then Delete", "origin
// write then Set") and, rarely, BumpVersion. Every answer is checked against
// the model:
//
//	C1 identity: a value is the value of the id asked for, in this family,
//	   and of a version the origin has had.
//	C2 read-your-writes: once p's Set or Delete of id returned nil, p's reads
//	   of id that start afterwards return a version >= the one written.
//	C3 bounded staleness: reads by any process that start more than B after
//	   a write returned return a version >= the written one. In fault
//	   windows (from a fault's start minus B to its end plus recovery) the
//	   bound is L1TTL+B instead.
//	C4 bumps: once p's BumpVersion returned nil, reads in p (in others: B
//	   later, outside fault windows) return values loaded or Set after the
//	   bump started.
//	C5 convergence: once the workload stops and faults are healed, every
//	   process serves the latest version of every id within L1TTL+2B.
//
// Errors and degraded answers are violations in the fault-free phase only.
// Each phase is a subtest on its own redis-server: "none", "proxy" (every
// client through a proxy injecting latency, resets and truncated replies in
// windows), "pause" (SIGSTOP) and "kill" (SIGKILL, restart empty, and a new
// process joins each family).
func TestModel(t *testing.T) {
	phases := []mdlPhase{
		{name: "none", length: 3 * time.Second},
		{name: "proxy", length: 3800 * time.Millisecond, staleTTL: time.Hour, proxy: true, faults: mdlProxyFaults},
		{name: "pause", length: 3400 * time.Millisecond, faults: mdlPauseFaults},
		{name: "kill", length: 4200 * time.Millisecond, staleTTL: time.Hour, faults: mdlKillFaults},
	}
	start := time.Now()
	for i, ph := range phases {
		t.Run(ph.name, func(t *testing.T) { mdlRunPhase(t, ph, uint64(i+1)) })
	}
	t.Logf("TestModel: %d phases in %v", len(phases), time.Since(start).Round(time.Millisecond))
}

// The model's parameters.
const (
	mdlIDs       = 12 // ids "0".."11"
	mdlAbsent    = 3  // the last ones start absent from the origin
	mdlProcs     = 3  // processes per family at the start
	mdlWorkers   = 4  // goroutines per process
	mdlBumpEvery = 700 * time.Millisecond
	mdlBumpFirst = 300 * time.Millisecond

	mdlL1TTL = 2 * time.Second
	// mdlB is the staleness bound without faults (the real one is about
	// HealthInterval + Timeout = 0.3 s).
	mdlB = time.Second
	// mdlRecovery is how long after a fault ends the fleet may take to be
	// whole again: the breaker's cooldown (default 1 s), then a missed
	// subscription is noticed within HealthInterval + Timeout.
	mdlRecovery = time.Second + 200*time.Millisecond + 100*time.Millisecond
	// mdlConvergeWithin bounds C5.
	mdlConvergeWithin = mdlL1TTL + 2*mdlB
	// mdlOpTimeout is a watchdog on every cache call: none should get near.
	mdlOpTimeout = 5 * time.Second
	// mdlMaxObs caps the observations kept for classification.
	mdlMaxObs = 300_000
)

// mdlPhase describes a subtest: its length, its options and the faults its
// schedule injects (on the test goroutine, while the workload runs).
type mdlPhase struct {
	name     string
	length   time.Duration
	staleTTL time.Duration
	proxy    bool
	faults   func(r *mdlRun)
}

// mdlValue is what the caches hold: the id, the family's marker, the
// origin's version and a global sequence number taken when the loader
// produced it or the test called Set.
type mdlValue struct {
	ID      string `json:"id"`
	Space   string `json:"space"`
	Version int64  `json:"version"`
	Seq     int64  `json:"seq"`
	Set     bool   `json:"set,omitempty"`
}

// mdlWrite is a write that returned nil. The writes of an id form a list,
// newest first, whose versions and completion times both decrease (writes
// of an id are serialized by mdlKey.mu).
type mdlWrite struct {
	version int64
	proc    int
	set     bool
	done    time.Duration // since the phase started
	prev    *mdlWrite
}

// mdlBump is a BumpVersion that returned nil; bumps form a list, newest
// first (one goroutine per family bumps).
type mdlBump struct {
	proc        int
	ks          string // the process's keyspace version before and after
	seq         int64  // values with Seq > seq were produced after it started
	start, done time.Duration
	prev        *mdlBump
}

// mdlKey is an id of a family: its origin row and its writes.
type mdlKey struct {
	id     string
	mu     sync.Mutex   // held across the origin write and the cache call
	origin atomic.Int64 // the row's version; 0: absent
	writes atomic.Pointer[mdlWrite]
	dirty  bool // the last write failed (mu)
}

type mdlProc struct {
	n int
	c *tiercache.Cache[mdlValue]
}

type mdlStats struct {
	gets, getManys, idReads        atomic.Int64
	writesOK, writesFailed         atomic.Int64
	bumpsOK, bumpsFailed           atomic.Int64
	readErrors, degraded, notFound atomic.Int64
}

// mdlFamily is a set of processes sharing a keyspace, and its origin.
type mdlFamily struct {
	name, space, prefix, ks string
	keys                    []*mdlKey
	byID                    map[string]*mdlKey
	bumps                   atomic.Pointer[mdlBump]
	setEnd                  sync.Map // Seq of a Set value -> when the Set returned

	mu    sync.Mutex
	procs []*mdlProc

	st mdlStats
}

// mdlObs is an observation that may be a violation: C1, C2, C4 (own
// process) always are; C3, C4o (another process's bump) and ERR depend on
// the fault windows, decided when the phase is over.
type mdlObs struct {
	kind   string
	fam    *mdlFamily
	proc   int
	id, op string
	at     time.Duration // when the read (or call) started
	got    int64         // version returned, 0 for "not found"
	gotSeq int64
	want   int64
	ref    time.Duration // when the write or bump measured against returned
	stale  time.Duration
	w      *mdlWrite // C3: the newest write newer than got, done before at
	b      *mdlBump
	detail string
	// stall marks an error that is a Redis call's deadline passing: on a
	// machine loaded by other tests a healthy server can miss the model's
	// 100 ms deadline, so it is not a violation even without faults (what
	// the failed call leaves behind is still checked like any failed
	// write).
	stall bool
}

type mdlWindow struct {
	what       string
	start, end time.Duration
}

// mdlRun is one phase.
type mdlRun struct {
	t      *testing.T
	ph     mdlPhase
	seed   uint64
	srv    *cachetest.Server
	proxy  *cachetest.Proxy
	addr   string
	t0     time.Time
	stop   time.Duration
	seq    atomic.Int64
	fams   []*mdlFamily
	wg     sync.WaitGroup
	ctx    context.Context
	maxSt  atomic.Int64 // largest staleness seen, ns
	nextID atomic.Uint64

	mu      sync.Mutex
	obs     []mdlObs
	dropped int
	windows []mdlWindow
}

func (r *mdlRun) now() time.Duration { return time.Since(r.t0) }

// at waits until the phase's clock reaches d: the phase's schedule.
func (r *mdlRun) at(d time.Duration) {
	if w := d - r.now(); w > 0 {
		<-time.After(w)
	}
}

func (r *mdlRun) window(what string, start time.Duration) {
	r.mu.Lock()
	r.windows = append(r.windows, mdlWindow{what, start, r.now()})
	r.mu.Unlock()
}

// exempt reports whether a read starting at d is in a fault window.
func (r *mdlRun) exempt(d time.Duration) bool {
	for _, w := range r.windows {
		if d >= w.start-mdlB && d <= w.end+mdlRecovery {
			return true
		}
	}
	return false
}

func (r *mdlRun) observe(o mdlObs) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.obs) >= mdlMaxObs {
		r.dropped++
		return
	}
	r.obs = append(r.obs, o)
}

func mdlRunPhase(t *testing.T, ph mdlPhase, seed uint64) {
	began := time.Now()
	r := &mdlRun{t: t, ph: ph, seed: seed, ctx: t.Context(), stop: ph.length}
	r.srv = cachetest.StartRedis(t)
	r.addr = r.srv.Addr()
	if ph.proxy {
		r.proxy = cachetest.StartProxy(t, r.srv.Addr(), seed)
		r.addr = r.proxy.Addr()
	}
	// Two families: the same ids, another Prefix and Name.
	r.fams = []*mdlFamily{
		mdlNewFamily("A", "space-A", "", "mdl"),
		mdlNewFamily("B", "space-B", "mdlB:", "mdl2"),
	}
	for _, f := range r.fams {
		for range mdlProcs {
			r.addProc(f)
		}
	}
	r.t0 = time.Now()
	for _, f := range r.fams {
		f.mu.Lock()
		for _, p := range f.procs {
			r.startWorkers(f, p)
		}
		f.mu.Unlock()
		r.wg.Go(func() { r.bumper(f) })
	}
	if ph.faults != nil {
		ph.faults(r)
	}
	r.wg.Wait()
	workload := r.now()

	// Heal (the schedules did already; this is a safety net), then repair
	// the ids whose last write failed, as the application would retry.
	if r.proxy != nil {
		r.proxy.SetFaults(cachetest.Faults{})
	}
	if err := r.srv.Resume(); err != nil {
		t.Errorf("resume: %v", err)
	}
	repaired := r.repair()
	took, converged := r.converge()

	violations := r.classify()
	r.report(workload, repaired, took, converged, time.Since(began))
	if len(violations) > 0 {
		t.Errorf("%s", mdlSummary(violations))
	}
}

func mdlNewFamily(name, space, prefix, ks string) *mdlFamily {
	f := &mdlFamily{name: name, space: space, prefix: prefix, ks: ks, byID: map[string]*mdlKey{}}
	for i := range mdlIDs {
		k := &mdlKey{id: strconv.Itoa(i)}
		if i < mdlIDs-mdlAbsent {
			k.origin.Store(1)
		}
		f.keys = append(f.keys, k)
		f.byID[k.id] = k
	}
	return f
}

// addProc starts a process of f: its own client, store and cache.
func (r *mdlRun) addProc(f *mdlFamily) *mdlProc {
	t := r.t
	t.Helper()
	// No retries in go-redis: every injected fault reaches the cache.
	rdb := redis.NewClient(&redis.Options{
		Addr: r.addr, ContextTimeoutEnabled: true, MaxRetries: -1,
		DialTimeout: 200 * time.Millisecond,
	})
	t.Cleanup(func() { rdb.Close() })
	store := redisstore.New(rdb, &redisstore.Options{HealthInterval: 200 * time.Millisecond, Timeout: 100 * time.Millisecond})
	c, err := tiercache.New(&tiercache.Options[mdlValue]{
		Keyspace: tiercache.Keyspace{Name: f.ks, Version: "v1"},
		Prefix:   f.prefix,
		Store:    store,
		TTL:      time.Hour,
		StaleTTL: r.ph.staleTTL,
		L1:       tiercache.L1[mdlValue]{TTL: mdlL1TTL},
		Rebuild:  tiercache.Rebuild{LockTTL: 2 * time.Second, LoadTimeout: time.Second},
		Jitter:   -1,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	f.mu.Lock()
	defer f.mu.Unlock()
	p := &mdlProc{n: len(f.procs), c: c}
	f.procs = append(f.procs, p)
	return p
}

func (r *mdlRun) startWorkers(f *mdlFamily, p *mdlProc) {
	for range mdlWorkers {
		seed := r.nextID.Add(1)
		r.wg.Go(func() { r.worker(f, p, rand.New(rand.NewPCG(r.seed, seed))) })
	}
}

func (r *mdlRun) worker(f *mdlFamily, p *mdlProc, rng *rand.Rand) {
	for r.now() < r.stop && r.ctx.Err() == nil {
		k := f.keys[rng.IntN(len(f.keys))]
		switch x := rng.IntN(100); {
		case x < 60:
			r.get(f, p, k)
		case x < 85:
			perm := rng.Perm(len(f.keys))[:1+rng.IntN(8)]
			ks := make([]*mdlKey, len(perm))
			for i, j := range perm {
				ks[i] = f.keys[j]
			}
			r.getMany(f, p, ks)
		case x < 92:
			r.write(f, p, k, false)
		default:
			r.write(f, p, k, true)
		}
	}
}

// load is the family's loader: the row, stamped.
func (r *mdlRun) load(f *mdlFamily) tiercache.LoaderFunc[mdlValue] {
	return func(ctx context.Context, id string) (mdlValue, error) {
		k, ok := f.byID[id]
		if !ok {
			return mdlValue{}, fmt.Errorf("model: loader asked for unknown id %q", id)
		}
		v := k.origin.Load()
		if v == 0 {
			return mdlValue{}, tiercache.ErrNotFound
		}
		return mdlValue{ID: id, Space: f.space, Version: v, Seq: r.seq.Add(1)}, nil
	}
}

// loadMany is the family's batch loader: absent ids are left out.
func (r *mdlRun) loadMany(f *mdlFamily) tiercache.BatchLoaderFunc[mdlValue] {
	return func(ctx context.Context, ids []string) (map[string]mdlValue, error) {
		m := make(map[string]mdlValue, len(ids))
		for _, id := range ids {
			k, ok := f.byID[id]
			if !ok {
				return nil, fmt.Errorf("model: batch loader asked for unknown id %q", id)
			}
			if v := k.origin.Load(); v > 0 {
				m[id] = mdlValue{ID: id, Space: f.space, Version: v, Seq: r.seq.Add(1)}
			}
		}
		return m, nil
	}
}

func (r *mdlRun) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.ctx, mdlOpTimeout)
}

func (r *mdlRun) get(f *mdlFamily, p *mdlProc, k *mdlKey) {
	ctx, cancel := r.opContext()
	defer cancel()
	s := r.now()
	v, err := p.c.Get(ctx, k.id, r.load(f))
	f.st.gets.Add(1)
	f.st.idReads.Add(1)
	switch {
	case err == nil:
		if r.identity(f, p, k, v, s, "Get") {
			r.check(f, p, k, v.Version, &v, s, "Get")
		}
	case errors.Is(err, tiercache.ErrNotFound):
		f.st.notFound.Add(1)
		r.check(f, p, k, 0, nil, s, "Get")
	default:
		if tiercache.Degraded(err) {
			f.st.degraded.Add(1)
			r.identity(f, p, k, v, s, "Get (degraded)")
		} else {
			f.st.readErrors.Add(1)
		}
		r.observe(mdlObs{kind: "ERR", fam: f, proc: p.n, id: k.id, op: "Get", at: s, detail: err.Error()})
	}
}

func (r *mdlRun) getMany(f *mdlFamily, p *mdlProc, ks []*mdlKey) {
	ids := make([]string, len(ks))
	for i, k := range ks {
		ids[i] = k.id
	}
	ctx, cancel := r.opContext()
	defer cancel()
	s := r.now()
	m, err := p.c.GetMany(ctx, ids, r.loadMany(f))
	f.st.getManys.Add(1)
	f.st.idReads.Add(int64(len(ids)))
	for id, v := range m {
		if !slices.Contains(ids, id) {
			r.observe(mdlObs{kind: "C1", fam: f, proc: p.n, id: id, op: "GetMany", at: s,
				detail: fmt.Sprintf("GetMany(%v) returned id %q it was not asked for: %+v", ids, id, v)})
		}
	}
	if err != nil {
		// Degraded or failed ids are not told apart: check identity only.
		if tiercache.Degraded(err) {
			f.st.degraded.Add(1)
		} else {
			f.st.readErrors.Add(1)
		}
		for _, k := range ks {
			if v, ok := m[k.id]; ok {
				r.identity(f, p, k, v, s, "GetMany (failed)")
			}
		}
		r.observe(mdlObs{kind: "ERR", fam: f, proc: p.n, id: strings.Join(ids, ","), op: "GetMany", at: s, detail: err.Error()})
		return
	}
	for _, k := range ks {
		v, ok := m[k.id]
		if !ok {
			f.st.notFound.Add(1)
			r.check(f, p, k, 0, nil, s, "GetMany")
			continue
		}
		if r.identity(f, p, k, v, s, "GetMany") {
			r.check(f, p, k, v.Version, &v, s, "GetMany")
		}
	}
}

// identity checks C1 and reports whether v passed.
func (r *mdlRun) identity(f *mdlFamily, p *mdlProc, k *mdlKey, v mdlValue, s time.Duration, op string) bool {
	var why string
	switch {
	case v.ID != k.id || v.Space != f.space:
		why = fmt.Sprintf("got %+v: another id's, keyspace's or prefix's value", v)
	case v.Version <= 0 || v.Version > k.origin.Load():
		why = fmt.Sprintf("got %+v: a version the origin never had (it is at v%d)", v, k.origin.Load())
	default:
		return true
	}
	r.observe(mdlObs{kind: "C1", fam: f, proc: p.n, id: k.id, op: op, at: s, got: v.Version, gotSeq: v.Seq, detail: why})
	return false
}

// check compares a read of k that started at s and returned version got
// (0: not found; v the value, if any) with the writes and bumps completed
// before s.
func (r *mdlRun) check(f *mdlFamily, p *mdlProc, k *mdlKey, got int64, v *mdlValue, s time.Duration, op string) {
	// Writes of k newer than got: versions and completion times decrease
	// along the list, so the walk stops at the first one not newer.
	var newest, own, earliest *mdlWrite
	for w := k.writes.Load(); w != nil && w.version > got; w = w.prev {
		if w.done >= s {
			continue
		}
		if newest == nil {
			newest = w
		}
		if own == nil && w.proc == p.n {
			own = w
		}
		earliest = w
	}
	seq := int64(0)
	if v != nil {
		seq = v.Seq
	}
	if earliest != nil {
		stale := s - earliest.done
		mdlRaise(&r.maxSt, stale)
		o := mdlObs{kind: "C3", fam: f, proc: p.n, id: k.id, op: op, at: s, got: got, gotSeq: seq, stale: stale, w: newest}
		if own != nil {
			o.kind, o.want, o.ref = "C2", own.version, own.done
			o.detail = fmt.Sprintf("own %s", mdlWriteName(own))
		}
		r.observe(o)
	}
	if v == nil {
		return
	}
	// Bumps: values must have been produced after the newest bump that
	// this process must have seen started.
	var ownB, otherB *mdlBump
	for b := f.bumps.Load(); b != nil && v.Seq <= b.seq; b = b.prev {
		if b.done >= s || f.setDuring(v, b) {
			continue
		}
		if ownB == nil && b.proc == p.n {
			ownB = b
		}
		if otherB == nil && b.done < s-mdlB {
			otherB = b
		}
	}
	switch {
	case ownB != nil:
		r.observe(mdlObs{kind: "C4", fam: f, proc: p.n, id: k.id, op: op, at: s, got: got, gotSeq: v.Seq, b: ownB, detail: mdlValueOrigin(v)})
	case otherB != nil:
		r.observe(mdlObs{kind: "C4o", fam: f, proc: p.n, id: k.id, op: op, at: s, got: got, gotSeq: v.Seq, b: otherB, detail: mdlValueOrigin(v)})
	}
}

// setDuring reports whether v is the value of a Set that had not returned
// when b started: such a Set may be ordered after the bump.
func (f *mdlFamily) setDuring(v *mdlValue, b *mdlBump) bool {
	if !v.Set {
		return false
	}
	end, ok := f.setEnd.Load(v.Seq)
	return !ok || end.(time.Duration) > b.start
}

func mdlValueOrigin(v *mdlValue) string {
	if v.Set {
		return "Set"
	}
	return "loaded"
}

func mdlWriteName(w *mdlWrite) string {
	op := "Delete"
	if w.set {
		op = "Set"
	}
	return fmt.Sprintf("%s v%d by p%d returned at %v", op, w.version, w.proc, mdlMs(w.done))
}

// write is a cache-aside write: update the row, then Delete or Set the id,
// holding the id's lock across both.
func (r *mdlRun) write(f *mdlFamily, p *mdlProc, k *mdlKey, set bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	version := k.origin.Add(1)
	ctx, cancel := r.opContext()
	defer cancel()
	s := r.now()
	var err error
	var seq int64
	op := "Delete"
	if set {
		op = "Set"
		seq = r.seq.Add(1)
		err = p.c.Set(ctx, k.id, mdlValue{ID: k.id, Space: f.space, Version: version, Seq: seq, Set: true})
	} else {
		err = p.c.Delete(ctx, k.id)
	}
	done := r.now()
	if err != nil {
		k.dirty = true
		f.st.writesFailed.Add(1)
		r.observe(mdlObs{kind: "ERR", fam: f, proc: p.n, id: k.id, op: op, at: s, detail: err.Error(), stall: errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)})
		return
	}
	if set {
		f.setEnd.Store(seq, done)
	}
	k.dirty = false
	k.writes.Store(&mdlWrite{version: version, proc: p.n, set: set, done: done, prev: k.writes.Load()})
	f.st.writesOK.Add(1)
}

// bumper makes one process of f bump the keyspace's version every
// mdlBumpEvery, from mdlBumpFirst on.
func (r *mdlRun) bumper(f *mdlFamily) {
	rng := rand.New(rand.NewPCG(r.seed, 0xb0b))
	for next := mdlBumpFirst; next < r.stop; next += mdlBumpEvery {
		r.at(next)
		if r.ctx.Err() != nil {
			return
		}
		f.mu.Lock()
		p := f.procs[rng.IntN(len(f.procs))]
		f.mu.Unlock()
		ctx, cancel := r.opContext()
		before := p.c.Keyspace().Version
		b := &mdlBump{proc: p.n, seq: r.seq.Add(1), start: r.now()}
		_, err := p.c.BumpVersion(ctx)
		b.done = r.now()
		b.ks = fmt.Sprintf("%s before, %s after", before, p.c.Keyspace().Version)
		cancel()
		if err != nil {
			f.st.bumpsFailed.Add(1)
			r.observe(mdlObs{kind: "ERR", fam: f, proc: p.n, op: "BumpVersion", at: b.start, detail: err.Error()})
			continue
		}
		b.prev = f.bumps.Load()
		f.bumps.Store(b)
		f.st.bumpsOK.Add(1)
	}
}

// The fault schedules.

func mdlProxyFaults(r *mdlRun) {
	windows := []struct{ start, length time.Duration }{
		{400 * time.Millisecond, 500 * time.Millisecond},
		{1200 * time.Millisecond, 500 * time.Millisecond},
	}
	for _, w := range windows {
		r.at(w.start)
		start := r.now()
		r.proxy.SetFaults(cachetest.Faults{Latency: 5 * time.Millisecond, Reset: 0.02, Truncate: 0.02})
		time.Sleep(w.length) // the fault window
		r.proxy.SetFaults(cachetest.Faults{})
		r.window("proxy faults", start)
	}
}

func mdlPauseFaults(r *mdlRun) {
	r.at(600 * time.Millisecond)
	start := r.now()
	if err := r.srv.Pause(); err != nil {
		r.t.Fatalf("pause: %v", err)
	}
	time.Sleep(600 * time.Millisecond) // the fault window
	if err := r.srv.Resume(); err != nil {
		r.t.Fatalf("resume: %v", err)
	}
	r.window("pause", start)
}

func mdlKillFaults(r *mdlRun) {
	// Four bumps (0.3, 1.0, 1.7, 2.4 s) before the kill: the version key
	// holds 4. The restarted server has lost it, and the two bumps after
	// the restart (3.1, 3.8 s) take it to 2 only: a fleet that keeps one
	// keyspace must cope with the generation going back.
	r.at(2500 * time.Millisecond)
	start := r.now()
	if err := r.srv.Kill(); err != nil {
		r.t.Fatalf("kill: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // the fault window
	if err := r.srv.Restart(); err != nil {
		r.t.Fatalf("restart: %v", err)
	}
	r.window("kill", start)
	// A new process joins each family and takes part in the rest.
	for _, f := range r.fams {
		p := r.addProc(f)
		r.startWorkers(f, p)
	}
}

// repair redoes, with a Delete from each family's first process, the ids
// whose last write failed, as the application would retry them.
func (r *mdlRun) repair() int {
	n := 0
	deadline := time.Now().Add(mdlConvergeWithin)
	for _, f := range r.fams {
		p := f.procs[0]
		for _, k := range f.keys {
			k.mu.Lock()
			for k.dirty {
				ctx, cancel := r.opContext()
				err := p.c.Delete(ctx, k.id)
				cancel()
				if err == nil {
					k.dirty = false
					k.writes.Store(&mdlWrite{version: k.origin.Load(), proc: p.n, done: r.now(), prev: k.writes.Load()})
					n++
					break
				}
				if time.Now().After(deadline) {
					r.t.Errorf("repair: Delete(%s) in family %s still fails: %v", k.id, f.name, err)
					break
				}
				runtime.Gosched()
			}
			k.mu.Unlock()
		}
	}
	return n
}

// converge polls every process of every family until each serves the
// latest version of every id (C5), for at most mdlConvergeWithin.
func (r *mdlRun) converge() (time.Duration, bool) {
	start := time.Now()
	for {
		bad := r.convergeRound()
		if len(bad) == 0 {
			return time.Since(start), true
		}
		if time.Since(start) > mdlConvergeWithin {
			for _, o := range bad {
				r.observe(o)
			}
			return time.Since(start), false
		}
		runtime.Gosched()
	}
}

func (r *mdlRun) convergeRound() []mdlObs {
	var bad []mdlObs
	s := r.now()
	for _, f := range r.fams {
		ids := make([]string, len(f.keys))
		for i, k := range f.keys {
			ids[i] = k.id
		}
		for _, p := range f.procs {
			ks := "keyspace " + p.c.Keyspace().Version
			ctx, cancel := r.opContext()
			for _, k := range f.keys {
				want := k.origin.Load()
				v, err := p.c.Get(ctx, k.id, r.load(f))
				var got int64 = -1
				detail := ks
				switch {
				case err == nil && v.ID == k.id && v.Space == f.space:
					got = v.Version
				case errors.Is(err, tiercache.ErrNotFound):
					got = 0
				case err != nil:
					detail += ", " + err.Error()
				default:
					detail += fmt.Sprintf(", got %+v", v)
				}
				if got != want {
					bad = append(bad, mdlObs{kind: "C5", fam: f, proc: p.n, id: k.id, op: "Get", at: s, got: got, want: want, detail: detail})
				}
			}
			m, err := p.c.GetMany(ctx, ids, r.loadMany(f))
			cancel()
			for _, k := range f.keys {
				want := k.origin.Load()
				v, ok := m[k.id]
				var got int64
				detail := ks
				switch {
				case err != nil:
					got, detail = -1, ks+", "+err.Error()
				case ok && (v.ID != k.id || v.Space != f.space):
					got, detail = -1, ks+fmt.Sprintf(", got %+v", v)
				case ok:
					got = v.Version
				}
				if got != want {
					bad = append(bad, mdlObs{kind: "C5", fam: f, proc: p.n, id: k.id, op: "GetMany", at: s, got: got, want: want, detail: detail})
				}
			}
		}
	}
	return bad
}

// mdlViolation is a classified violation, ready to print.
type mdlViolation struct {
	kind string
	at   time.Duration
	line string
}

// classify turns the observations into violations, now that the fault
// windows are known.
func (r *mdlRun) classify() []mdlViolation {
	var out []mdlViolation
	faulty := r.ph.faults != nil
	add := func(o mdlObs, kind, msg string) {
		out = append(out, mdlViolation{kind: kind, at: o.at, line: fmt.Sprintf("%s %s/p%d id %s (%s) read at %v: %s",
			kind, o.fam.name, o.proc, o.id, o.op, mdlMs(o.at), msg)})
	}
	for _, o := range r.obs {
		switch o.kind {
		case "C1":
			add(o, "C1", o.detail)
		case "C2":
			add(o, "C2", fmt.Sprintf("got %s, want >= v%d (%s); read started %v after it",
				mdlVersion(o.got), o.want, o.detail, mdlMs(o.at-o.ref)))
		case "C3":
			bound, where := mdlB, ""
			if r.exempt(o.at) {
				bound, where = mdlL1TTL+mdlB, " in a fault window"
			}
			if o.stale <= bound {
				continue
			}
			w := o.w
			for w.done >= o.at-bound {
				w = w.prev // not nil: the earliest newer write was done before at-stale
			}
			add(o, "C3", fmt.Sprintf("got %s, want >= v%d (%s); read started %v after it (staleness %v > bound %v%s)",
				mdlVersion(o.got), w.version, mdlWriteName(w), mdlMs(o.at-w.done), mdlMs(o.stale), bound, where))
		case "C4", "C4o":
			if o.kind == "C4o" && r.exempt(o.at) {
				continue
			}
			whose := "own"
			if o.kind == "C4o" {
				whose = "another process's"
			}
			add(o, "C4", fmt.Sprintf("got v%d with seq %d (%s), want seq > %d: %s BumpVersion by p%d (keyspace %s) started at %v, returned at %v; read started %v after it returned",
				o.got, o.gotSeq, o.detail, o.b.seq, whose, o.b.proc, o.b.ks, mdlMs(o.b.start), mdlMs(o.b.done), mdlMs(o.at-o.b.done)))
		case "C5":
			msg := fmt.Sprintf("%v after the workload stopped and faults healed, got %s, want %s", mdlConvergeWithin, mdlVersion(o.got), mdlVersion(o.want))
			if o.detail != "" {
				msg += " (" + o.detail + ")"
			}
			add(o, "C5", msg)
		case "ERR":
			if !faulty && !o.stall {
				add(o, "ERR", "error in the fault-free phase: "+o.detail)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b mdlViolation) int { return int(a.at - b.at) })
	return out
}

func (r *mdlRun) report(workload time.Duration, repaired int, took time.Duration, converged bool, total time.Duration) {
	t := r.t
	var maxOut, maxIn time.Duration
	for _, o := range r.obs {
		if o.kind != "C2" && o.kind != "C3" {
			continue
		}
		if r.exempt(o.at) {
			maxIn = max(maxIn, o.stale)
		} else {
			maxOut = max(maxOut, o.stale)
		}
	}
	for _, f := range r.fams {
		s := &f.st
		t.Logf("%s family %s (%d processes): %d Gets + %d GetManys (%d id reads, %d not found), writes %d ok / %d failed, bumps %d ok / %d failed, read errors %d, degraded %d",
			r.ph.name, f.name, len(f.procs), s.gets.Load(), s.getManys.Load(), s.idReads.Load(), s.notFound.Load(),
			s.writesOK.Load(), s.writesFailed.Load(), s.bumpsOK.Load(), s.bumpsFailed.Load(), s.readErrors.Load(), s.degraded.Load())
	}
	var ws []string
	for _, w := range r.windows {
		ws = append(ws, fmt.Sprintf("%s %v-%v", w.what, mdlMs(w.start), mdlMs(w.end)))
	}
	conv := "converged"
	if !converged {
		conv = "did NOT converge"
	}
	t.Logf("%s: max staleness %v (outside fault windows %v, inside %v); fault windows [%s]; workload %v, %d ids repaired, %s in %v; phase took %v",
		r.ph.name, mdlMs(time.Duration(r.maxSt.Load())), mdlMs(maxOut), mdlMs(maxIn), strings.Join(ws, "; "),
		mdlMs(workload), repaired, conv, mdlMs(took), mdlMs(total))
	if r.proxy != nil {
		t.Logf("%s: proxy injected %d resets, %d truncations", r.ph.name, r.proxy.Resets(), r.proxy.Truncations())
	}
	if r.dropped > 0 {
		t.Logf("%s: %d observations beyond the first %d were not kept", r.ph.name, r.dropped, mdlMaxObs)
	}
}

// mdlSummary lists the violations by kind, then the first two of each
// kind and the earliest others, up to 10 (more if there are many kinds).
func mdlSummary(vs []mdlViolation) string {
	counts := map[string]int{}
	for _, v := range vs {
		counts[v.kind]++
	}
	kinds := make([]string, 0, len(counts))
	for k := range counts {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	var b strings.Builder
	fmt.Fprintf(&b, "%d violations:", len(vs))
	for _, k := range kinds {
		fmt.Fprintf(&b, " %s×%d", k, counts[k])
	}
	picked := make([]bool, len(vs))
	var lines []int
	seen := map[string]int{}
	for i, v := range vs {
		if seen[v.kind] < 2 {
			seen[v.kind]++
			picked[i] = true
			lines = append(lines, i)
		}
	}
	for i := range vs {
		if len(lines) >= 10 {
			break
		}
		if !picked[i] {
			picked[i] = true
			lines = append(lines, i)
		}
	}
	slices.Sort(lines)
	for _, i := range lines {
		b.WriteString("\n  " + vs[i].line)
	}
	return b.String()
}

func mdlVersion(v int64) string {
	switch {
	case v == 0:
		return "not found"
	case v < 0:
		return "no value"
	}
	return "v" + strconv.FormatInt(v, 10)
}

// mdlRaise raises m to d if d is larger.
func mdlRaise(m *atomic.Int64, d time.Duration) {
	for {
		cur := m.Load()
		if int64(d) <= cur || m.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// mdlMs rounds a duration for the report.
func mdlMs(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
