package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo/redact"
	"github.com/tiercache/tiercache/redisstore"
)

// redisURL is a parsed --redis flag.
type redisURL struct {
	opts *redis.Options
	// name is the URL without credentials, for messages and reports:
	// "redis://127.0.0.1:6379/0".
	name string
	// timeout bounds connect: connectTimeout.
	timeout time.Duration
}

// connectTimeout is how long connect waits for Redis to answer.
const connectTimeout = 3 * time.Second

// tlsGrace is how long connect waits for a rediss:// server to answer
// before it checks, in parallel, whether the server speaks plain text: a
// plain-text Redis never answers a TLS handshake (it waits for a newline),
// so without the check the command would wait its whole timeout and say
// only "deadline exceeded". A healthy TLS server answers within it on a
// local network; a slower one receives one plain-text PING, refuses it, and
// is waited for as usual.
const tlsGrace = 200 * time.Millisecond

// parseRedisURL parses a redis:// or rediss:// URL (with credentials,
// database number and go-redis query options). Its error, a usage error,
// quotes the URL with the password redacted and never echoes it.
func parseRedisURL(raw string) (*redisURL, error) {
	opts, err := redis.ParseURL(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error quotes the whole URL, password included
		}
		return nil, usagef("--redis: invalid URL %q: %s", redact.URL(raw), redact.Message(err.Error(), raw))
	}
	if opts.Network == "unix" {
		return &redisURL{opts: opts, name: "unix://" + opts.Addr, timeout: connectTimeout}, nil
	}
	scheme := "redis"
	if opts.TLSConfig != nil {
		scheme = "rediss"
	}
	opts.ContextTimeoutEnabled = true
	return &redisURL{opts: opts, name: fmt.Sprintf("%s://%s/%d", scheme, opts.Addr, opts.DB), timeout: connectTimeout}, nil
}

// connect returns a client and checks that Redis answers within r.timeout.
// Its error says what to check (TLS, credentials, permissions; see
// redisstore.Store.Ping), and, when the server does not answer as Redis,
// what it is (see probe.go): a plain-text Redis reached with rediss://, a
// TLS-only server reached with redis://, or not a Redis server. It never
// holds the credentials.
func (r *redisURL) connect(ctx context.Context) (*redis.Client, error) {
	c := redis.NewClient(r.opts)
	if err := r.ping(ctx, c); err != nil {
		c.Close()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("cannot reach Redis at %s: %w", r.opts.Addr, err)
	}
	return c, nil
}

// ping pings Redis through c, and diagnoses a failure.
func (r *redisURL) ping(ctx context.Context, c *redis.Client) error {
	pctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- redisstore.New(c, &redisstore.Options{Timeout: r.timeout}).Ping(pctx) }()
	var grace <-chan time.Time
	if r.opts.TLSConfig != nil {
		t := time.NewTimer(tlsGrace)
		defer t.Stop()
		grace = t.C
	}
	for {
		select {
		case err := <-done:
			if err == nil || ctx.Err() != nil {
				return err
			}
			return r.diagnose(ctx, err)
		case <-grace:
			grace = nil
			if p := probePlain(pctx, r.opts.Network, r.opts.Addr); p.verdict == speaksRESP {
				// The handshake in flight ends with c.Close.
				return errNoTLS
			}
		}
	}
}

// spokeTLS reports whether err shows that the server made (or refused, in
// TLS) a TLS handshake.
func spokeTLS(err error) bool {
	var alert tls.AlertError
	var verify *tls.CertificateVerificationError
	var authority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &alert) || errors.As(err, &verify) || errors.As(err, &authority) ||
		errors.As(err, &hostname) || errors.As(err, &invalid)
}

var (
	errNoTLS   = errors.New("the server does not speak TLS (it answers Redis commands in plain text): try a redis:// URL")
	errTLSOnly = errors.New("the server accepts only TLS: use a rediss:// URL")
)

// diagnose returns err, the failure of a ping, or what the probes found
// instead if they found the cause.
func (r *redisURL) diagnose(ctx context.Context, err error) error {
	var re redis.Error
	if errors.As(err, &re) || errors.Is(err, syscall.ECONNREFUSED) || spokeTLS(err) {
		// Redis answered (NOAUTH, NOPERM...), nothing listens, or the
		// server made a TLS handshake (a certificate not trusted, say):
		// Ping's hint is the diagnosis.
		return err
	}
	useTLS := r.opts.TLSConfig != nil
	switch plain := probePlain(ctx, r.opts.Network, r.opts.Addr); plain.verdict {
	case speaksRESP:
		if useTLS {
			return errNoTLS
		}
		return err
	case speaksTLS:
		if !useTLS {
			return errTLSOnly
		}
		return err
	case foreign:
		return fmt.Errorf("the server is not a Redis server: it answered a Redis PING with %s", plain.answer)
	case inconclusive:
		return err
	}
	closed := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
	switch {
	case useTLS && closed:
		// It closed both the TLS handshake and the plain-text PING.
		return errors.New("the server does not look like a Redis server: it closed the connection without a reply, both to a TLS handshake and to a Redis PING in plain text")
	case useTLS:
		return err
	}
	host, _, _ := net.SplitHostPort(r.opts.Addr)
	switch tp := probeTLS(ctx, r.opts.Network, r.opts.Addr, host); tp.verdict {
	case speaksTLS:
		return errTLSOnly
	case foreign:
		return fmt.Errorf("the server is not a Redis server: it speaks TLS, and answered a Redis PING with %s", tp.answer)
	case silent:
		return errors.New("the server does not look like a Redis server: it closed the connection without a reply, both to a Redis PING and to a TLS handshake")
	}
	return err
}

// dialRedis is what a command does with a required --redis flag: a usage
// error if it is empty or not a Redis URL, else a client that answered.
func dialRedis(ctx context.Context, command, raw string) (*redis.Client, error) {
	if raw == "" {
		return nil, usagef("%s: --redis is required", command)
	}
	rurl, err := parseRedisURL(raw)
	if err != nil {
		return nil, err
	}
	return rurl.connect(ctx)
}

// QuietRedisLogger is a go-redis logger (for redis.SetLogger) that drops
// everything: go-redis logs connection failures to stderr by itself, and the
// command reports them in its own words, once.
type QuietRedisLogger struct{}

// Printf drops the message.
func (QuietRedisLogger) Printf(context.Context, string, ...any) {}
