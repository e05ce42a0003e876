package liveview_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/liveview"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/liveview/browsertest"
	"github.com/tiercache/tiercache/internal/keys"
	"github.com/tiercache/tiercache/redisstore"
	"github.com/tiercache/tiercache/stats"
)

// screenshotPath is where UPDATE_SCREENSHOT=1 writes the live page's
// screenshot, for the docs.
const screenshotPath = "../../../../docs/liveview.png"

func newStore(t *testing.T, rs *cachetest.Server) (*redisstore.Store, *redis.Client) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	return redisstore.New(rdb, nil), rdb
}

// TestLivePageInBrowser runs two processes' caches on a private Redis, the
// first watched by a live view, through a minute of varied traffic, a
// failing load and a runtime version bump; then loads the page in Chromium,
// waits until it shows its data, and checks that what it shows is the JSON
// document, number for number.
func TestLivePageInBrowser(t *testing.T) {
	ctx, page := browsertest.Start(t, 1280, 1000)
	rs := cachetest.StartRedis(t)
	clk := cachetest.NewClock(time.Now().Truncate(time.Second))
	var queries atomic.Uint64
	view, err := liveview.New(&liveview.Options{Now: clk.Now, Origin: func() (uint64, uint64) { return queries.Load(), 0 }})
	if err != nil {
		t.Fatal(err)
	}
	loader := func(_ context.Context, id string) (string, error) {
		queries.Add(1)
		switch {
		case strings.HasPrefix(id, "missing"):
			return "", tiercache.ErrNotFound
		case id == "broken":
			return "", errors.New("the database is on fire")
		}
		return "user " + id, nil
	}
	storeA, rdbA := newStore(t, rs)
	storeB, _ := newStore(t, rs)
	newCache := func(store *redisstore.Store, rec stats.Recorder) *tiercache.Cache[string] {
		c, err := tiercache.New(&tiercache.Options[string]{
			Keyspace: tiercache.Keyspace{Name: "user", Version: "v1"}, Store: store, Observe: stats.Observe{Recorder: rec},
			Retry: tiercache.Retry{Attempts: 1},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Ready(ctx); err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := newCache(storeA, view.Recorder(nil))
	b := newCache(storeB, nil) // another process: what it loads, a finds in L2
	view.Watch(a, func(ctx context.Context) error { return rdbA.Ping(ctx).Err() })

	var gen int64
	view.Sample(ctx)
	for step := range 60 {
		for i := range 20 + 12*(step%9) {
			a.Get(ctx, strconv.Itoa(i%(25+step)), loader) // the hot ids: L1, and misses for the new ones
		}
		for i := range 10 + step%7 {
			id := fmt.Sprintf("b%d-%d", step, i)
			b.Get(ctx, id, loader)
			a.Get(ctx, id, loader) // an L2 hit
		}
		if step%5 == 0 {
			a.Get(ctx, "missing"+strconv.Itoa(step%3), loader) // a miss, then negative hits
		}
		switch step {
		case 40:
			if _, err := a.Get(ctx, "broken", loader); err == nil {
				t.Fatal("a failing load gave no error")
			}
		case 45:
			bumped, err := a.BumpVersion(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, gen, _ = keys.ParseVersion(bumped.Keyspace.Version)
		}
		clk.Advance(time.Second)
		view.Sample(ctx)
	}

	srv := httptest.NewServer(view.Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + liveview.DataPath)
	if err != nil {
		t.Fatal(err)
	}
	var d liveview.Data
	err = json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if gen <= 0 || d.Keyspace.Version != fmt.Sprintf("v1+%d", gen) || d.Requests.Total == 0 || d.L2.Health != "ok" {
		t.Fatalf("the document before the browser: keyspace %+v (bumped to %d), %d requests, L2 %q", d.Keyspace, gen, d.Requests.Total, d.L2.Health)
	}

	page.Open(ctx, srv.URL+liveview.PagePath)
	el := page.Elements(ctx)
	show := func(id, wantText string) {
		t.Helper()
		if got := el[id].Text; got != wantText {
			t.Errorf("#%s shows %q, want %q", id, got, wantText)
		}
	}
	value := func(id, want string) {
		t.Helper()
		if got := el[id].Value; got == nil || *got != want {
			t.Errorf("#%s has data-value %s, want %q", id, quoted(got), want)
		}
	}
	count := func(id string, want uint64) {
		t.Helper()
		value(id, strconv.FormatUint(want, 10))
		if got := strings.ReplaceAll(el[id].Text, ",", ""); got != strconv.FormatUint(want, 10) {
			t.Errorf("#%s shows %q, want %d", id, el[id].Text, want)
		}
	}
	last := d.History[len(d.History)-1]
	show("keyspace-name", "user")
	show("keyspace-version", d.Keyspace.Version)
	show("keyspace-generation", strconv.FormatInt(gen, 10))
	show("keyspace-code-version", "v1")
	count("requests-total", d.Requests.Total)
	show("hit-ratio", fmt.Sprintf("%.1f%%", 100*d.Requests.HitRatio))
	value("requests-rate", strconv.FormatFloat(last.RequestsPerS, 'f', -1, 64))
	value("origin-rate", strconv.FormatFloat(last.OriginQueriesPerS, 'f', -1, 64))
	count("origin-total", d.Origin.Queries)
	show("l2-health", "ok")
	show("l2-breaker", "closed")
	count("l2-errors", d.L2.Errors)
	count("l1-size", uint64(d.L1.Size))
	for o, row := range d.Requests.ByOutcomeTier {
		for tier, n := range row {
			count("cell-"+o+"-"+tier, n)
		}
		count("cell-"+o+"-total", d.Requests.ByOutcome[o])
	}
	for _, n := range []uint64{d.Requests.ByOutcomeTier["hit"]["l1"], d.Requests.ByOutcomeTier["hit"]["l2"],
		d.Requests.ByOutcome["miss"], d.Requests.ByOutcome["negative"], d.Requests.ByOutcome["error"]} {
		if n == 0 {
			t.Errorf("the traffic left an outcome at 0: %+v", d.Requests.ByOutcomeTier)
		}
	}

	shown, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("#degradations li")].map(li => li.dataset.kind + " x" + li.dataset.count)`))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range d.Degradations {
		want = append(want, e.Kind+" x"+strconv.FormatUint(e.Count, 10))
	}
	if !reflect.DeepEqual(shown, want) || len(want) != 2 || d.Degradations[0].Kind != "version_switch" || d.Degradations[1].Kind != "error" {
		t.Errorf("degradations shown %q, in the document %q; want the version switch and the error", shown, want)
	}
	// A stacked chart draws the series that are not zero throughout the
	// history; every series is in the legend.
	drawn := func(rates func(p liveview.Point) map[string]float64) (n int) {
		seen := map[string]bool{}
		for _, p := range d.History {
			for k, v := range rates(p) {
				if v != 0 && !seen[k] {
					seen[k] = true
					n++
				}
			}
		}
		return n
	}
	outcomes := drawn(func(p liveview.Point) map[string]float64 { return p.ByOutcomePerS })
	for sel, want := range map[string]int{
		"#chart-outcomes path.line":      outcomes,
		"#chart-outcomes path.area":      outcomes,
		"#chart-outcomes .legend span":   len(stats.Outcomes()),
		"#chart-tiers path.line":         drawn(func(p liveview.Point) map[string]float64 { return p.ByTierPerS }),
		"#chart-tiers .legend span":      len(stats.Tiers()),
		"#chart-origin path.line":        1,
		"#chart-origin line.marker":      0, // the breaker never changed
		"#degradations li[data-kind]":    len(d.Degradations),
		"#requests-table tbody tr":       len(stats.Outcomes()),
		"#requests-table td[data-value]": (len(stats.Outcomes()) + 1) * (len(stats.Tiers()) + 1),
	} {
		if got := page.Count(ctx, sel); got != want {
			t.Errorf("%d %s, want %d", got, sel, want)
		}
	}
	if p := page.Problems(ctx); len(p) > 0 {
		t.Errorf("the page's console: %q", p)
	}

	png := page.Screenshot(ctx)
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("the screenshot is not a PNG (%d bytes)", len(png))
	}
	if os.Getenv("UPDATE_SCREENSHOT") != "" {
		if err := os.WriteFile(filepath.FromSlash(screenshotPath), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", screenshotPath)
	}
}

// quoted is *s quoted, or "none".
func quoted(s *string) string {
	if s == nil {
		return "none"
	}
	return strconv.Quote(*s)
}
