package demo

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo/userdb"
	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/redisstore"
	"github.com/tiercache/tiercache/stats"
)

// hotID is the id of the hot key of the stampede moment.
const hotID = 1

// instance is one simulated service instance: its caches (with their own
// L1s) and, with Redis, its own client.
type instance struct {
	users  *tiercache.Cache[userdb.User]
	hot    *tiercache.Cache[userdb.User]
	rdb    *redis.Client
	closed bool
}

// fleet is the cached target: instances over one origin and, with Redis,
// one shared tier.
type fleet struct {
	db        *userdb.DB
	instances []*instance
	hotLoad   tiercache.LoaderFunc[userdb.User]

	mu       sync.Mutex
	hotCalls []time.Time // when the hot key's loader ran

}

// fleetConfig is what newFleet needs.
type fleetConfig struct {
	instances int
	redis     *redis.Options // nil: in-process only
	version   string         // keyspace version, unique to the run
	hotTTL    time.Duration
	logger    *slog.Logger
}

// Cache options of the users keyspace: long enough a TTL not to expire in a
// short run (the hot keyspace shows expiry), a negative TTL for the ids that
// do not exist, and a stale window for runs longer than the TTL.
const (
	usersTTL      = 30 * time.Second
	usersStaleTTL = 10 * time.Second
	negativeTTL   = 30 * time.Second
)

func newFleet(ctx context.Context, db *userdb.DB, cfg fleetConfig) (*fleet, error) {
	f := &fleet{db: db}
	f.hotLoad = func(ctx context.Context, id string) (userdb.User, error) {
		f.mu.Lock()
		f.hotCalls = append(f.hotCalls, time.Now())
		f.mu.Unlock()
		return db.Load(ctx, id)
	}
	for range cfg.instances {
		in, err := newInstance(ctx, cfg)
		if err != nil {
			f.close()
			return nil, err
		}
		f.instances = append(f.instances, in)
	}
	return f, nil
}

func newInstance(ctx context.Context, cfg fleetConfig) (*instance, error) {
	in := &instance{}
	var store driver.Store
	if cfg.redis != nil {
		o := *cfg.redis
		o.ContextTimeoutEnabled = true
		in.rdb = redis.NewClient(&o)
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err := in.rdb.Ping(pctx).Err(); err != nil {
			in.rdb.Close()
			return nil, fmt.Errorf("connect to Redis at %s: %w", o.Addr, err)
		}
		store = redisstore.New(in.rdb, nil)
	}
	var err error
	in.users, err = tiercache.New(&tiercache.Options[userdb.User]{
		Keyspace:    tiercache.Keyspace{Name: "user", Version: cfg.version},
		Store:       store,
		TTL:         usersTTL,
		StaleTTL:    usersStaleTTL,
		NegativeTTL: negativeTTL,
		Logger:      cfg.logger,
	})
	if err == nil {
		// The hot key expires exactly at the stampede moment (no jitter)
		// and stays servable stale long after it; early refresh is off so
		// that the expiry happens under load rather than just before it.
		in.hot, err = tiercache.New(&tiercache.Options[userdb.User]{
			Keyspace: tiercache.Keyspace{Name: "user-hot", Version: cfg.version},
			Store:    store,
			TTL:      cfg.hotTTL,
			StaleTTL: time.Minute,
			Jitter:   -1,
			Rebuild:  tiercache.Rebuild{EarlyRefreshBeta: -1},
			Logger:   cfg.logger,
		})
	}
	if err != nil {
		in.close()
		return nil, fmt.Errorf("create cache: %w", err)
	}
	return in, nil
}

// close closes the caches, then the client; again, it does nothing. The
// caches' Stats stay readable.
func (in *instance) close() {
	if in.closed {
		return
	}
	in.closed = true
	if in.users != nil {
		in.users.Close()
	}
	if in.hot != nil {
		in.hot.Close()
	}
	if in.rdb != nil {
		in.rdb.Close()
	}
}

// warmHot loads the hot key into every instance, so that it expires in all
// of them at the stampede moment.
func (f *fleet) warmHot(ctx context.Context) error {
	for _, in := range f.instances {
		if _, err := in.hot.Get(ctx, strconv.Itoa(hotID), f.hotLoad); err != nil {
			return fmt.Errorf("load the hot key: %w", err)
		}
	}
	f.mu.Lock()
	f.hotCalls = f.hotCalls[:0]
	f.mu.Unlock()
	return nil
}

