// Package codec holds the interface through which tiercache encodes values
// for the shared tier, and its default, JSON. Subpackages hold other codecs
// (gojson: the same JSON through goccy/go-json).
package codec

import "encoding/json"

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

// JSON returns the default codec: encoding/json, so that entries stay
// readable with redis-cli and from other languages.
func JSON[V any]() Codec[V] { return jsonCodec[V]{} }

type jsonCodec[V any] struct{}

func (jsonCodec[V]) ID() byte { return 1 }

func (jsonCodec[V]) Append(dst []byte, v V) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

func (jsonCodec[V]) Decode(data []byte, v *V) error { return json.Unmarshal(data, v) }
