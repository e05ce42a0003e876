package cli

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/wire"
)

// envelope returns an entry of key "k".
func envelope(h wire.Header, payload string) []byte {
	if h.KeyHash == 0 {
		h.KeyHash = wire.KeyHash("k")
	}
	return append(wire.AppendHeader(nil, h), payload...)
}

func TestDecodeEntry(t *testing.T) {
	now := time.Now()
	soft := now.Add(time.Minute)
	for _, tc := range []struct {
		name    string
		raw     []byte
		pttl    time.Duration
		state   string
		payload string // in the text output
		err     string
	}{
		{"fresh", envelope(wire.Header{Codec: 1, Soft: soft}, `{"id":1}`), 2 * time.Minute, "fresh", `"id": 1`, ""},
		{"stale", envelope(wire.Header{Codec: 1, Soft: now.Add(-time.Second)}, `{"id":1}`), time.Minute, "stale", `"id": 1`, ""},
		{"negative", envelope(wire.Header{Codec: 1, Soft: soft, Flags: wire.Negative}, ""), time.Minute, "negative", "payload       none", ""},
		{"no ttl", envelope(wire.Header{Codec: 1, Soft: soft}, `[1]`), -1, "fresh", "no TTL", ""},
		{"another key's", envelope(wire.Header{Codec: 1, Soft: soft, KeyHash: wire.KeyHash("other")}, `{"id":2}`), time.Minute, "wrong key", "NOT this key's", ""},
		{"not json", envelope(wire.Header{Codec: 9, Soft: soft}, "\x00\x01binary"), time.Minute, "fresh", "|..binary|", ""},
		{"foreign", []byte(`{"id":1}`), time.Minute, "", "", "first byte 0x7b"},
		{"short", []byte{wire.Magic, 1, 0}, time.Minute, "", "", fmt.Sprintf("shorter than the %d-byte header", wire.HeaderSize)},
		{"future version", append([]byte{wire.Magic, 2}, make([]byte, 20)...), time.Minute, "", "", "format version 2"},
		{"empty", nil, time.Minute, "", "", "empty value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := decodeEntry("k", tc.raw, tc.pttl, now)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			if err := e.writeText(&b, now); err != nil {
				t.Fatal(err)
			}
			if e.State != tc.state || !strings.Contains(b.String(), tc.payload) {
				t.Errorf("state %q, want %q; output:\n%s\nwant it to hold %q", e.State, tc.state, b.String(), tc.payload)
			}
		})
	}
}

// FuzzDecodeEntry checks that inspect survives any bytes found in Redis.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(envelope(wire.Header{Codec: 1, Soft: time.Now()}, `{"a":1}`))
	f.Add([]byte("plain"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := decodeEntry("k", raw, time.Minute, time.Now())
		if err != nil {
			_ = hexDump(raw)
			return
		}
		if err := e.writeText(io.Discard, time.Now()); err != nil {
			t.Fatal(err)
		}
	})
}
