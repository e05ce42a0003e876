package keys

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestKey(t *testing.T) {
	tests := []struct {
		prefix, version, name string
		gen                   int64
		id, want              string
	}{
		{"", "v1", "user", 0, "42", "v1:user:42"},
		{"app:", "v1", "user", 0, "42", "app:v1:user:42"},
		{"", "v1", "user", 1764201234567890, "42", "v1+1764201234567890:user:42"},
		{"", "v1", "user", 0, "org:7", "v1:user:org%3A7"},
		{"", "v1", "user", 0, "100%", "v1:user:100%25"},
		{"{app}:", "v2", "order", 3, "a:b%c", "{app}:v2+3:order:a%3Ab%25c"},
	}
	for _, tt := range tests {
		if got := NewSpace(tt.prefix, tt.version, tt.name, tt.gen).Key(tt.id); got != tt.want {
			t.Errorf("Key(%q %q %q %d, %q) = %q, want %q", tt.prefix, tt.version, tt.name, tt.gen, tt.id, got, tt.want)
		}
	}
}

func TestLockSharesSlot(t *testing.T) {
	tests := []struct{ key, want string }{
		{"v1:user:42", "{v1:user:42}:lock"},
		{"{app}:v1:user:42", "{app}:v1:user:42}:lock"},
		{"a{b:v1:user:42", "{a{b:v1:user:42}:lock"},
	}
	for _, tt := range tests {
		if got := Lock(tt.key); got != tt.want {
			t.Errorf("Lock(%q) = %q, want %q", tt.key, got, tt.want)
		}
		if tag(Lock(tt.key)) != tag(tt.key) {
			t.Errorf("Lock(%q) hashes %q, the key %q", tt.key, tag(Lock(tt.key)), tag(tt.key))
		}
	}
}

// tag is what Redis Cluster hashes of key.
func tag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

