// Package codec holds the interface through which tiercache encodes values
// for the shared tier, and its default, JSON. Subpackages hold other codecs
// (gojson: the same JSON through goccy/go-json).
package codec

import (
	json "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// Codec encodes values for the shared tier (tiercache.Options.L2.Codec). Implementations must be safe for
// concurrent use.
type Codec[V any] interface {
	// ID identifies the encoding in stored entries, so that an entry written
	// with another codec is a miss rather than a decoding error. IDs 1 to 63
	// are reserved for codecs of this module.
	ID() byte
	// Append appends the encoding of v to dst and returns the result.
	Append(dst []byte, v V) ([]byte, error)
	// Decode decodes data into v. data must not be retained.
	Decode(data []byte, v *V) error
}

// JSON returns the default codec: JSON with the semantics and the bytes of
// encoding/json, so that entries stay readable with redis-cli and from
// other languages. It is github.com/go-json-experiment/json (the code that
// becomes encoding/json/v2; Go 1.26 has it only under GOEXPERIMENT=jsonv2)
// with the options that make it encoding/json (v1), which decodes an entry
// in about 0.4 of encoding/json's time: see docs/architecture.md, "Codec".
func JSON[V any]() Codec[V] { return jsonCodec[V]{opts: jsonv1.DefaultOptionsV1()} }

type jsonCodec[V any] struct{ opts json.Options }

func (jsonCodec[V]) ID() byte { return 1 }

func (c jsonCodec[V]) Append(dst []byte, v V) ([]byte, error) {
	b, err := json.Marshal(v, c.opts)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

func (c jsonCodec[V]) Decode(data []byte, v *V) error { return json.Unmarshal(data, v, c.opts) }
