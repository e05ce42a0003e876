package cli

import (
	"context"
	"crypto/x509"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo/userdb/userdbtest"
)

// connectErr connects to rawURL with a connect timeout of an hour, so that
// only a diagnosis (not the timeout) can end a connection that hangs, and
// returns the error. The test's own deadline bounds it.
func connectErr(t *testing.T, rawURL string, adjust func(*redisURL)) error {
	t.Helper()
	r, err := parseRedisURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	r.timeout = time.Hour
	if adjust != nil {
		adjust(r)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := r.connect(ctx)
	if err == nil {
		c.Close()
	}
	return err
}

// foreignServer is a TCP listener that answers every connection with
// answer, as a server of another protocol would, until the test ends.
func foreignServer(t *testing.T, answer string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 512)
				c.Read(buf)
				io.WriteString(c, answer)
			}()
		}
	}()
	return ln.Addr().String()
}

// tlsRedis starts a private redis-server with a TLS port (clients need no
// certificate) and returns its address and the file of the certificate to
// trust.
func tlsRedis(t *testing.T) (addr, caFile string) {
	t.Helper()
	_, caFile, certFile, keyFile := cachetest.ThrowawayPKI(t, t.TempDir())
	port, err := cachetest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cachetest.StartRedis(t, cachetest.Config{Args: []string{
		"--tls-port", strconv.Itoa(port), "--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--tls-ca-cert-file", caFile, "--tls-auth-clients", "no",
	}})
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), caFile
}

// TestRedisDiagnosis: when the server at --redis does not answer as Redis,
// the error says what it is. A rediss:// URL to a plain-text Redis waited
// its whole timeout and said "context deadline exceeded"; a server that is
// not Redis was taken for a TLS-only one ("use a rediss:// URL").
func TestRedisDiagnosis(t *testing.T) {
	plain := cachetest.StartRedis(t)
	http := foreignServer(t, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
	tlsAddr, caFile := tlsRedis(t)
	for _, tc := range []struct {
		name, url string
		want      []string
	}{
		{"rediss to plain Redis", "rediss://" + plain.Addr(), []string{"does not speak TLS", "redis://"}},
		{"redis to another protocol", "redis://" + http, []string{"not a Redis server", `"HTTP/1.1 400 Bad Request"`}},
		{"rediss to another protocol", "rediss://" + http, []string{"not a Redis server", `"HTTP/1.1 400 Bad Request"`}},
		{"redis to TLS-only Redis", "redis://" + tlsAddr, []string{"accepts only TLS", "rediss://"}},
		{"rediss to TLS Redis, CA unknown", "rediss://" + tlsAddr, []string{"TLS handshake failed", "certificate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := connectErr(t, tc.url, nil)
			if err == nil {
				t.Fatal("connected")
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q, want %q", err, s)
				}
			}
		})
	}
	// The good cases still connect.
	if err := connectErr(t, "redis://"+plain.Addr(), nil); err != nil {
		t.Errorf("redis:// to plain Redis: %v", err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := connectErr(t, "rediss://"+tlsAddr, func(r *redisURL) {
		r.opts.TLSConfig.RootCAs = x509.NewCertPool()
		r.opts.TLSConfig.RootCAs.AppendCertsFromPEM(pem)
	}); err != nil {
		t.Errorf("rediss:// to TLS Redis with its CA: %v", err)
	}

	// Through the command: one line, exit 1.
	code, _, stderr := run(t, "inspect", "--redis", "rediss://"+plain.Addr(), "v1:user:1")
	if code != ExitFailure || !strings.Contains(stderr, "does not speak TLS") {
		t.Errorf("inspect --redis rediss://plain: exit code %d, stderr %q", code, stderr)
	}
	oneLineErr(t, stderr)
}

// TestRedisDiagnosisPostgres: PostgreSQL's port is not a Redis server, with
// or without TLS. Skipped when the test PostgreSQL server is not there.
func TestRedisDiagnosisPostgres(t *testing.T) {
	if c, err := pgx.Connect(t.Context(), userdbtest.AdminURL); err != nil {
		t.Skipf("skipping: no PostgreSQL at 127.0.0.1:5432: %v", err)
	} else {
		c.Close(t.Context())
	}
	for _, url := range []string{"redis://127.0.0.1:5432", "rediss://127.0.0.1:5432"} {
		err := connectErr(t, url, nil)
		if err == nil || !strings.Contains(err.Error(), "not look like a Redis server") || strings.Contains(err.Error(), "use a rediss") {
			t.Errorf("%s: %v, want it not taken for Redis", url, err)
		}
	}
}
