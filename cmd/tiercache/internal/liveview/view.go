package liveview

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/stats"
)

// Source is what a View shows: a *tiercache.Cache of any value type.
type Source interface {
	Stats() stats.Snapshot
	Keyspace() tiercache.Keyspace
}

// Options configure a View. The zero value of every field means its
// default.
type Options struct {
	// Origin, if set, returns the origin's queries so far, reads and
	// writes. Default none: the document's origin is null.
	Origin func() (reads, writes uint64)
	// Interval is how often Start samples. Default 1 second.
	Interval time.Duration
	// History is how many samples the document keeps. Default 120.
	History int
	// Degradations is how many entries of recent degradations it keeps.
	// Default 20.
	Degradations int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Defaults of Options.
const (
	DefaultInterval     = time.Second
	DefaultHistory      = 120
	DefaultDegradations = 20
)

// View is the live view of one cache. It is safe for concurrent use. Create
// one with New, pass Recorder to the cache's options, then Watch the cache.
type View struct {
	o    Options
	ring *ring
	src  atomic.Pointer[watched]
	page []byte

	mu         sync.Mutex
	history    []Point // oldest first, at most o.History
	prev       stats.Snapshot
	prevAt     time.Time
	prevOrigin uint64
	sampled    bool
	breaker    string // at the last sample
	version    string // of the keyspace, at the last sample
	pingAt     time.Time
	pingErr    string
}

// New returns a View, or an error if o has a negative setting.
func New(o *Options) (*View, error) {
	var opts Options
	if o != nil {
		opts = *o
	}
	switch {
	case opts.Interval < 0:
		return nil, fmt.Errorf("liveview: Interval must not be negative, not %v", opts.Interval)
	case opts.History < 0 || opts.Degradations < 0:
		return nil, fmt.Errorf("liveview: History and Degradations must not be negative, not %d and %d", opts.History, opts.Degradations)
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.History == 0 {
		opts.History = DefaultHistory
	}
	if opts.Degradations == 0 {
		opts.Degradations = DefaultDegradations
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	page, err := render(livePage, nil)
	if err != nil {
		return nil, err
	}
	return &View{o: opts, ring: newRing(opts.Degradations), page: page}, nil
}

// Recorder returns a stats.Recorder for the watched cache's Options: it
// keeps degraded answers and shared-tier errors in the view's list of
// recent degradations and passes every call on to next, which may be nil
// (prom's recorder, for example).
func (v *View) Recorder(next stats.Recorder) stats.Recorder { return recorder{v: v, next: next} }

// watched is what Watch was given.
type watched struct {
	src  Source
	ping func(ctx context.Context) error
}

// Watch makes the view show src. ping, if not nil, checks src's shared tier
// at every Sample, for the L2 health; without it the health follows the
// breaker alone. Watching again replaces both.
func (v *View) Watch(src Source, ping func(ctx context.Context) error) {
	v.src.Store(&watched{src: src, ping: ping})
}

func (v *View) source() *watched { return v.src.Load() }

func (v *View) degraded(kind string) { v.ring.add(v.o.Now(), kind, detail(kind)) }

// Sample takes a point of the history: the rates since the previous sample,
// the breaker's state and the keyspace's version (a change of either is
// listed among the degradations), and, with Options.Ping, the shared tier's
// health. It does nothing before Watch. Start calls it every Interval.
func (v *View) Sample(ctx context.Context) {
	w := v.source()
	if w == nil {
		return
	}
	var pingErr error
	if w.ping != nil {
		pctx, cancel := context.WithTimeout(ctx, min(v.o.Interval, 2*time.Second))
		pingErr = ping(pctx, w.ping)
		cancel()
	}
	now := v.o.Now()
	s := w.src.Stats()
	version := w.src.Keyspace().Version
	origin := v.originQueries()

	v.mu.Lock()
	defer v.mu.Unlock()
	v.pingAt, v.pingErr = time.Time{}, ""
	if w.ping != nil {
		v.pingAt = now
		if pingErr != nil {
			v.pingErr = pingErr.Error()
		}
	}
	brk := breakerState(&s)
	if v.sampled {
		dt := now.Sub(v.prevAt)
		if len(v.history) == v.o.History {
			copy(v.history, v.history[1:])
			v.history = v.history[:len(v.history)-1]
		}
		v.history = append(v.history, point(now, dt, &v.prev, &s, origin-min(v.prevOrigin, origin)))
	}
	if brk != v.breaker && (v.sampled || brk != "closed" && brk != "off") {
		kind := "breaker_" + strings.ReplaceAll(brk, "-", "_")
		v.ring.add(now, kind, breakerDetail(brk))
	}
	if v.sampled && version != v.version {
		v.ring.add(now, "version_switch", "keys moved from version "+v.version+" to "+version)
	}
	v.prev, v.prevAt, v.prevOrigin, v.sampled = s, now, origin, true
	v.breaker, v.version = brk, version
}

// ping calls f, turning a panic into an error: Ping is the caller's code,
// run on Start's goroutine.
func ping(ctx context.Context, f func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("ping panicked: %v", r)
		}
	}()
	return f(ctx)
}

func breakerDetail(state string) string {
	switch state {
	case "open":
		return "the circuit breaker opened: requests skip the shared tier"
	case "half-open":
		return "the circuit breaker is probing the shared tier"
	case "closed":
		return "the circuit breaker closed: the shared tier is back"
	}
	return "the circuit breaker is " + state
}

func (v *View) originQueries() uint64 {
	if v.o.Origin == nil {
		return 0
	}
	r, w := v.o.Origin()
	return r + w
}

// Start samples every Interval, the first time at once, until ctx is done
// or stop is called; stop waits for the sampling goroutine to return.
func (v *View) Start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(v.o.Interval)
		defer t.Stop()
		for {
			v.sampleSafely(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}

// sampleSafely is Sample on Start's goroutine: a panic in the caller's
// Origin or in the source is listed among the degradations, not a crash.
func (v *View) sampleSafely(ctx context.Context) {
	defer func() {
		if r := recover(); r != nil {
			v.ring.add(v.o.Now(), "sample_failed", fmt.Sprintf("taking a sample panicked: %v", r))
		}
	}()
	v.Sample(ctx)
}

// errNoSource is the answer before Watch.
var errNoSource = errors.New("liveview: no cache watched")

// Data returns the document of /debug/stats: the watched cache's counters
// now, the history and the recent degradations.
func (v *View) Data() (*Data, error) {
	w := v.source()
	if w == nil {
		return nil, errNoSource
	}
	d := &Data{Time: v.o.Now(), Degradations: v.ring.list()}
	s := w.src.Stats()
	d.fill(&s, w.src.Keyspace())
	if v.o.Origin != nil {
		r, w := v.o.Origin()
		d.Origin = &Origin{Reads: r, Writes: w, Queries: r + w}
	}
	v.mu.Lock()
	d.History = append(make([]Point, 0, len(v.history)), v.history...)
	pingAt, pingErr := v.pingAt, v.pingErr
	v.mu.Unlock()
	switch {
	case !d.L2.Enabled:
		d.L2.Health = "off"
	case w.ping != nil && pingAt.IsZero():
		d.L2.Health = "unknown"
	case pingErr != "":
		d.L2.Health = "down"
	case d.L2.Breaker != "closed":
		d.L2.Health = "degraded"
	default:
		d.L2.Health = "ok"
	}
	if d.L2.Enabled && !pingAt.IsZero() {
		d.L2.CheckedAt, d.L2.PingError = &pingAt, pingErr
	}
	return d, nil
}

// Routes of Handler.
const (
	PagePath  = "/debug/tiercache"
	DataPath  = "/debug/tiercache/data"
	StatsPath = "/debug/stats"
)

// Handler serves the live page at PagePath (HTML with its script and styles
// inline: nothing is loaded from elsewhere) and the Data document, the same
// at DataPath and StatsPath. It answers only GET and HEAD.
func (v *View) Handler() http.Handler {
	mux := http.NewServeMux()
	v.Register(mux)
	return mux
}

// Register adds the routes of Handler to mux.
func (v *View) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PagePath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(v.page)
	})
	mux.HandleFunc("GET "+PagePath+"/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, PagePath, http.StatusMovedPermanently)
	})
	mux.HandleFunc("GET "+DataPath, v.serveData)
	mux.HandleFunc("GET "+StatsPath, v.serveData)
}

func (v *View) serveData(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	d, err := v.Data()
	code := http.StatusOK
	var body any = d
	if err != nil {
		code, body = http.StatusServiceUnavailable, map[string]string{"error": err.Error()}
	}
	WriteJSON(w, code, body)
}

// WriteJSON answers with v in JSON and status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
