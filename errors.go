package tiercache

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tiercache/tiercache/internal/flight"
)

var (
	// ErrNotFound is returned by a loader for a value that does not exist.
	// The cache stores it as a negative entry for NegativeTTL on both tiers,
	// and Get returns it, without calling the loader, until then.
	ErrNotFound = errors.New("tiercache: not found")

	// ErrStale marks a degraded answer: the loader failed and Get returned a
	// value past its hard expiry, kept for Options.Degrade.MaxStale. The error also
	// wraps the loader's error.
	ErrStale = errors.New("tiercache: stale value served")

	// ErrFallback marks a degraded answer: the loader failed, nothing stale
	// was left, and Get returned the value of Options.Degrade.Fallback. The error
	// also wraps the loader's error.
	ErrFallback = errors.New("tiercache: fallback value served")

	// ErrLockWait is the error of a request that waited for another
	// process's rebuild in vain, when Options.Rebuild.FailOnLockWait is set.
	ErrLockWait = errors.New("tiercache: timed out waiting for another process's rebuild")

	// ErrInvalidID is returned for an id that cannot be part of a key: empty,
	// longer than 512 bytes, not UTF-8, with control characters or braces.
	ErrInvalidID = errors.New("tiercache: invalid id")

	// ErrInvalidOptions is returned by New for options it cannot use.
	ErrInvalidOptions = errors.New("tiercache: invalid options")

	// ErrUnavailable is returned by Set and Delete when the shared tier
	// failed (or its circuit breaker is open): the change may not have
	// reached it or the other processes.
	ErrUnavailable = errors.New("tiercache: shared tier unavailable")

	// ErrClosed is returned by a Cache after Close.
	ErrClosed = errors.New("tiercache: cache closed")

	// ErrNilLoader is returned by Get when it needs to load but was given no
	// loader.
	ErrNilLoader = errors.New("tiercache: nil loader")

	// ErrPanic is wrapped by the error of a request whose loader panicked
	// or called runtime.Goexit: every caller sharing that load gets it, its
	// text holds the panic value, and the process goes on (the next request
	// loads again). It is never retried.
	ErrPanic = flight.ErrPanic

	// ErrValueTooLarge is returned by Set for a value whose encoding exceeds
	// Options.L2.MaxValueSize. (Get serves such a value without caching it.)
	ErrValueTooLarge = errors.New("tiercache: value too large to cache")
)

// Degraded reports whether err marks a degraded answer (ErrStale or
// ErrFallback): the value returned with it is usable, though not fresh.
func Degraded(err error) bool {
	return errors.Is(err, ErrStale) || errors.Is(err, ErrFallback)
}

// maxIDLength is the longest id the cache accepts, in bytes.
const maxIDLength = 512

// checkID rejects ids that would make a bad key: empty, too long, not UTF-8,
// with control characters, or with braces (which would move the key to
// another Redis Cluster hash slot than its helper keys).
func checkID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrInvalidID)
	case len(id) > maxIDLength:
		return fmt.Errorf("%w: %d bytes, longer than %d", ErrInvalidID, len(id), maxIDLength)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidID, id)
	}
	if i := strings.IndexFunc(id, func(r rune) bool {
		return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '{' || r == '}'
	}); i >= 0 {
		return fmt.Errorf("%w: %q has a control character or brace at byte %d", ErrInvalidID, id, i)
	}
	return nil
}
