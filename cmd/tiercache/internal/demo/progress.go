package demo

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progress shows how a phase is going: on a terminal, one line redrawn in
// place every 200 ms with a bar; otherwise a plain line every second, which
// reads well in a log. A nil *progress shows nothing.
type progress struct {
	w        io.Writer
	terminal bool
}

// sample returns the live numbers: requests sent so far, the hit ratio (ok is
// false without a cache) and origin queries so far.
type sample func() (requests uint64, hitRatio float64, ok bool, origin uint64)

// logf writes one line of setup news.
func (p *progress) logf(format string, args ...any) {
	if p == nil {
		return
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

// start shows the progress of a phase of length d from start until the
// returned stop is called; stop waits for the display to finish.
func (p *progress) start(name string, start time.Time, d time.Duration, s sample) (stop func()) {
	if p == nil {
		return func() {}
	}
	every := time.Second
	if p.terminal {
		every = 200 * time.Millisecond
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				p.line(name, start, d, s, true)
				if p.terminal {
					fmt.Fprintln(p.w)
				}
				return
			case <-t.C:
				p.line(name, start, d, s, false)
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

func (p *progress) line(name string, start time.Time, d time.Duration, s sample, final bool) {
	n, r, ok, origin := s()
	el := time.Since(start)
	if final || el > d {
		el = d
	}
	hit := ""
	if ok {
		hit = fmt.Sprintf("  hit ratio %5.1f%%", 100*r)
	}
	text := fmt.Sprintf("%-8s %4.1fs/%.1fs  %s requests%s  origin queries %s",
		name, el.Seconds(), d.Seconds(), count(n), hit, count(origin))
	if final && !p.terminal {
		text = fmt.Sprintf("%-8s done: %s requests in %.1fs%s  origin queries %s",
			name, count(n), time.Since(start).Seconds(), hit, count(origin))
	}
	if !p.terminal {
		fmt.Fprintln(p.w, text)
		return
	}
	const width = 20
	filled := int(width * el / max(d, 1))
	bar := strings.Repeat("█", filled) + strings.Repeat("░", width-filled)
	fmt.Fprintf(p.w, "\r\033[K%s %s", bar, text)
}
