package liveview

import (
	"time"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/internal/keys"
	"github.com/tiercache/tiercache/stats"
)

// Data is the JSON document of /debug/stats and /debug/tiercache/data. Names
// are snake_case; a duration's name ends with its unit (load_time_ms), a
// rate's with _per_s, a ratio's with _ratio and is in [0, 1]; counts are
// totals since the cache started.
type Data struct {
	// Time is when the document was made.
	Time     time.Time `json:"time"`
	Keyspace Keyspace  `json:"keyspace"`
	Requests Requests  `json:"requests"`
	Loads    Loads     `json:"loads"`
	// Refreshes are the background rebuilds of stale entries.
	Refreshes Refreshes `json:"refreshes"`
	// Locks are the rebuild locks in the shared tier.
	Locks Locks `json:"locks"`
	L1    L1    `json:"l1"`
	L2    L2    `json:"l2"`
	// Oversize counts values too large to cache and entries too large to
	// read (Options.L2.MaxValueSize).
	Oversize uint64 `json:"oversize"`
	// Origin is the origin's query counts; null when the view was not
	// given them (Options.Origin).
	Origin *Origin `json:"origin"`
	// History is one point per sample, oldest first: rates over the
	// interval since the sample before.
	History []Point `json:"history"`
	// Degradations are the recent degraded answers, shared-tier errors,
	// breaker changes and keyspace switches, newest first.
	Degradations []Degradation `json:"degradations"`
}

// Keyspace is the keyspace in use.
type Keyspace struct {
	Name string `json:"name"`
	// Version is the version in keys: the code's version, followed by
	// "+{generation}" once the keyspace has been bumped at run time.
	Version     string `json:"version"`
	CodeVersion string `json:"code_version"`
	// Generation is the runtime generation, 0 until the first bump.
	Generation int64 `json:"generation"`
	// Switches counts this process's moves to a new generation.
	Switches uint64 `json:"switches"`
}

// Requests counts Gets (and each id of a GetMany) by outcome and by the tier
// that answered. Every outcome and tier name of package stats is a key of
// the maps, with zero counts too.
type Requests struct {
	Total uint64 `json:"total"`
	// HitRatio is the share answered from the cache without waiting for a
	// load: fresh, negative and stale hits over all requests.
	HitRatio      float64                      `json:"hit_ratio"`
	ByOutcome     map[string]uint64            `json:"by_outcome"`
	ByTier        map[string]uint64            `json:"by_tier"`
	ByOutcomeTier map[string]map[string]uint64 `json:"by_outcome_tier"`
	// SharedLoads counts misses that waited for a load another caller
	// started.
	SharedLoads uint64 `json:"shared_loads"`
}

// Loads are the loader calls; each retry attempt is one.
type Loads struct {
	Count  uint64 `json:"count"`
	Errors uint64 `json:"errors"`
	// TimeMs is their total duration, MeanMs the mean of one.
	TimeMs float64 `json:"time_ms"`
	MeanMs float64 `json:"mean_ms"`
	// Abandoned counts loads whose loader ignored its context past
	// LoadTimeout.
	Abandoned uint64 `json:"abandoned"`
}

// Refreshes are background rebuilds of entries.
type Refreshes struct {
	Stale   uint64 `json:"stale"`
	Early   uint64 `json:"early"`
	Dropped uint64 `json:"dropped"`
}

// Locks are the shared tier's rebuild locks.
type Locks struct {
	Acquired     uint64 `json:"acquired"`
	Contended    uint64 `json:"contended"`
	Waits        uint64 `json:"waits"`
	WaitTimeouts uint64 `json:"wait_timeouts"`
	FillsLost    uint64 `json:"fills_lost"`
	Repaired     uint64 `json:"repaired"`
}

// L1 is the in-process tier.
type L1 struct {
	// Size is the number of entries (an estimate).
	Size          int    `json:"size"`
	Evictions     uint64 `json:"evictions"`
	Invalidations uint64 `json:"invalidations"`
}

// L2 is the shared tier.
type L2 struct {
	Enabled bool `json:"enabled"`
	// Health is "off" (no shared tier), "ok", "degraded" (the breaker is
	// open or half-open: requests skip the tier), "down" (the last ping
	// failed) or "unknown" (not checked yet).
	Health string `json:"health"`
	// Breaker is "closed", "open", "half-open", or "off" without a shared
	// tier.
	Breaker string `json:"breaker"`
	// PingError is the last ping's error, "" if it succeeded.
	PingError string `json:"ping_error,omitempty"`
	// CheckedAt is when the tier was last pinged; absent if never.
	CheckedAt      *time.Time `json:"checked_at,omitempty"`
	Errors         uint64     `json:"errors"`
	Corrupt        uint64     `json:"corrupt"`
	WritesRepaired uint64     `json:"writes_repaired"`
}

// Origin counts the origin's queries.
type Origin struct {
	Reads   uint64 `json:"reads"`
	Writes  uint64 `json:"writes"`
	Queries uint64 `json:"queries"`
}

