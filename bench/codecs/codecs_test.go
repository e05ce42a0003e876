package codecs

import (
	"reflect"
	"testing"

	"github.com/tiercache/tiercache/bench/workload"
)

func TestRoundTrip(t *testing.T) {
	want := workload.NewRecord("4242")
	for _, c := range All() {
		b, err := c.Encode(&want)
		if err != nil {
			t.Fatalf("%s: encode: %v", c.Name, err)
		}
		var got workload.Record
		if err := c.Decode(b, &got); err != nil {
			t.Fatalf("%s: decode: %v", c.Name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: round trip = %+v, want %+v", c.Name, got, want)
		}
	}
}

// BenchmarkCodec measures encoding plus decoding of the ~1 KB Record, the
// work a cache does for one fill and one read of the shared tier. Compare
// codecs with benchstat (-col /codec).
func BenchmarkCodec(b *testing.B) {
	r := workload.NewRecord("4242")
	for _, c := range All() {
		b.Run("codec="+c.Name+"/op=encode+decode", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				enc, err := c.Encode(&r)
				if err != nil {
					b.Fatal(err)
				}
				var out workload.Record
				if err := c.Decode(enc, &out); err != nil {
					b.Fatal(err)
				}
			}
		})
		enc, _ := c.Encode(&r)
		b.Run("codec="+c.Name+"/op=decode", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(enc)))
			for b.Loop() {
				var out workload.Record
				if err := c.Decode(enc, &out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