func TestCheck(t *testing.T) {
	for _, ok := range []string{"v1", "user", "a.b_c-D9"} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a:b", "a+1", "{x}", "a b", Reserved, strings.Repeat("a", 65)} {
		if CheckName(bad) == nil {
			t.Errorf("CheckName(%q) accepted", bad)
		}
	}
	for _, ok := range []string{"", "app:", "a:b:", "{app}:", "x{app}y:"} {
		if err := CheckPrefix(ok); err != nil {
			t.Errorf("CheckPrefix(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"a", "app", "a b:", "{}:", "{a}{b}:", "}a{:", "{a:", "a}:", "x\n:"} {
		if CheckPrefix(bad) == nil {
			t.Errorf("CheckPrefix(%q) accepted", bad)
		}
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in   string
		code string
		gen  int64
		ok   bool
	}{
		{"v1", "v1", 0, true},
		{"v1+42", "v1", 42, true},
		{"v1+0", "", 0, false},
		{"v1+-1", "", 0, false},
		{"v1+x", "", 0, false},
		{"a:b", "", 0, false},
		{"", "", 0, false},
	}
	for _, tt := range tests {
		code, gen, ok := ParseVersion(tt.in)
		if code != tt.code || gen != tt.gen || ok != tt.ok {
			t.Errorf("ParseVersion(%q) = %q, %d, %v; want %q, %d, %v", tt.in, code, gen, ok, tt.code, tt.gen, tt.ok)
		}
	}
}

// keyOf is one keyspace and id, valid by the rules the cache enforces.
type keyOf struct {
	prefix, version, name string
	gen                   int64
	id                    string
}

func (k keyOf) valid() bool {
	return CheckPrefix(k.prefix) == nil && CheckName(k.version) == nil && CheckName(k.name) == nil && k.gen >= 0 &&
		k.id != "" && !strings.ContainsAny(k.id, "{}\n\r\x00")
}

func (k keyOf) key() string { return NewSpace(k.prefix, k.version, k.name, k.gen).Key(k.id) }

// helpers are the helper keys of k's keyspace and key.
func (k keyOf) helpers() []string {
	return []string{Lock(k.key()), Version(k.prefix, k.name)}
}

// FuzzUnambiguous: two valid keyspaces and ids have the same value key only
// if they are the same, and no helper key of one is the value key of the
// other.
func FuzzUnambiguous(f *testing.F) {
	f.Add("a:", "v1", "user", int64(0), "42", "", "av1", "user", int64(0), "42")
	f.Add("", "a", "v1", int64(0), "user:42", "a:", "v1", "user", int64(0), "42")
	f.Add("", "v1", "user", int64(0), "42:x", "v1:", "user", "42", int64(0), "x")
	f.Add("", "tiercache", "version", int64(0), "user", "", "v1", "user", int64(0), "1")
	f.Add("{app}:", "v1", "user", int64(0), "42", "{app}:v1:", "user", "42", int64(0), "lock")
	f.Fuzz(func(t *testing.T, p1, v1, n1 string, g1 int64, id1, p2, v2, n2 string, g2 int64, id2 string) {
		a := keyOf{p1, v1, n1, g1, id1}
		b := keyOf{p2, v2, n2, g2, id2}
		if !a.valid() || !b.valid() {
			return
		}
		if a.key() == b.key() && a != b {
			t.Fatalf("%+v and %+v share the value key %q", a, b, a.key())
		}
		for _, h := range a.helpers() {
			if h == b.key() {
				t.Fatalf("helper key %q of %+v is the value key of %+v", h, a, b)
			}
		}
	})
}

// TestUnambiguousRandom runs the fuzz property over random keys built from
// the characters that matter (':', '%', '+', braces), so that it covers
// more than the seed corpus in a plain test run.
func TestUnambiguousRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(alphabet string, n int) string {
		b := make([]byte, 1+rng.IntN(n))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	gen := func() keyOf {
		k := keyOf{
			prefix:  pick("a:{}", 4),
			version: pick("av1", 3),
			name:    pick("auv", 3),
			id:      pick("a:%v1u", 6),
		}
		if rng.IntN(3) == 0 {
			k.prefix = ""
		}
		if rng.IntN(3) == 0 {
			k.gen = int64(rng.IntN(3))
		}
		return k
	}
	seen := map[string]keyOf{}
	helpers := map[string]keyOf{}
	for range 200_000 {
		k := gen()
		if !k.valid() {
			continue
		}
		if other, ok := seen[k.key()]; ok && other != k {
			t.Fatalf("%+v and %+v share the value key %q", k, other, k.key())
		}
		seen[k.key()] = k
		for _, h := range k.helpers() {
			helpers[h] = k
		}
	}
	for h, k := range helpers {
		if v, ok := seen[h]; ok {
			t.Fatalf("helper key %q of %+v is the value key of %+v", h, k, v)
		}
	}
	if len(seen) < 1000 {
		t.Fatalf("only %d distinct valid keys generated", len(seen))
	}
}

// TestID: ID reverses Key for every id, and refuses what is not a value key
// of the keyspace (another keyspace's, a lock under a tagged prefix, an
// escape Key never writes).
func TestID(t *testing.T) {
	s := NewSpace("{app}:", "v1", "user", 0)
	for _, id := range []string{"42", "a:b", "%", "%3A", "x%25:y", "日本", "}"} {
		got, ok := s.ID(s.Key(id))
		if !ok || got != id {
			t.Errorf("ID(Key(%q)) = %q, %v; want %q, true", id, got, ok, id)
		}
	}
	for _, key := range []string{
		"{app}:v1:user:", "{app}:v1:order:42", "{app}:v2:user:42", "v1:user:42",
		Lock(s.Key("42")), "{app}:v1:user:%zz", "{app}:v1:user:%3", "{app}:v1+5:user:42",
	} {
		if id, ok := s.ID(key); ok {
			t.Errorf("ID(%q) = %q, true; want false", key, id)
		}
	}
	if got, want := NewSpace("", "v1", "user", 7).Head(), "v1+7:user:"; got != want {
		t.Errorf("Head = %q, want %q", got, want)
	}
}