// Point is one sample of the history: what happened over the IntervalS
// seconds before Time.
type Point struct {
	Time      time.Time `json:"time"`
	IntervalS float64   `json:"interval_s"`
	// RequestsPerS and the maps split the requests of the interval.
	RequestsPerS  float64            `json:"requests_per_s"`
	ByOutcomePerS map[string]float64 `json:"by_outcome_per_s"`
	ByTierPerS    map[string]float64 `json:"by_tier_per_s"`
	// HitRatio is that of the interval's requests (0 without requests).
	HitRatio float64 `json:"hit_ratio"`
	// OriginQueriesPerS is the origin's queries (reads and writes); 0
	// when the view has no Origin.
	OriginQueriesPerS float64 `json:"origin_queries_per_s"`
	// Breaker is the breaker's state at Time.
	Breaker string `json:"breaker"`
}

// fill sets the fields of d that come from a cache's snapshot and keyspace.
func (d *Data) fill(s *stats.Snapshot, ks tiercache.Keyspace) {
	code, gen, ok := keys.ParseVersion(ks.Version)
	if !ok {
		code, gen = ks.Version, 0
	}
	d.Keyspace = Keyspace{Name: ks.Name, Version: ks.Version, CodeVersion: code, Generation: gen, Switches: s.VersionSwitches}
	d.Requests = requests(s)
	d.Loads = Loads{
		Count: s.Loads, Errors: s.LoadErrors, TimeMs: ms(s.LoadTime), Abandoned: s.LoadsAbandoned,
	}
	if s.Loads > 0 {
		d.Loads.MeanMs = ms(s.LoadTime) / float64(s.Loads)
	}
	d.Refreshes = Refreshes{Stale: s.Refreshes, Early: s.EarlyRefreshes, Dropped: s.RefreshesDropped}
	d.Locks = Locks{
		Acquired: s.LockAcquired, Contended: s.LockContended, Waits: s.LockWaits,
		WaitTimeouts: s.LockWaitTimeouts, FillsLost: s.FillsLost, Repaired: s.LocksRepaired,
	}
	d.L1 = L1{Size: s.L1Size, Evictions: s.L1Evictions, Invalidations: s.Invalidations}
	d.L2.Enabled = s.Breaker != ""
	d.L2.Breaker = breakerState(s)
	d.L2.Errors, d.L2.Corrupt, d.L2.WritesRepaired = s.L2Errors, s.L2Corrupt, s.WritesRepaired
	d.Oversize = s.Oversize
}

func requests(s *stats.Snapshot) Requests {
	r := Requests{
		Total:         s.Total(),
		HitRatio:      s.HitRatio(),
		ByOutcome:     make(map[string]uint64, len(stats.Outcomes())),
		ByTier:        make(map[string]uint64, len(stats.Tiers())),
		ByOutcomeTier: make(map[string]map[string]uint64, len(stats.Outcomes())),
		SharedLoads:   s.SharedLoads,
	}
	for _, t := range stats.Tiers() {
		r.ByTier[t.String()] = 0
	}
	for _, o := range stats.Outcomes() {
		row := make(map[string]uint64, len(stats.Tiers()))
		for _, t := range stats.Tiers() {
			n := s.Requests(o, t)
			row[t.String()] = n
			r.ByOutcome[o.String()] += n
			r.ByTier[t.String()] += n
		}
		r.ByOutcomeTier[o.String()] = row
	}
	return r
}

func breakerState(s *stats.Snapshot) string {
	if s.Breaker == "" {
		return "off"
	}
	return s.Breaker
}

// point returns the rates between two snapshots taken dt apart.
func point(at time.Time, dt time.Duration, prev, cur *stats.Snapshot, originDelta uint64) Point {
	sec := dt.Seconds()
	p := Point{
		Time: at, IntervalS: sec, Breaker: breakerState(cur),
		ByOutcomePerS: make(map[string]float64, len(stats.Outcomes())),
		ByTierPerS:    make(map[string]float64, len(stats.Tiers())),
	}
	rate := func(n uint64) float64 {
		if sec <= 0 {
			return 0
		}
		return float64(n) / sec
	}
	var total, answered uint64
	byTier := make(map[stats.Tier]uint64, len(stats.Tiers()))
	for _, o := range stats.Outcomes() {
		var n uint64
		for _, t := range stats.Tiers() {
			c := cur.Requests(o, t) - min(prev.Requests(o, t), cur.Requests(o, t))
			n += c
			byTier[t] += c
		}
		p.ByOutcomePerS[o.String()] = rate(n)
		total += n
		switch o {
		case stats.Hit, stats.Negative, stats.Stale:
			answered += n
		}
	}
	for _, t := range stats.Tiers() {
		p.ByTierPerS[t.String()] = rate(byTier[t])
	}
	p.RequestsPerS = rate(total)
	if total > 0 {
		p.HitRatio = float64(answered) / float64(total)
	}
	p.OriginQueriesPerS = rate(originDelta)
	return p
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
