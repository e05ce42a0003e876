// Package driver is the contract between tiercache and a shared tier (L2),
// the way database/sql/driver is database/sql's: users of tiercache never
// name it; they pass a Store made by a package such as redisstore.
//
// A Store is one interface. A store that cannot do something (take rebuild
// locks, carry messages, keep runtime generations) says so in Capabilities
// and returns ErrUnsupported from those methods. So a wrapper that embeds a
// Store (to trace or measure it) keeps every capability of the store it
// wraps, where optional interfaces found by type assertion would be lost
// silently; tiercache logs the capabilities it found when a cache starts.
//
// Keys are full keys made by tiercache ("v1:user:42"); a store derives the
// keys of rebuild locks from them (redisstore uses "{v1:user:42}:lock").
// Values are opaque bytes. Every method must be safe for concurrent use and
// bounded by ctx and by the store's own timeout; tiercache keeps each call
// to at most MaxBatch keys.
package driver

import (
	"context"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"time"
)

// ErrUnsupported is returned by the methods of a capability the store does
// not have.
var ErrUnsupported = errors.New("tiercache/driver: not supported by this store")

// ErrUnreachable marks (wrapped, with %w) the error of a call that could not
// reach the store's server at all: the connection was refused or could not be
// dialled. tiercache opens its circuit breaker at once on such an error,
// where timeouts and other failures open it only at a high failure rate. A
// store that cannot tell returns its errors unmarked.
var ErrUnreachable = errors.New("tiercache/driver: server unreachable")

// MaxBatch is the most keys tiercache passes to one call, so that no call
// outlives the store's deadline however large a GetMany is.
const MaxBatch = 512

// Store is a shared tier.
type Store interface {
	// Capabilities reports what the store can do beyond Get, Set and Delete.
	Capabilities() Capabilities

	// Get returns the bytes stored under each key, in order, nil where there
	// are none. A key holding something the store cannot return as bytes
	// (another Redis type) reads as an empty, non-nil value, which tiercache
	// treats as a foreign entry: a miss, overwritten by the next fill.
	Get(ctx context.Context, keys []string) ([][]byte, error)

	// Set stores value under key for ttl and deletes key's rebuild lock,
	// cancelling a rebuild in progress (its Fill must then fail), and then
	// publishes note. It returns nil only if all of it was done; an error
	// means any part may or may not have been.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration, note Note) error
	// Delete removes keys and their rebuild locks (see Set), then publishes
	// note, with Set's error rule. Deleting a missing key is not an error.
	Delete(ctx context.Context, keys []string, note Note) error

	// Lock takes the rebuild lock of each key for ttl with its token unless
	// another holds it (a lock already holding the token is taken: a retry),
	// and returns what the key holds, read after the lock attempt (so a
	// caller sees a fill that released the lock before it; one atomic step
	// is not needed: redisstore pipelines SET NX then GET). A lock that cannot be
	// one of tiercache's (no expiry, content that is not a token, another
	// type) is taken over and reported Repaired rather than waited for.
	Lock(ctx context.Context, locks []LockRequest, ttl time.Duration) ([]LockResult, error)
	// Fill stores each op's value only if its token still holds the key's
	// lock, releases the lock and publishes the op's note, in one atomic
	// step per op. stored[i] is false when the lock was lost: it expired,
	// or a Set or Delete cancelled the rebuild, and the value may predate it.
	Fill(ctx context.Context, ops []FillOp) (stored []bool, err error)
	// Unlock releases each lock its token still holds.
	Unlock(ctx context.Context, locks []LockRequest) error

	// Publish sends message to the subscribers of channel and returns how
	// many received it (a lower bound where the store cannot count them all).
	Publish(ctx context.Context, channel, message string) (receivers int64, err error)
	// Subscribe delivers the messages of channel to h until ctx is done,
	// reconnecting after failures, and returns ctx's error. It calls h.Up
	// after each (re)subscription and h.Down when it notices the
	// subscription lost (within Capabilities().NotifyBound), so that the
	// subscriber knows when it may have missed messages.
	Subscribe(ctx context.Context, channel string, h Handler) error
	// Track delivers to h, until ctx is done, the keys starting with prefix
	// that any client of the store writes, deletes, or that expire or are
	// evicted (Redis client tracking in broadcasting mode), reconnecting
	// after failures, with Subscribe's Up and Down rules. It returns ctx's
	// error, or an error wrapping ErrUnsupported, after calling h.Down,
	// when the server refuses tracking (too old, or not allowed to the
	// user): the caller then does without it.
	Track(ctx context.Context, prefix string, h TrackHandler) error

	// Generation makes the integer stored under key at least known (a
	// missing or unreadable value counts as lower) and returns the result;
	// raised reports that the stored value was lower, or missing.
	Generation(ctx context.Context, key string, known int64) (gen int64, raised bool, err error)
	// Bump stores under key a generation greater than both the one stored
	// and known, and never used before even if the key was lost (redisstore
	// takes the server's clock in microseconds when it is greater), and
	// returns it.
	Bump(ctx context.Context, key string, known int64) (int64, error)
}

