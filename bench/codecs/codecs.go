// Package codecs measures the encoders a tiercache codec could use for the
// benchmark's Record: encoding/json (tiercache's default), goccy/go-json,
// bytedance/sonic (both JSON, so values stay readable) and msgpack (binary,
// the default of go-redis/cache and eko/gocache).
package codecs

import (
	"encoding/json"

	"github.com/bytedance/sonic"
	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
	gojson "github.com/goccy/go-json"
	segjson "github.com/segmentio/encoding/json"
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
		{Name: "go-json-experiment/json", JSON: true,
			Encode: func(r *workload.Record) ([]byte, error) { return jsonv2.Marshal(r, jsonv1.DefaultOptionsV1()) },
			Decode: func(b []byte, r *workload.Record) error { return jsonv2.Unmarshal(b, r, jsonv1.DefaultOptionsV1()) }},
		{Name: "segmentio/encoding", JSON: true,
			Encode: func(r *workload.Record) ([]byte, error) { return segjson.Marshal(r) },
			Decode: func(b []byte, r *workload.Record) error { return segjson.Unmarshal(b, r) }},
		{Name: "bytedance/sonic", JSON: true,
			Encode: func(r *workload.Record) ([]byte, error) { return sonic.Marshal(r) },
			Decode: func(b []byte, r *workload.Record) error { return sonic.Unmarshal(b, r) }},
		{Name: "vmihailenco/msgpack", JSON: false,
			Encode: func(r *workload.Record) ([]byte, error) { return msgpack.Marshal(r) },
			Decode: func(b []byte, r *workload.Record) error { return msgpack.Unmarshal(b, r) }},
	}
}
