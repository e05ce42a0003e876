package cachetest

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Faults are what a Proxy does to the traffic it forwards. The zero value
// forwards faithfully.
type Faults struct {
	// Latency delays every chunk forwarded, in both directions.
	Latency time.Duration
	// Reset is the probability, per chunk from the server, of resetting
	// both connections (RST) instead of forwarding it.
	Reset float64
	// Truncate is the probability, per chunk from the server, of
	// forwarding only part of it and then closing both connections: the
	// client sees a reply cut short.
	Truncate float64
	// Stall stops forwarding anything (connections stay open and silent,
	// as with a paused server) until it is cleared.
	Stall bool
}

// Proxy is a TCP proxy for fault injection between a client and a server
// (a Redis). Its faults can be changed at any time; they apply to chunks
// forwarded from then on. It is safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	faults Faults
	rng    *rand.Rand
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup

	resets, truncations atomic.Int64
}

// StartProxy starts a proxy on a free loopback port to target, closed with
// the test. seed makes its random faults reproducible.
func StartProxy(tb testing.TB, target string, seed uint64) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("cachetest: proxy: %v", err)
	}
	p := &Proxy{
		ln:     ln,
		target: target,
		rng:    rand.New(rand.NewPCG(seed, seed^0x9E3779B97F4A7C15)),
		conns:  make(map[net.Conn]struct{}),
	}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(func() { p.Close() })
	return p
}

// Addr returns the address clients should dial instead of the target's.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetFaults replaces the faults.
func (p *Proxy) SetFaults(f Faults) {
	p.mu.Lock()
	p.faults = f
	p.mu.Unlock()
}

// Resets and Truncations count the faults injected so far.
func (p *Proxy) Resets() int64      { return p.resets.Load() }
func (p *Proxy) Truncations() int64 { return p.truncations.Load() }

// Close stops the proxy and closes every connection. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			client.Close()
			continue
		}
		if !p.track(client, server) {
			return
		}
		pair := &pair{client: client, server: server}
		p.wg.Add(2)
		go p.pipe(pair, client, server, false)
		go p.pipe(pair, server, client, true)
	}
}

func (p *Proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

// pair is a client connection and its server connection.
type pair struct {
	client, server net.Conn
	once           sync.Once
}

// close closes both sides; with reset, the client gets an RST.
func (pr *pair) close(reset bool) {
	pr.once.Do(func() {
		if reset {
			if tc, ok := pr.client.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
		}
		pr.client.Close()
		pr.server.Close()
	})
}

// pipe forwards src to dst, applying the faults; fromServer says which way.
func (p *Proxy) pipe(pr *pair, src, dst net.Conn, fromServer bool) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, src)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.forward(pr, dst, buf[:n], fromServer) {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				pr.close(false)
			} else if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			return
		}
	}
}

// forward writes one chunk under the current faults; false ends the pipe.
func (p *Proxy) forward(pr *pair, dst net.Conn, chunk []byte, fromServer bool) bool {
	for {
		p.mu.Lock()
		f := p.faults
		closed := p.closed
		var roll, cut float64
		if fromServer {
			roll, cut = p.rng.Float64(), p.rng.Float64()
		}
		p.mu.Unlock()
		if closed {
			return false
		}
		if !f.Stall {
			if f.Latency > 0 {
				time.Sleep(f.Latency)
			}
			switch {
			case fromServer && roll < f.Reset:
				p.resets.Add(1)
				pr.close(true)
				return false
			case fromServer && roll < f.Reset+f.Truncate:
				p.truncations.Add(1)
				dst.Write(chunk[:int(cut*float64(len(chunk)))])
				pr.close(false)
				return false
			}
			_, err := dst.Write(chunk)
			return err == nil
		}
		// Stalled: hold the chunk until the stall is cleared or the
		// connection is closed.
		time.Sleep(5 * time.Millisecond)
	}
}
