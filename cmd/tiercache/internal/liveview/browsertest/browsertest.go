// Package browsertest runs a headless Chromium for tests, driven with
// chromedp: the live view's page and the demo's HTML report are checked in a
// real browser.
//
// Chromium comes from Debian's packages: "make chromium", which "make test"
// runs first, installs it with apt-get as root. Without it a test fails,
// saying so, where it could have been installed (as root with apt-get) or
// on CI (CI set in the environment), so that a missing browser cannot pass
// for a passing test; it is skipped, saying how to get it, only where it
// cannot be installed.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// names returns the commands a Chromium may be installed as, Debian's first.
func names() []string {
	return []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"}
}

// Path returns the path of an installed Chromium, or "" if there is none.
func Path() string {
	for _, n := range names() {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// installable reports whether "make chromium" could install Chromium: the
// process is root and apt-get is there.
func installable() bool {
	_, err := exec.LookPath("apt-get")
	return os.Geteuid() == 0 && err == nil
}

// Timeout bounds a test's whole use of the browser.
const Timeout = 2 * time.Minute

// Page is a tab of a headless Chromium started for one test: it reads the
// tab's console from Start on. Its methods take the tab's chromedp context,
// which Start returns, and must be called from the test's goroutine.
type Page struct {
	tb      testing.TB
	mu      sync.Mutex
	msgs    []chromedp.ConsoleMessage
	seen    map[string]bool // barrier messages received
	changed chan struct{}   // closed and replaced when msgs or seen change
	done    chan struct{}   // closed when the console reader returns
}

// Start starts a headless Chromium for tb, with a window of width×height
// CSS pixels, and returns the chromedp context of its tab (for the methods
// of Page, chromedp.Do and chromedp.Run) and the Page; both end with the
// test. Without Chromium it fails tb, or skips it where Chromium cannot be
// installed (see the package comment).
func Start(tb testing.TB, width, height int) (context.Context, *Page) {
	tb.Helper()
	path := Path()
	if path == "" {
		msg := "no Chromium found (looked for " + strings.Join(names(), ", ") +
			"): run \"make chromium\" (as root it installs Debian's chromium with apt-get; make test does it first)"
		if os.Getenv("CI") != "" || installable() {
			tb.Fatal(msg)
		}
		tb.Skip(msg + "; skipped: it cannot be installed here (not root, or no apt-get)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // root in a container has no user namespace for it
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(width, height),
	)
	ctx, cancelTimeout := context.WithTimeout(context.WithoutCancel(tb.Context()), Timeout)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	p := &Page{tb: tb, seen: map[string]bool{}, changed: make(chan struct{}), done: make(chan struct{})}
	// Console starts the browser and opens the tab.
	messages := chromedp.Console(bctx)
	go p.read(messages)
	tb.Cleanup(func() {
		cancelBrowser()
		<-p.done
		cancelAlloc()
		cancelTimeout()
	})
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		tb.Fatalf("start Chromium (%s): %v", path, err)
	}
	return bctx, p
}

const barrierPrefix = "browsertest barrier "

func (p *Page) read(messages func(yield func(chromedp.ConsoleMessage, error) bool)) {
	defer close(p.done)
	for m, err := range messages {
		if err != nil {
			return
		}
		p.mu.Lock()
		if b, ok := strings.CutPrefix(m.Text, barrierPrefix); ok && m.Type == chromedp.ConsoleDebug {
			p.seen[b] = true
		} else {
			p.msgs = append(p.msgs, m)
		}
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
}

// Problems returns the uncaught exceptions, console errors and browser log
// errors (a failed request, a refused script) of the tab so far. It first
// waits until every message the page wrote before the call has been read,
// by writing a marker to the console and waiting for it.
func (p *Page) Problems(ctx context.Context) []string {
	p.tb.Helper()
	id := fmt.Sprint(time.Now().UnixNano())
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`console.debug(`+fmt.Sprintf("%q", barrierPrefix+id)+`)`)); err != nil {
		p.tb.Fatalf("write the console barrier: %v", err)
	}
	for {
		p.mu.Lock()
		ok, changed := p.seen[id], p.changed
		var out []string
		if ok {
			for _, m := range p.msgs {
				if m.IsException() || m.Type == chromedp.ConsoleError {
					out = append(out, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
				}
			}
		}
		p.mu.Unlock()
		if ok {
			return out
		}
		select {
		case <-changed:
		case <-p.done:
			p.tb.Fatal("the browser ended before the console barrier arrived")
		case <-ctx.Done():
			p.tb.Fatalf("waiting for the console barrier: %v", ctx.Err())
		}
	}
}

// Shown is what an element shows: its text, and its data-value attribute
// (what the page's script computed it from).
type Shown struct {
	Text  string  `json:"text"`
	Value *string `json:"value"`
}

// Elements returns what every element with an id shows, by id, read in one
// turn of the page's event loop, so that no redraw happens in between.
func (p *Page) Elements(ctx context.Context) map[string]Shown {
	p.tb.Helper()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]Shown](
		`Object.fromEntries([...document.querySelectorAll("[id]")].map(e =>
			[e.id, {text: e.textContent.trim(), value: e.dataset.value === undefined ? null : e.dataset.value}]))`))
	if err != nil {
		p.tb.Fatalf("read the page's elements: %v", err)
	}
	return got
}

// Count returns how many elements match the CSS selector sel.
func (p *Page) Count(ctx context.Context, sel string) int {
	p.tb.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
	if err != nil {
		p.tb.Fatalf("count %s: %v", sel, err)
	}
	return n
}

// Open navigates to url and waits until the page's script has drawn its
// data: until body has data-loaded="true".
func (p *Page) Open(ctx context.Context, url string) {
	p.tb.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		p.tb.Fatalf("open %s: %v", url, err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.body && document.body.dataset.loaded === "true"`,
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		p.tb.Fatalf("%s never showed its data: %v; console: %v", url, err, p.Problems(ctx))
	}
}

// Screenshot returns a PNG of the whole page.
func (p *Page) Screenshot(ctx context.Context) []byte {
	p.tb.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.tb.Fatalf("screenshot: %v", err)
	}
	return png
}
