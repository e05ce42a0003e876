package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/demo/redact"
	"github.com/tiercache/tiercache/redisstore"
)

// redisURL is a parsed --redis flag.
type redisURL struct {
	opts *redis.Options
	// name is the URL without credentials, for messages and reports:
	// "redis://127.0.0.1:6379/0".
	name string
}

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
		return &redisURL{opts: opts, name: "unix://" + opts.Addr}, nil
	}
	scheme := "redis"
	if opts.TLSConfig != nil {
		scheme = "rediss"
	}
	opts.ContextTimeoutEnabled = true
	return &redisURL{opts: opts, name: fmt.Sprintf("%s://%s/%d", scheme, opts.Addr, opts.DB)}, nil
}

// connect returns a client and checks that Redis answers within 3 s. Its
// error says what to check (TLS, credentials, permissions; see
// redisstore.Store.Ping) and never holds the credentials.
func (r *redisURL) connect(ctx context.Context) (*redis.Client, error) {
	c := redis.NewClient(r.opts)
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := redisstore.New(c, &redisstore.Options{Timeout: 3 * time.Second}).Ping(pctx); err != nil {
		c.Close()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("cannot reach Redis at %s: %w", r.opts.Addr, err)
	}
	return c, nil
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
