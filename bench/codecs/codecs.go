// Package codecs measures the encoders a tiercache codec could use for the
// benchmark's Record: encoding/json (tiercache's default), goccy/go-json,
// bytedance/sonic (both JSON, so values stay readable) and msgpack (binary,
// the default of go-redis/cache and eko/gocache).
package codecs

import (
	"encoding/json"

	"github.com/bytedance/sonic"
	gojson "github.com/goccy/go-json"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/tiercache/tiercache/bench/workload"
)

// Codec encodes and decodes Records.
type Codec struct {
	// Name is the module's name in reports.
	Name string
	// JSON reports whether the encoding is JSON (readable with redis-cli
	// and from other languages).
	JSON   bool
	Encode func(r *workload.Record) ([]byte, error)
	Decode func(b []byte, r *workload.Record) error
}

// All returns every codec, encoding/json first (the baseline).
func All() []Codec {
	return []Codec{
		{Name: "encoding/json", JSON: true,
			Encode: func(r *workload.Record) ([]byte, error) { return json.Marshal(r) },
			Decode: func(b []byte, r *workload.Record) error { return json.Unmarshal(b, r) }},
		{Name: "goccy/go-json", JSON: true,
			Encode: func(r *workload.Record) ([]byte, error) { return gojson.Marshal(r) },
			Decode: func(b []byte, r *workload.Record) error { return gojson.Unmarshal(b, r) }},
		{Name: "bytedance/sonic", JSON: true,
			Encode: func(r *workload.Record) ([]byte, error) { return sonic.Marshal(r) },
			Decode: func(b []byte, r *workload.Record) error { return sonic.Unmarshal(b, r) }},
		{Name: "vmihailenco/msgpack", JSON: false,
			Encode: func(r *workload.Record) ([]byte, error) { return msgpack.Marshal(r) },
			Decode: func(b []byte, r *workload.Record) error { return msgpack.Unmarshal(b, r) }},
	}
}
