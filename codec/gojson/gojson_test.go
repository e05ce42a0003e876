package gojson_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/codec"
	"github.com/tiercache/tiercache/codec/gojson"
)

type record struct {
	ID    int               `json:"id"`
	Name  string            `json:"name"`
	Tags  []string          `json:"tags"`
	Attrs map[string]string `json:"attrs"`
	Bio   string            `json:"bio,omitempty"`
}

// TestInterop: what either JSON codec writes, the other reads, and both
// write the same bytes.
func TestInterop(t *testing.T) {
	fast, std := gojson.New[record](), codec.JSON[record]()
	if fast.ID() != std.ID() {
		t.Fatalf("ids %d and %d differ: entries would be misses across codecs", fast.ID(), std.ID())
	}
	in := record{ID: 7, Name: "Ada <&>", Tags: []string{"a", "é"}, Attrs: map[string]string{"k": "v"}, Bio: strings.Repeat("x", 900)}
	a, err := fast.Append(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := std.Append(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Fatalf("go-json wrote %s\nencoding/json wrote %s", a, b)
	}
	for name, pair := range map[string][2]codec.Codec[record]{"fast→std": {fast, std}, "std→fast": {std, fast}} {
		enc, _ := pair[0].Append(nil, in)
		var out record
		if err := pair[1].Decode(enc, &out); err != nil || !reflect.DeepEqual(out, in) {
			t.Errorf("%s: %+v, %v", name, out, err)
		}
	}
	var out record
	if err := fast.Decode([]byte(`{"id":`), &out); err == nil {
		t.Error("truncated JSON decoded without error")
	}
}

func Example() {
	users, err := tiercache.New(&tiercache.Options[record]{
		Keyspace: tiercache.Keyspace{Name: "user"},
		L2:       tiercache.L2[record]{Codec: gojson.New[record]()},
	})
	if err != nil {
		panic(err)
	}
	defer users.Close()
	u, _ := users.Get(context.Background(), "7", func(ctx context.Context, id string) (record, error) {
		return record{ID: 7, Name: "Ada"}, nil
	})
	fmt.Println(u.Name)
	// Output: Ada
}

func BenchmarkCodecs(b *testing.B) {
	in := record{ID: 7, Name: "Ada", Tags: []string{"a", "b"}, Attrs: map[string]string{"k": "v"}, Bio: strings.Repeat("x", 900)}
	for name, c := range map[string]codec.Codec[record]{"encoding-json": codec.JSON[record](), "go-json": gojson.New[record]()} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				buf, _ = c.Append(buf[:0], in)
				var out record
				if err := c.Decode(buf, &out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
