package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/tiercache/tiercache/driver"
)

// Server-assisted invalidation (Redis client tracking, Redis 6+).
//
// Each tracking connection is a pub/sub connection of a small client of
// the store's own (made from the options of the caller's client, with its
// credentials, TLS and dialer, on RESP2), which, when it connects and before
// it subscribes, enables tracking on itself:
//
//	CLIENT TRACKING ON REDIRECT <its own id> BCAST PREFIX <prefix>
//
// and then subscribes to __redis__:invalidate. Redis then sends it, as
// messages on that channel, the name of every key under prefix that any
// client writes or deletes, or that expires or is evicted, and a null
// message for FLUSHALL and FLUSHDB. Redirecting to itself makes the
// tracking connection and the receiving one the same: the one cannot break
// without the other (so tracking-redir-broken, which Redis sends only to a
// RESP3 tracking connection whose redirect target has gone, cannot happen),
// and the subscription's health check (see Subscribe) notices its loss.
// RESP2 works on every Redis since 6.0, whatever protocol the caller's
// client speaks; go-redis reads the invalidations as messages with
// PayloadSlice.
//
// On Redis Cluster each master tracks only its own keys: the store keeps
// one tracking connection on every master, reports Up once all of them are
// subscribed, and re-establishes all of them when one fails or when the
// masters (CLUSTER SLOTS, read every HealthInterval) change: a failover or
// a new master.

// invalidateChannel is where Redis sends invalidations on RESP2.
const invalidateChannel = "__redis__:invalidate"

// Track delivers the invalidations of keys under prefix to h until ctx is
// done (see driver.Store.Track). It works on a *redis.Client (a single
// node, or Sentinel's failover client) and on a *redis.ClusterClient; on
// other clients, and when the server refuses CLIENT TRACKING or the
// subscription to __redis__:invalidate (Redis before 6, an ACL without
// +client|id +client|tracking &__redis__:invalidate), it returns an error
// wrapping driver.ErrUnsupported.
func (s *Store) Track(ctx context.Context, prefix string, h driver.TrackHandler) error {
	var masters func(context.Context) ([]*redis.Options, error)
	switch c := s.client.(type) {
	case *redis.Client:
		masters = func(context.Context) ([]*redis.Options, error) { return []*redis.Options{c.Options()}, nil }
	case *redis.ClusterClient:
		masters = func(ctx context.Context) ([]*redis.Options, error) { return s.clusterMasters(ctx, c) }
	default:
		err := fmt.Errorf("redisstore: tracking: %w: a %T", driver.ErrUnsupported, s.client)
		h.Down(err)
		return err
	}
	sh := &serialHandler{h: h}
	return s.resubscribe(ctx, h.Down, func(ctx context.Context) (bool, error) {
		nodes, err := masters(ctx)
		if err != nil {
			return false, fmt.Errorf("redisstore: tracking: masters: %w", err)
		}
		return s.trackNodes(ctx, nodes, prefix, sh)
	})
}

// serialHandler calls its handler one call at a time, whichever node's
// connection the call comes from.
type serialHandler struct {
	mu sync.Mutex
	h  driver.TrackHandler
}

func (s *serialHandler) invalidate(keys []string) {
	s.mu.Lock()
	s.h.Invalidate(keys)
	s.mu.Unlock()
}

func (s *serialHandler) up() {
	s.mu.Lock()
	s.h.Up()
	s.mu.Unlock()
}

// trackNodes runs one tracking connection on each of nodes until one fails,
// the masters change, or ctx is done; h.up is called once all are
// subscribed. It reports whether they all were.
func (s *Store) trackNodes(ctx context.Context, nodes []*redis.Options, prefix string, h *serialHandler) (wasUp bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu      sync.Mutex
		pending = len(nodes)
		wg      sync.WaitGroup
	)
	for _, node := range nodes {
		wg.Go(func() {
			client := trackingClient(node, prefix)
			defer client.Close()
			_, err := s.subscribeOnce(ctx, client, listener{
				channel: invalidateChannel,
				up: func() {
					mu.Lock()
					pending--
					all := pending == 0
					mu.Unlock()
					if all {
						h.up()
					}
				},
				message: func(m *redis.Message) {
					if m.Channel != invalidateChannel {
						return
					}
					if m.PayloadSlice == nil {
						h.invalidate(nil) // RESP2's null payload, if go-redis ever reads it as ""
						return
					}
					h.invalidate(m.PayloadSlice)
				},
				unreadable: func() { h.invalidate(nil) },
			})
			if isRefused(err) {
				err = fmt.Errorf("redisstore: tracking on %s: %w: %w", node.Addr, driver.ErrUnsupported, err)
			} else if err != nil {
				err = fmt.Errorf("redisstore: tracking on %s: %w", node.Addr, err)
			}
			cancel(err)
		})
	}
	if len(nodes) > 1 {
		wg.Go(func() { s.watchMasters(ctx, nodes, cancel) })
	}
	wg.Wait()
	mu.Lock()
	wasUp = pending <= 0
	mu.Unlock()
	return wasUp, context.Cause(ctx)
}