// hotCallsIn returns how many times the hot key's loader ran in [from, to).
func (f *fleet) hotCallsIn(from, to time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.hotCalls {
		if !t.Before(from) && t.Before(to) {
			n++
		}
	}
	return n
}

func (f *fleet) read(ctx context.Context, i int, id int64) error {
	_, err := f.instances[i].users.Get(ctx, strconv.FormatInt(id, 10), f.db.Load)
	return err
}

func (f *fleet) hot(ctx context.Context, i int) error {
	_, err := f.instances[i].hot.Get(ctx, strconv.Itoa(hotID), f.hotLoad)
	return err
}

func (f *fleet) update(ctx context.Context, i int, id int64, name, email string) error {
	if _, err := f.db.Update(ctx, id, name, email); err != nil {
		return err
	}
	// Invalidate through this instance: with Redis, the others drop their
	// L1 copies too; in-process only, they keep theirs until the TTL.
	if err := f.instances[i].users.Delete(ctx, strconv.FormatInt(id, 10)); err != nil {
		return fmt.Errorf("invalidate user %d: %w", id, err)
	}
	return nil
}

func (f *fleet) hitRatio() (float64, bool) {
	n := f.snapshot().numbers(snapshot{}, false)
	return n.HitRatio, true
}

// snapshot is the counters of every cache of the fleet at one time.
type snapshot struct {
	users, hot []stats.Snapshot // one per instance
}

// snapshot reads the counters of every cache.
func (f *fleet) snapshot() snapshot {
	var s snapshot
	for _, in := range f.instances {
		s.users = append(s.users, in.users.Stats())
		s.hot = append(s.hot, in.hot.Stats())
	}
	return s
}

// numbers sums what the caches (all of them, or only the hot key's)
// counted since base (the zero snapshot: since they started).
func (s snapshot) numbers(base snapshot, hotOnly bool) CacheNumbers {
	var t CacheNumbers
	add := func(now []stats.Snapshot, then []stats.Snapshot) {
		for i := range now {
			var b stats.Snapshot
			if i < len(then) {
				b = then[i]
			}
			t.add(&now[i], &b)
		}
	}
	add(s.hot, base.hot)
	if !hotOnly {
		add(s.users, base.users)
	}
	t.L1HitRatio = ratio(t.L1Answers, t.Requests)
	t.L2HitRatio = ratio(t.L2Answers, t.Requests)
	t.HitRatio = ratio(t.L1Answers+t.L2Answers, t.Requests)
	return t
}

// close closes every instance. It may be called more than once.
func (f *fleet) close() {
	for _, in := range f.instances {
		in.close()
	}
}

// CacheNumbers are the caches' own counters, summed over instances.
type CacheNumbers struct {
	// Requests counts cache reads; L1Answers and L2Answers those answered
	// from each tier without a load (fresh, negative and stale hits).
	Requests     uint64 `json:"requests"`
	L1Answers    uint64 `json:"l1_answers"`
	L2Answers    uint64 `json:"l2_answers"`
	NegativeHits uint64 `json:"negative_hits"`
	StaleHits    uint64 `json:"stale_served"`
	Misses       uint64 `json:"misses"`
	SharedLoads  uint64 `json:"shared_loads"`
	Loads        uint64 `json:"loads"`
	Errors       uint64 `json:"errors"`
	L2Errors     uint64 `json:"l2_errors"`
	// HitRatio is the share of cache reads answered without a load;
	// L1HitRatio and L2HitRatio split it by tier.
	HitRatio   float64 `json:"hit_ratio"`
	L1HitRatio float64 `json:"l1_hit_ratio"`
	L2HitRatio float64 `json:"l2_hit_ratio"`
}

// add adds what one cache counted from base to s (its counters only grow).
func (t *CacheNumbers) add(s, base *stats.Snapshot) {
	t.Requests += s.Total() - base.Total()
	for _, o := range []stats.Outcome{stats.Hit, stats.Negative, stats.Stale} {
		t.L1Answers += s.Requests(o, stats.L1) - base.Requests(o, stats.L1)
		t.L2Answers += s.Requests(o, stats.L2) - base.Requests(o, stats.L2)
	}
	t.NegativeHits += s.NegativeHits - base.NegativeHits
	t.StaleHits += s.StaleHits - base.StaleHits
	t.Misses += s.Misses - base.Misses
	t.SharedLoads += s.SharedLoads - base.SharedLoads
	t.Loads += s.Loads - base.Loads
	t.Errors += s.Errors - base.Errors
	t.L2Errors += s.L2Errors - base.L2Errors
}

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
