package tiercacheotel_test

import (
	"context"
	"fmt"
	"log"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/stats"
	"github.com/tiercache/tiercache/tiercacheotel"
)

// Example shows the spans of one Get that misses, with the SDK's span
// recorder standing in for an exporter.
func Example() {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	defer tp.Shutdown(context.Background())

	users, err := tiercache.New(&tiercache.Options[user]{
		Keyspace: tiercache.Keyspace{Name: "user"},
		Observe:  stats.Observe{Hooks: tiercacheotel.Hooks(tp)},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer users.Close()
	users.Get(context.Background(), "42", func(_ context.Context, id string) (user, error) {
		return user{ID: id}, nil
	})

	for _, s := range sr.Ended() {
		fmt.Print(s.Name())
		for _, kv := range s.Attributes() {
			fmt.Printf(" %s=%s", kv.Key, kv.Value.String())
		}
		fmt.Println()
	}
	// Output:
	// tiercache.load tiercache.key=v1:user:42 tiercache.load.attempt=1
	// tiercache.get tiercache.key=v1:user:42 tiercache.outcome=miss tiercache.tier=origin
}
