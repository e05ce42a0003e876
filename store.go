package tiercache

import (
	"context"
	"time"
)

// Store is the byte-level contract of the shared tier (L2). The redisstore
// package implements it for Redis; any key-value store with TTLs can.
//
// Keys are full value keys ("v1:user:42"); values are opaque bytes (the
// tiercache envelope). A missing key is not an error. Implementations must be
// safe for concurrent use and should bound every call by ctx.
type Store interface {
	// Get returns the bytes stored under key, or (nil, nil) when there are none.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores value under key for ttl. A Set also cancels any rebuild of key
	// in progress: a Locker's Fill under a lock taken before the Set must fail.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Delete removes keys, and like Set cancels rebuilds of them in progress.
	// Deleting a key that does not exist is not an error.
	Delete(ctx context.Context, keys ...string) error
}

// MultiGetter is implemented by stores that read many keys in one round trip.
// Without it, GetMany reads the shared tier one key at a time.
type MultiGetter interface {
	// GetMulti returns one entry per key, in order; nil for a missing key.
	GetMulti(ctx context.Context, keys []string) ([][]byte, error)
}

// Locker is implemented by stores that can coordinate rebuilds across
// processes: with it, one process in the whole fleet loads a missing or stale
// key while the others serve stale or wait. Without it, each process loads
// once per key (in-process single-flight still applies).
type Locker interface {
	// TryLock takes the rebuild lock of key for ttl if nobody holds it, and
	// returns, in the same round trip, the bytes currently stored under key
	// (nil when there are none), so a caller can see a fill that raced it.
	TryLock(ctx context.Context, key, token string, ttl time.Duration) (acquired bool, current []byte, err error)
	// Fill stores op.Value under op.Key for op.TTL only if op.Token still
	// holds the key's lock, releases the lock and, if op.Channel is set,
	// publishes op.Message on it, in one atomic step. It reports whether the
	// value was stored: false means the lock expired or a Set or Delete
	// cancelled it, and the value may be older than what the origin holds.
	Fill(ctx context.Context, op FillOp) (bool, error)
	// Unlock releases key's lock if token still holds it.
	Unlock(ctx context.Context, key, token string) error
}

// Broadcaster is implemented by stores that carry messages between the
// processes sharing them (Redis pub/sub). tiercache uses it to drop other
// processes' L1 copies on Set and Delete, to wake processes waiting for a
// rebuild, and to spread runtime version bumps.
type Broadcaster interface {
	// Publish sends message to every current subscriber of channel.
	Publish(ctx context.Context, channel, message string) error
	// Subscribe delivers the messages of channel to h until ctx is done, and
	// reconnects after failures. It calls h.Up after each (re)subscription
	// and h.Down when it notices the subscription lost, so that a subscriber
	// knows when it may have missed messages. It returns when ctx is done.
	Subscribe(ctx context.Context, channel string, h SubscriptionHandler) error
}

// SubscriptionHandler receives what a Broadcaster's subscription sees. Its
// methods are called from one goroutine and must not block for long.
type SubscriptionHandler interface {
	// Message is called with the payload of each message published.
	Message(payload string)
	// Up is called once the subscription is established or re-established.
	Up()
	// Down is called when the subscription is lost; messages may be missed
	// until the next Up.
	Down(err error)
}

// BatchLocker is implemented by Lockers that take and fill many rebuild
// locks in one round trip each, for GetMany. Without it, GetMany takes its
// locks one key at a time.
type BatchLocker interface {
	// TryLockMulti is TryLock for each key with its token.
	TryLockMulti(ctx context.Context, keys, tokens []string, ttl time.Duration) (acquired []bool, current [][]byte, err error)
	// FillMulti is Fill for each op; stored[i] reports whether ops[i] was.
	FillMulti(ctx context.Context, ops []FillOp) (stored []bool, err error)
}

// FillOp is a conditional fill (Locker.Fill, BatchLocker.FillMulti).
type FillOp struct {
	Key, Token string
	Value      []byte
	TTL        time.Duration
	// Channel, if set, receives Message when the value is stored, in the
	// same step: the fill's announcement costs no round trip of its own.
	Channel, Message string
}
