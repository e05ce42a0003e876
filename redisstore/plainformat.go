package redisstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tiercache/tiercache/internal/wire"
)

// The plain format: what cache-aside code in other languages (the seed's
// Python get_user) keeps in Redis, and its translation to and from
// tiercache's envelope at the store boundary.
//
//	value     the JSON of the value alone, e.g. {"id":"42","name":"Ada"}
//	not found {"__nil":true}
//	expiry    the key's Redis TTL (none: fresh until deleted)
//	lock      lock:{key}, any content, with an expiry (SET NX EX)

// plainNil is what a negative entry is stored as: compact, as orjson and
// json.dumps(..., separators=(",", ":")) write it.
var plainNil = []byte(`{"__nil":true}`)

// jsonCodec is the codec id of JSON in the envelope (tiercache.JSON and
// codec/gojson): the only codec whose payload is the plain format's value.
const jsonCodec = 1

// noExpiry is the freshness given to a value that has no Redis TTL (written
// by redis-cli SET, say): fresh until it is deleted or overwritten, within
// the range of a time in nanoseconds.
const noExpiry = 50 * 365 * 24 * time.Hour

// maxNilLen bounds the values examined as a possibly spaced-out
// {"__nil": true}; longer ones are values. It keeps the check of a large
// foreign value from allocating.
const maxNilLen = 64

// isNil reports whether b is the plain format's "not found": a JSON object
// whose only member is "__nil": true, however spaced.
func isNil(b []byte) bool {
	if bytes.Equal(b, plainNil) {
		return true
	}
	if len(b) > maxNilLen || !bytes.Contains(b, []byte(`"__nil"`)) {
		return false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil || len(m) != 1 {
		return false
	}
	v, ok := m["__nil"]
	return ok && string(v) == "true"
}

// fromPlain returns the envelope of the plain value v of key whose Redis TTL
// was pttl milliseconds (-1: none) at now: a negative entry for
// {"__nil": true}, else v as a JSON payload. Whether v is JSON of the
// cache's type is for the cache's codec to find: bytes that are not are a
// miss there. The key hash is key's: in this format nothing says which key
// bytes were written under. nil (nothing) stays nil.
func fromPlain(key string, v []byte, pttl int64, now time.Time) []byte {
	if v == nil {
		return nil
	}
	h := wire.Header{Codec: jsonCodec, KeyHash: wire.KeyHash(key)}
	if pttl >= 0 {
		h.Soft = now.Add(time.Duration(pttl) * time.Millisecond)
	} else {
		h.Soft = now.Add(noExpiry)
	}
	if isNil(v) {
		h.Flags = wire.Negative
		return wire.AppendHeader(make([]byte, 0, wire.HeaderSize), h)
	}
	return append(wire.AppendHeader(make([]byte, 0, wire.HeaderSize+len(v)), h), v...)
}

// ErrNotPlain is the error of a write whose value the plain format cannot
// hold: not a tiercache envelope, or one whose payload is not JSON.
var ErrNotPlain = errors.New("redisstore: value cannot be stored in the plain format")

// toPlain returns what the plain format stores for the envelope b.
func toPlain(b []byte) ([]byte, error) {
	h, payload, err := wire.Decode(b)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrNotPlain, err)
	case h.Negative():
		return plainNil, nil
	case h.Codec != jsonCodec:
		return nil, fmt.Errorf("%w: codec %d is not JSON (%d)", ErrNotPlain, h.Codec, jsonCodec)
	case isNil(payload):
		// A value that reads back as "not found" would be a lie.
		return nil, fmt.Errorf("%w: the value %s reads as the \"not found\" marker", ErrNotPlain, payload)
	}
	return payload, nil
}
