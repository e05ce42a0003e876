// Package wire encodes and decodes the envelope that wraps every value
// tiercache stores in the shared tier (L2).
//
// An envelope is a fixed 20-byte header followed by the codec's payload:
//
//	offset size field
//	0      1    magic 0xC7 (not a valid first byte of UTF-8 text, so JSON,
//	            plain strings and most foreign formats are told apart at once)
//	1      1    format version (1)
//	2      1    flags: bit 0 negative ("not found"), bit 1 compressed
//	3      1    codec id of the payload
//	4      8    soft expiry, Unix milliseconds, big-endian int64
//	12     4    duration of the rebuild that produced it, microseconds,
//	            big-endian uint32 (saturating at about 71 minutes)
//	16     4    KeyHash of the key the entry was written under
//	20     ...  payload
//
// The key hash lets a reader reject bytes that are not the entry of the key
// it asked for: bytes copied from another key, or a reply a client
// mismatched after a broken connection. Such bytes are a miss, never
// another key's value.
//
// The hard expiry is not stored: it is the store's TTL of the key.
// Decode never panics, never reads past the bytes given and never allocates
// (the payload aliases the input, its errors are constants); anything it does
// not understand is ErrFormat, which callers treat as a miss.
package wire

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
)

const (
	// Magic is the first byte of every envelope.
	Magic byte = 0xC7
	// Version is the format version this package writes and reads.
	Version byte = 1
	// HeaderSize is the size of the header before the payload.
	HeaderSize = 20
)

// Flags describe an entry.
type Flags uint8

const (
	// Negative marks a cached "not found"; its payload is empty.
	Negative Flags = 1 << iota
	// Compressed marks a compressed payload. This version writes none and
	// rejects them on read, so that a newer writer's entries are a clean miss.
	Compressed

	known = Negative
)

// ErrFormat reports bytes that are not an envelope this package can read.
var ErrFormat = errors.New("wire: not a tiercache envelope")

// Header is the decoded header of an envelope.
type Header struct {
	Flags Flags
	Codec byte
	// Soft is the soft expiry: the entry is fresh before it.
	Soft time.Time
	// Rebuild is how long the load that produced the entry took; early
	// refresh uses it.
	Rebuild time.Duration
	// KeyHash is KeyHash of the key the entry belongs to.
	KeyHash uint32
}

// KeyHash returns the 32-bit FNV-1a hash of key, which an envelope carries.
func KeyHash(key string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return h
}

// Negative reports whether the entry is a cached "not found".
func (h Header) Negative() bool { return h.Flags&Negative != 0 }

// AppendHeader appends the header of an envelope to dst. The payload follows
// it: append it to the result.
func AppendHeader(dst []byte, h Header) []byte {
	us := h.Rebuild.Microseconds()
	if us < 0 {
		us = 0
	}
	if us > math.MaxUint32 {
		us = math.MaxUint32
	}
	dst = append(dst, Magic, Version, byte(h.Flags), h.Codec)
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.Soft.UnixMilli()))
	dst = binary.BigEndian.AppendUint32(dst, uint32(us))
	return binary.BigEndian.AppendUint32(dst, h.KeyHash)
}

// formatError is a reason bytes are not an envelope. Its values are
// constants, so that rejecting bytes allocates nothing either.
type formatError string

func (e formatError) Error() string { return "wire: not a tiercache envelope: " + string(e) }

// Is makes every formatError match ErrFormat.
func (e formatError) Is(target error) bool { return target == ErrFormat }

const (
	errShort    formatError = "shorter than the header"
	errMagic    formatError = "bad magic byte"
	errVersion  formatError = "unknown format version"
	errFlags    formatError = "unknown flags"
	errNegative formatError = "negative entry with a payload"
)

// Decode splits an envelope into its header and payload. The payload aliases
// b. Bytes that are not a version-1 envelope give an error matching
// ErrFormat. It allocates nothing, whatever b holds.
func Decode(b []byte) (Header, []byte, error) {
	switch {
	case len(b) < HeaderSize:
		return Header{}, nil, errShort
	case b[0] != Magic:
		return Header{}, nil, errMagic
	case b[1] != Version:
		return Header{}, nil, errVersion
	case Flags(b[2])&^known != 0:
		return Header{}, nil, errFlags
	}
	f := Flags(b[2])
	payload := b[HeaderSize:]
	if f&Negative != 0 && len(payload) != 0 {
		return Header{}, nil, errNegative
	}
	soft := int64(binary.BigEndian.Uint64(b[4:12]))
	us := binary.BigEndian.Uint32(b[12:16])
	return Header{
		Flags:   f,
		Codec:   b[3],
		Soft:    time.UnixMilli(soft),
		Rebuild: time.Duration(us) * time.Microsecond,
		KeyHash: binary.BigEndian.Uint32(b[16:20]),
	}, payload, nil
}
