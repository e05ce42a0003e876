// Package keys is the one home of tiercache's key format: the keys of
// values, rebuild locks and runtime versions in the shared tier, and the
// channel of a keyspace's messages.
//
//	value    {Prefix}{Version}:{Name}:{id}        v1:user:42, app:v1+1764201234567890:user:42
//	lock     {value}}:lock, tagged                {v1:user:42}:lock, {app}:v1:user:42}:lock
//	version  {Prefix}tiercache:version:{Name}     tiercache:version:user
//	channel  {Prefix}tiercache:{Name}             tiercache:user (a pub/sub channel, not a key)
//
// Keys are unambiguous: no two (Prefix, Version, Name, id) give the same
// value key, and no helper key is the value key of anything. It holds
// because Version and Name are made of letters, digits and "._-" (plus
// "+gen" for a runtime generation), a Prefix is empty or ends with ':', and
// ':' and '%' in an id are escaped (%3A, %25): a value key then splits from
// the right into id, Name and Version, and the rest is the Prefix. A lock key
// ends with "}:lock", which no value key can (neither an escaped id nor a
// Name holds a brace), and the version key has Version "tiercache", which
// Check reserves.
package keys

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Reserved is the Version that helper keys use; no keyspace may.
const Reserved = "tiercache"

// Space is a keyspace in effect: a Prefix, Name and Version, the Version
// carrying the runtime generation when it is not zero. Its value is fixed
// once made.
type Space struct {
	Gen     int64  // runtime generation; 0 is the code's Version
	Version string // Version, followed by "+{Gen}" when Gen > 0
	head    string // Prefix + Version + ":" + Name + ":"
}

// NewSpace returns the keyspace of a checked prefix, code version and name
// at generation gen.
func NewSpace(prefix, version, name string, gen int64) *Space {
	v := VersionAt(version, gen)
	return &Space{Gen: gen, Version: v, head: prefix + v + ":" + name + ":"}
}

// VersionAt is the version in keys at generation gen: the code's version,
// followed by "+{gen}" once the keyspace has been bumped at runtime. '+'
// cannot appear in a code Version, so a bumped version never collides with
// one.
func VersionAt(version string, gen int64) string {
	if gen <= 0 {
		return version
	}
	return version + "+" + strconv.FormatInt(gen, 10)
}

// Key returns the value key of id.
func (s *Space) Key(id string) string {
	if strings.ContainsAny(id, ":%") {
		return s.head + escape(id)
	}
	return s.head + id
}

// Head returns what every value key of the keyspace starts with, e.g.
// "v1:user:": the prefix Redis client tracking is asked to watch.
func (s *Space) Head() string { return s.head }

// ID returns the id whose value key is key, and false if key is not a
// value key of the keyspace: another keyspace's, or a helper key under the
// same head (a lock key when Prefix has its own hash tag,
// "{app}:v1:user:42}:lock", whose rest holds a ':' that no escaped id
// does), or an escape that Key does not write.
func (s *Space) ID(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, s.head)
	if !ok || rest == "" || strings.IndexByte(rest, ':') >= 0 {
		return "", false
	}
	if strings.IndexByte(rest, '%') < 0 {
		return rest, true
	}
	var b strings.Builder
	b.Grow(len(rest))
	for i := 0; i < len(rest); i++ {
		if rest[i] != '%' {
			b.WriteByte(rest[i])
			continue
		}
		switch {
		case strings.HasPrefix(rest[i:], "%3A"):
			b.WriteByte(':')
		case strings.HasPrefix(rest[i:], "%25"):
			b.WriteByte('%')
		default:
			return "", false
		}
		i += 2
	}
	return b.String(), true
}

// escape replaces ':' and '%' in id by %3A and %25.
func escape(id string) string {
	var b strings.Builder
	b.Grow(len(id) + 8)
	for i := 0; i < len(id); i++ {
		switch id[i] {
		case ':':
			b.WriteString("%3A")
		case '%':
			b.WriteString("%25")
		default:
			b.WriteByte(id[i])
		}
	}
	return b.String()
}

// Lock returns the key of the rebuild lock of the value key key. It shares
// key's Redis Cluster hash slot: "{v1:user:42}:lock" hashes "v1:user:42",
// and a key that already has a hash tag keeps it ("{app}:v1:user:42}:lock"
// hashes "app").
func Lock(key string) string {
	if HasTag(key) {
		return key + "}:lock"
	}
	return "{" + key + "}:lock"
}

// HasTag reports whether Redis Cluster hashes key by a "{tag}" in it rather
// than whole.
func HasTag(key string) bool {
	i := strings.IndexByte(key, '{')
	return i >= 0 && strings.IndexByte(key[i+1:], '}') > 0
}

// Version returns the key holding the runtime generation of the keyspace
// name under prefix.
func Version(prefix, name string) string { return prefix + Reserved + ":version:" + name }

// Channel returns the pub/sub channel of the keyspace name under prefix.
func Channel(prefix, name string) string { return prefix + Reserved + ":" + name }

// CheckName checks a Name or a code Version: letters, digits and "._-", at
// most 64 bytes, and not the reserved "tiercache".
func CheckName(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > 64:
		return errors.New("longer than 64 bytes")
	case s == Reserved:
		return fmt.Errorf("%q is reserved for tiercache's own keys", Reserved)
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return fmt.Errorf("character %q not allowed (use letters, digits and ._-)", r)
		}
	}
	return nil
}

// CheckPrefix checks a Prefix: empty, or at most 128 bytes ending with ':',
// without spaces or control characters.
func CheckPrefix(s string) error {
	switch {
	case s == "":
		return nil
	case len(s) > 128:
		return errors.New("longer than 128 bytes")
	case !strings.HasSuffix(s, ":"):
		return errors.New(`must end with ':' (e.g. "billing:"), so that keys stay unambiguous`)
	case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return errors.New("contains spaces or control characters")
	}
	// Braces may only form one Redis Cluster hash tag, "{tag}", so that a
	// value key and its lock share a slot.
	if open := strings.IndexByte(s, '{'); open >= 0 || strings.IndexByte(s, '}') >= 0 {
		end := strings.IndexByte(s, '}')
		if open < 0 || end < open+2 || strings.Count(s, "{") != 1 || strings.Count(s, "}") != 1 {
			return errors.New(`braces must form one non-empty hash tag, e.g. "{billing}:"`)
		}
	}
	return nil
}

// ParseVersion splits a version in keys into the code's version and the
// runtime generation (0 when there is none). ok is false for a string that
// is not a version.
func ParseVersion(v string) (code string, gen int64, ok bool) {
	code, g, bumped := strings.Cut(v, "+")
	if CheckName(code) != nil {
		return "", 0, false
	}
	if !bumped {
		return code, 0, true
	}
	gen, err := strconv.ParseInt(g, 10, 64)
	if err != nil || gen <= 0 {
		return "", 0, false
	}
	return code, gen, true
}
