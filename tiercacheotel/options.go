package tiercacheotel

import "go.opentelemetry.io/otel/attribute"

// ScopeName is the instrumentation scope of the tracer and the meter: the
// package's import path, as OpenTelemetry instrumentation libraries name
// theirs.
const ScopeName = "github.com/tiercache/tiercache/tiercacheotel"

// Attribute keys, documented in the package comment.
const (
	keyKey      = attribute.Key("tiercache.key")
	outcomeKey  = attribute.Key("tiercache.outcome")
	tierKey     = attribute.Key("tiercache.tier")
	attemptKey  = attribute.Key("tiercache.load.attempt")
	keyspaceKey = attribute.Key("tiercache.keyspace")
	eventKey    = attribute.Key("tiercache.event")
	errorType   = attribute.Key("error.type") // semantic conventions
)

// An Option configures Hooks or NewMetrics.
type Option func(*config)

type config struct {
	attrs    []attribute.KeyValue
	omitKeys bool
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// WithAttributes adds attributes to every span (with Hooks) or every metric
// series (with NewMetrics), e.g. the name of the service's cache.
func WithAttributes(attrs ...attribute.KeyValue) Option {
	return func(c *config) { c.attrs = append(c.attrs, attrs...) }
}

// WithoutKeys leaves the tiercache.key attribute off the spans, for keys
// that carry personal data (an e-mail address as an id). Spans still carry
// the outcome and tier.
func WithoutKeys() Option {
	return func(c *config) { c.omitKeys = true }
}
