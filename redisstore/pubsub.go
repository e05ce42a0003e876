package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/driver"
)

// Publish sends message on channel and returns how many subscribers
// received it. On a cluster, Redis counts only the subscribers connected to
// the node that took the PUBLISH.
func (s *Store) Publish(ctx context.Context, channel, message string) (int64, error) {
	return do(s, ctx, write, 0, func(ctx context.Context) (int64, error) { return s.publish(ctx, channel, message) })
}

func (s *Store) publish(ctx context.Context, channel, message string) (int64, error) {
	n, err := s.cmd.Publish(ctx, channel, message).Result()
	if err != nil {
		return 0, fmt.Errorf("redisstore: PUBLISH: %w", err)
	}
	return n, nil
}

// Subscribe delivers the messages of channel to h until ctx is done. It runs
// its own health check rather than go-redis's silent reconnection, so that
// it can tell h when messages may have been missed: an idle connection is
// pinged every HealthInterval and declared dead if nothing answers within
// Timeout; a dead or failed subscription is reported with h.Down, closed and
// re-established with backoff (50 ms doubling to 2 s), and each confirmed
// (re)subscription is reported with h.Up. So a lost message goes unnoticed
// for at most HealthInterval + Timeout.
func (s *Store) Subscribe(ctx context.Context, channel string, h driver.Handler) error {
	const minBackoff, maxBackoff = 50 * time.Millisecond, 2 * time.Second
	backoff := minBackoff
	for {
		wasUp, err := s.subscribeOnce(ctx, channel, h)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		h.Down(err)
		if wasUp {
			backoff = minBackoff
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// subscribeOnce runs one subscription until it fails or ctx is done, and
// reports whether it was ever confirmed.
func (s *Store) subscribeOnce(ctx context.Context, channel string, h driver.Handler) (wasUp bool, err error) {
	ps := s.client.Subscribe(ctx)
	defer ps.Close()
	// Interrupt a blocked receive as soon as ctx ends.
	defer context.AfterFunc(ctx, func() { ps.Close() })()
	if err := ps.Subscribe(ctx, channel); err != nil {
		return false, fmt.Errorf("redisstore: SUBSCRIBE: %w", err)
	}
	pinged := false
	for {
		wait := s.opts.HealthInterval
		if pinged || !wasUp {
			wait = s.opts.Timeout
		}
		msg, err := ps.ReceiveTimeout(ctx, wait)
		if err != nil {
			if ctx.Err() != nil {
				return wasUp, ctx.Err()
			}
			if !isTimeout(err) || pinged || !wasUp {
				return wasUp, fmt.Errorf("redisstore: subscription: %w", err)
			}
			// Idle: check that the connection is alive.
			pctx, cancel := s.ctx(ctx)
			err = ps.Ping(pctx)
			cancel()
			if err != nil {
				return wasUp, fmt.Errorf("redisstore: subscription ping: %w", err)
			}
			pinged = true
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Channel == channel {
				wasUp = true
				h.Up()
			}
		case *redis.Message:
			h.Message(m.Payload)
		case *redis.Pong:
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
