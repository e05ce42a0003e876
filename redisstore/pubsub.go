package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
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
	return s.resubscribe(ctx, h.Down, func(ctx context.Context) (bool, error) {
		return s.subscribeOnce(ctx, s.client, listener{
			channel: channel,
			up:      h.Up,
			message: func(m *redis.Message) { h.Message(m.Payload) },
		})
	})
}

// resubscribe runs once until ctx is done, calling down after each failure
// and waiting between attempts (50 ms doubling to 2 s, from 50 ms again
// after an attempt that was up). It returns ctx's error, or once's error if
// it wraps driver.ErrUnsupported: no attempt can succeed.
func (s *Store) resubscribe(ctx context.Context, down func(error), once func(context.Context) (wasUp bool, err error)) error {
	const minBackoff, maxBackoff = 50 * time.Millisecond, 2 * time.Second
	backoff := minBackoff
	for {
		wasUp, err := once(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		down(err)
		if errors.Is(err, driver.ErrUnsupported) {
			return err
		}
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

// listener is what one subscription listens to and whom it tells.
type listener struct {
	channel string
	up      func()
	message func(*redis.Message)
	// unreadable, if set, is called for a message go-redis could not read
	// (the connection stays usable); without it the subscription fails.
	unreadable func()
}

// subscribeOnce runs one subscription of client until it fails or ctx is
// done, and reports whether it was ever confirmed.
func (s *Store) subscribeOnce(ctx context.Context, client redis.UniversalClient, l listener) (wasUp bool, err error) {
	ps := client.Subscribe(ctx)
	defer ps.Close()
	// Interrupt a blocked receive as soon as ctx ends.
	defer context.AfterFunc(ctx, func() { ps.Close() })()
	if err := ps.Subscribe(ctx, l.channel); err != nil {
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
			if l.unreadable != nil && wasUp && isUnreadable(err) {
				pinged = false
				l.unreadable()
				continue
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
			if m.Kind == "subscribe" && m.Channel == l.channel {
				wasUp = true
				l.up()
			}
		case *redis.Message:
			l.message(m)
		case *redis.Pong:
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isUnreadable reports go-redis's error for a message whose reply it read
// whole but could not turn into a message (such as the null payload of
// tracking's flush invalidation on RESP2): the connection is in step.
func isUnreadable(err error) bool {
	return strings.HasPrefix(err.Error(), "redis: unsupported pubsub message")
}