// errMastersChanged ends the tracking connections of a cluster whose
// masters changed.
var errMastersChanged = errors.New("redisstore: tracking: the cluster's masters changed")

// watchMasters reads the cluster's masters every HealthInterval and ends
// the tracking (cancel) when they are not nodes any more.
func (s *Store) watchMasters(ctx context.Context, nodes []*redis.Options, cancel context.CancelCauseFunc) {
	cc, ok := s.client.(*redis.ClusterClient)
	if !ok {
		return
	}
	want := make([]string, len(nodes))
	for i, n := range nodes {
		want[i] = n.Addr
	}
	slices.Sort(want)
	tick := time.NewTicker(s.opts.HealthInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		got, err := s.masterAddrs(ctx, cc)
		if err != nil {
			continue // the connections' own health checks see a dead node
		}
		if !slices.Equal(got, want) {
			cc.ReloadState(ctx)
			cancel(errMastersChanged)
			return
		}
	}
}

// masterAddrs returns the sorted addresses of the cluster's masters, as
// CLUSTER SLOTS gives them.
func (s *Store) masterAddrs(ctx context.Context, cc *redis.ClusterClient) ([]string, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	//lint:ignore SA1019 CLUSTER SLOTS works on Redis 6 (CLUSTER SHARDS is 7+) and is what the documented ACL allows (+cluster|slots).
	slots, err := cc.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, sl := range slots {
		if len(sl.Nodes) > 0 && !slices.Contains(addrs, sl.Nodes[0].Addr) {
			addrs = append(addrs, sl.Nodes[0].Addr)
		}
	}
	slices.Sort(addrs)
	return addrs, nil
}

// clusterMasters returns the client options of each master of the
// cluster: those of the cluster client's nodes, with each master's address.
func (s *Store) clusterMasters(ctx context.Context, cc *redis.ClusterClient) ([]*redis.Options, error) {
	addrs, err := s.masterAddrs(ctx, cc)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, errors.New("no master serves a slot")
	}
	node, err := cc.MasterForKey(ctx, addrs[0])
	if err != nil {
		return nil, fmt.Errorf("no node to copy options from: %w", err)
	}
	tmpl := node.Options()
	out := make([]*redis.Options, len(addrs))
	for i, a := range addrs {
		o := *tmpl
		o.Addr = a
		out[i] = &o
	}
	return out, nil
}

// trackingClient returns a client of the node that base configures whose
// connections turn tracking of prefix on, redirected to themselves, as
// they connect (after base's own OnConnect). It speaks RESP2, so that the
// invalidations arrive as pub/sub messages.
func trackingClient(base *redis.Options, prefix string) *redis.Client {
	o := *base
	// go-redis updates the pointed-to configuration of a live client under
	// its own lock: share nothing with it (and RESP2 has no notifications).
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	o.Protocol = 2
	o.PoolSize = 1
	o.MinIdleConns = 0
	o.MaxIdleConns = 0
	onConnect := base.OnConnect
	o.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
		if onConnect != nil {
			if err := onConnect(ctx, cn); err != nil {
				return err
			}
		}
		id, err := cn.ClientID(ctx).Result()
		if err != nil {
			return fmt.Errorf("CLIENT ID: %w", err)
		}
		if err := cn.Do(ctx, "CLIENT", "TRACKING", "ON", "REDIRECT", id, "BCAST", "PREFIX", prefix).Err(); err != nil {
			return fmt.Errorf("CLIENT TRACKING: %w", err)
		}
		return nil
	}
	return redis.NewClient(&o)
}

// isRefused reports a server's refusal of a command, as opposed to a
// failure: an unknown command or subcommand (Redis before 6), or a
// permission the user lacks (NOPERM).
func isRefused(err error) bool {
	if err == nil {
		return false
	}
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	return strings.HasPrefix(msg, "NOPERM") || strings.Contains(msg, "unknown command") ||
		strings.Contains(strings.ToLower(msg), "unknown subcommand")
}
