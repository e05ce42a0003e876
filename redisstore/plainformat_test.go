package redisstore

import (
	"bytes"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/wire"
)

func TestIsNil(t *testing.T) {
	for in, want := range map[string]bool{
		`{"__nil":true}`:               true,
		`{"__nil": true}`:              true,
		" {\n\"__nil\" :\ttrue } ":     true,
		`{"__nil":false}`:              false,
		`{"__nil":1}`:                  false,
		`{"__nil":"true"}`:             false,
		`{"__nil":true,"id":"1"}`:      false,
		`{"__nil":true}x`:              false,
		`["__nil",true]`:               false,
		`{"__nil":true`:                false,
		`{"id":"__nil"}`:               false,
		``:                             false,
		"\xc7\x01\x01\x01":             false,
		`{"__nil":   true           }`: true,
	} {
		if got := isNil([]byte(in)); got != want {
			t.Errorf("isNil(%q) = %v, want %v", in, got, want)
		}
	}
	long := append([]byte(`{"__nil":`), bytes.Repeat([]byte(" "), maxNilLen)...)
	if isNil(append(long, "true}"...)) {
		t.Error("isNil of a marker padded past maxNilLen = true, want false (not examined)")
	}
}

// FuzzPlain: whatever bytes and TTL Redis returns, fromPlain never panics
// and gives nil for nothing or an envelope of the key that wire.Decode
// accepts: negative exactly for the "not found" marker, else carrying the
// bytes unchanged; and toPlain gives the bytes back.
func FuzzPlain(f *testing.F) {
	for _, s := range []string{`{"id":"42","name":"Ada"}`, `{"__nil":true}`, `{"__nil": true}`, ``, "\xc7\x01\x00\x01", `null`, `{"__nil":`} {
		f.Add([]byte(s), int64(300_000))
	}
	f.Add([]byte(`1`), int64(-1))
	f.Add([]byte(`1`), int64(-2))
	f.Add([]byte(`1`), int64(1<<62))
	now := time.Unix(1_764_201_234, 0)
	const key = "v1:user:42"
	f.Fuzz(func(t *testing.T, v []byte, pttl int64) {
		if pttl > int64(noExpiry/time.Millisecond) {
			pttl = int64(noExpiry / time.Millisecond) // Redis's TTLs are far shorter
		}
		b := fromPlain(key, v, pttl, now)
		h, payload, err := wire.Decode(b)
		if err != nil {
			t.Fatalf("fromPlain(%q, %d) = %q: %v", v, pttl, b, err)
		}
		if h.KeyHash != wire.KeyHash(key) || h.Codec != jsonCodec {
			t.Fatalf("header %+v", h)
		}
		if h.Negative() != isNil(v) {
			t.Fatalf("negative %v for %q", h.Negative(), v)
		}
		if !h.Negative() && !bytes.Equal(payload, v) {
			t.Fatalf("payload %q, want %q", payload, v)
		}
		if h.Soft.Before(now) {
			t.Fatalf("soft expiry %v before now", h.Soft)
		}
		back, err := toPlain(b)
		switch {
		case h.Negative():
			if err != nil || !bytes.Equal(back, plainNil) {
				t.Fatalf("toPlain(negative) = %q, %v", back, err)
			}
		case err != nil || !bytes.Equal(back, v):
			t.Fatalf("toPlain(fromPlain(%q)) = %q, %v", v, back, err)
		}
	})
}

func TestFromPlainNothing(t *testing.T) {
	if b := fromPlain("k", nil, -2, time.Now()); b != nil {
		t.Fatalf("fromPlain(nil) = %q, want nil", b)
	}
}

// TestToPlainRefusesForeignBytes: bytes that are not an envelope are never
// written as they are.
func TestToPlainRefusesForeignBytes(t *testing.T) {
	for _, in := range []string{"", "{}", "\xc7", "\xc7\x02" + string(make([]byte, 30))} {
		if b, err := toPlain([]byte(in)); err == nil {
			t.Errorf("toPlain(%q) = %q, want an error", in, b)
		}
	}
}
