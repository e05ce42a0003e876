package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"time"

	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo/redact"
)

// When a server at a --redis address does not answer as Redis, the command
// asks it two more questions, on connections of their own, to say what is
// wrong rather than "context deadline exceeded" (a TLS handshake with a
// plain-text Redis, which waits for a newline that never comes) or "use a
// rediss:// URL" (for a server that is not Redis at all, PostgreSQL say):
//
//   - probePlain sends an inline PING in plain text: Redis answers it in
//     RESP ("+PONG", or "-NOAUTH ..." with a password), whatever its
//     settings; anything else is not a plain-text Redis.
//   - probeTLS makes a TLS handshake without verifying the certificate (it
//     asks only whether the server speaks TLS; it sends nothing but PING)
//     and sends PING over it.
//
// Neither sends credentials.

// probeTimeout bounds each probe.
const probeTimeout = time.Second

// verdict is what a probe found.
type verdict int

const (
	inconclusive verdict = iota // no answer in time, or no connection
	speaksRESP                  // answered in Redis's protocol
	speaksTLS                   // completed a TLS handshake (or refused one with an alert)
	foreign                     // answered something that is not Redis's protocol
	silent                      // closed the connection without a reply
)

// probe is what a probe found, and what the server answered if foreign.
type probe struct {
	verdict verdict
	answer  string // quoted, clipped
}

// isRESP reports whether b starts like a RESP2 or RESP3 reply.
func isRESP(b []byte) bool {
	return len(b) > 0 && strings.IndexByte("+-:$*_,#!=(%~>|", b[0]) >= 0
}

// classify reads the first line of a reply on r.
func classify(r io.Reader) probe {
	line, err := bufio.NewReaderSize(r, 512).ReadSlice('\n')
	switch {
	case len(line) == 0 && (errors.Is(err, io.EOF) || isReset(err)):
		return probe{verdict: silent}
	case len(line) == 0:
		return probe{verdict: inconclusive}
	case len(line) >= 2 && line[0] == 0x15 && line[1] == 0x03:
		// A TLS alert record: a TLS server refusing what it got.
		return probe{verdict: speaksTLS}
	case isRESP(line) && (bytes.HasSuffix(line, []byte("\r\n")) || errors.Is(err, bufio.ErrBufferFull)):
		// A long line is an error quoting what it got: "-ERR unknown
		// command ...".
		return probe{verdict: speaksRESP}
	}
	return probe{verdict: foreign, answer: redact.Quote(strings.TrimRight(string(line), "\r\n"))}
}

// isReset reports whether err is a connection failure other than a
// timeout (a reset, say).
func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// dialProbe opens a connection for a probe, with a deadline of at most
// probeTimeout.
func dialProbe(ctx context.Context, network, addr string) (net.Conn, error) {
	if network == "" {
		network = "tcp"
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	return conn, nil
}

// probePlain asks the server at addr for a plain-text PING.
func probePlain(ctx context.Context, network, addr string) probe {
	conn, err := dialProbe(ctx, network, addr)
	if err != nil {
		return probe{verdict: inconclusive}
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "PING\r\n"); err != nil {
		return probe{verdict: silent}
	}
	return classify(conn)
}

// probeTLS makes a TLS handshake with the server at addr and asks it for a
// PING over it.
func probeTLS(ctx context.Context, network, addr, serverName string) probe {
	conn, err := dialProbe(ctx, network, addr)
	if err != nil {
		return probe{verdict: inconclusive}
	}
	defer conn.Close()
	// Not verified: the probe only asks whether the server speaks TLS, and
	// sends nothing secret.
	tc := tls.Client(conn, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	var alert tls.AlertError
	var header tls.RecordHeaderError
	err = tc.HandshakeContext(ctx)
	switch {
	case errors.As(err, &alert):
		return probe{verdict: speaksTLS} // it refused us, in TLS
	case errors.As(err, &header):
		// It answered, but not in TLS: a plain-text Redis answers a
		// ClientHello that happens to hold a newline with an error.
		return classify(io.MultiReader(bytes.NewReader(header.RecordHeader[:]), conn))
	case isTimeout(err):
		return probe{verdict: inconclusive}
	case err != nil:
		return probe{verdict: silent} // closed on the handshake
	}
	if _, err := io.WriteString(tc, "PING\r\n"); err != nil {
		return probe{verdict: speaksTLS}
	}
	if p := classify(tc); p.verdict == foreign {
		return p
	}
	return probe{verdict: speaksTLS}
}