// Capabilities say what a Store can do.
type Capabilities struct {
	// Locks: Lock, Fill and Unlock work. Without them each process loads a
	// missing key once (in-process single-flight still applies) and fills
	// are plain Sets.
	Locks bool
	// Messages: Publish and Subscribe work. Without them processes do not
	// hear of each other's changes: an L1 copy lives up to Options.L1.TTL.
	Messages bool
	// Generations: Generation and Bump work (runtime version bumps).
	Generations bool
	// Tracking: Track may work; whether the server allows it is known only
	// once Track has tried.
	Tracking bool
	// NotifyBound is how long a subscription can be lost before Subscribe
	// calls Down (for redisstore, HealthInterval + Timeout).
	NotifyBound time.Duration
	// PlainJSON: the store keeps values without the envelope, as the JSON
	// payload alone with the store's TTL as their only expiry, so that code
	// in other languages reads them (redisstore.NewPlain). It accepts only
	// envelopes of the JSON codec (ID 1), and the entries it returns carry
	// the TTL left as their soft expiry, no rebuild time and the hash of the
	// key read. tiercache.New refuses options that need more: another
	// codec, a stale window.
	PlainJSON bool
}

// Note is a message to publish once a write is done. The zero Note
// publishes nothing.
type Note struct {
	Channel, Message string
}

// NewToken returns a lock token: 32 lowercase hexadecimal digits (128
// random bits). A lock holding anything else is not tiercache's, and Lock
// repairs it.
func NewToken() string {
	var b [16]byte
	for i := 0; i < len(b); i += 8 {
		u := rand.Uint64()
		for j := range 8 {
			b[i+j] = byte(u >> (8 * j))
		}
	}
	return hex.EncodeToString(b[:])
}

// LockRequest names a rebuild lock and the token that takes or releases it.
type LockRequest struct {
	Key, Token string
}

// LockResult is what Lock found for one key.
type LockResult struct {
	// Acquired reports that the token now holds the lock.
	Acquired bool
	// Repaired reports that a lock that could not be tiercache's was taken
	// over (Acquired is then true).
	Repaired bool
	// Current is what the key holds (nil: nothing).
	Current []byte
}

// FillOp is one conditional fill.
type FillOp struct {
	Key, Token string
	Value      []byte
	TTL        time.Duration
	// Note is published, in the same step, if the value is stored.
	Note Note
}

// Handler receives what a subscription sees. Its methods are called from
// one goroutine and must not block for long.
type Handler interface {
	// Message is called with the payload of each message.
	Message(payload string)
	// Up is called once the subscription is established or re-established.
	Up()
	// Down is called when the subscription is lost; messages may be missed
	// until the next Up.
	Down(err error)
}

// TrackHandler receives what Track sees. Its methods are called from one
// goroutine and must not block for long.
type TrackHandler interface {
	// Invalidate is called with keys that changed; nil means that every
	// key may have (FLUSHALL, FLUSHDB, or an invalidation that could not be
	// read).
	Invalidate(keys []string)
	// Up and Down are as Handler's: changes may be missed from Down until
	// the next Up.
	Up()
	Down(err error)
}
