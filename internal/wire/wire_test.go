package wire

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	soft := time.UnixMilli(1_800_000_000_123)
	tests := []struct {
		name    string
		h       Header
		payload []byte
	}{
		{"value", Header{Codec: 1, Soft: soft, Rebuild: 1500 * time.Microsecond, KeyHash: KeyHash("v1:user:42")}, []byte(`{"id":42}`)},
		{"negative", Header{Flags: Negative, Codec: 1, Soft: soft}, nil},
		{"empty payload", Header{Codec: 7, Soft: soft}, []byte{}},
		{"rebuild saturates", Header{Codec: 1, Soft: soft, Rebuild: 100 * time.Hour}, []byte("x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := append(AppendHeader(nil, tt.h), tt.payload...)
			if len(b) != HeaderSize+len(tt.payload) {
				t.Fatalf("len = %d, want %d", len(b), HeaderSize+len(tt.payload))
			}
			h, p, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !h.Soft.Equal(tt.h.Soft) || h.Codec != tt.h.Codec || h.Flags != tt.h.Flags || h.KeyHash != tt.h.KeyHash {
				t.Errorf("header = %+v, want %+v", h, tt.h)
			}
			wantRebuild := tt.h.Rebuild
			if wantRebuild > time.Duration(1<<32-1)*time.Microsecond {
				wantRebuild = time.Duration(1<<32-1) * time.Microsecond
			}
			if h.Rebuild != wantRebuild {
				t.Errorf("Rebuild = %v, want %v", h.Rebuild, wantRebuild)
			}
			if h.Negative() != (tt.h.Flags&Negative != 0) {
				t.Errorf("Negative() = %v", h.Negative())
			}
			if !bytes.Equal(p, tt.payload) {
				t.Errorf("payload = %q, want %q", p, tt.payload)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	valid := append(AppendHeader(nil, Header{Codec: 1, Soft: time.UnixMilli(1)}), "{}"...)
	mutate := func(i int, v byte) []byte {
		b := bytes.Clone(valid)
		b[i] = v
		return b
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"one zero byte", []byte{0}},
		{"plain JSON", []byte(`{"id":42,"name":"Ada"}`)},
		{"64 KiB of zeros", make([]byte, 64<<10)},
		{"truncated header", valid[:HeaderSize-1]},
		{"bad magic", mutate(0, 'x')},
		{"future version", mutate(1, 2)},
		{"unknown flag", mutate(2, 0x80)},
		{"compressed (unsupported)", mutate(2, byte(Compressed))},
		{"negative with payload", mutate(2, byte(Negative))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Decode(tt.in)
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("Decode(%q) error = %v, want ErrFormat", tt.in, err)
			}
		})
	}
}

func TestKeyHash(t *testing.T) {
	// FNV-1a 32 reference values.
	for key, want := range map[string]uint32{"": 0x811c9dc5, "a": 0xe40c292c, "foobar": 0xbf9cf968} {
		if got := KeyHash(key); got != want {
			t.Errorf("KeyHash(%q) = %#x, want %#x", key, got, want)
		}
	}
	if KeyHash("v1:user:42") == KeyHash("v1:user:43") {
		t.Error("neighbouring keys share a hash")
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	good := append(AppendHeader(nil, Header{Codec: 1, Soft: time.UnixMilli(1)}), "{}"...)
	for _, b := range [][]byte{good, nil, {0}, []byte("{}"), make([]byte, 64<<10)} {
		if allocs := testing.AllocsPerRun(100, func() { Decode(b) }); allocs != 0 {
			t.Errorf("Decode(%.20x) allocates %v times, want 0", b, allocs)
		}
	}
}

// FuzzDecode checks that Decode never panics on arbitrary bytes and that
// whatever it accepts re-encodes to exactly the same bytes, so it reads
// nothing beyond what it was given. The seed corpus is in testdata/fuzz.
func FuzzDecode(f *testing.F) {
	f.Add(append(AppendHeader(nil, Header{Codec: 1, Soft: time.UnixMilli(1_800_000_000_000), Rebuild: time.Millisecond}), `{"a":1}`...))
	f.Add(AppendHeader(nil, Header{Flags: Negative, Codec: 1, Soft: time.UnixMilli(-5)}))
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte(`{"__nil": true}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n := testing.AllocsPerRun(1, func() { Decode(b) }); n != 0 {
			t.Fatalf("Decode(%x) allocated %v times; it must allocate nothing, whatever it reads", b, n)
		}
		h, p, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v is not ErrFormat", err)
			}
			return
		}
		again := append(AppendHeader(nil, h), p...)
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoded %x, want %x", again, b)
		}
	})
}
