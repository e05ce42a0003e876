package tiercache_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/redisstore"
)

type User struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Example_redis is the setup of a real service: L1 in each process, Redis
// shared by all of them.
func Example_redis() {
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
	defer rdb.Close()
	users, err := tiercache.New(&tiercache.Options[User]{
		Keyspace:    tiercache.Keyspace{Name: "user", Version: "v1"}, // keys "v1:user:<id>"
		Store:       redisstore.New(rdb, nil),
		TTL:         5 * time.Minute, // fresh for 5 minutes...
		StaleTTL:    time.Minute,     // ...then served stale while one process rebuilds
		NegativeTTL: time.Minute,     // "no such user" is cached too
	})
	if err != nil {
		log.Fatal(err)
	}
	defer users.Close()
	_ = users // users.Get(ctx, id, loader) as in Example_get
}

func ExampleCache_Get() {
	users, err := tiercache.New(&tiercache.Options[User]{
		Keyspace: tiercache.Keyspace{Name: "user"},
		// No Store: in-process only. See Example_redis for the shared tier.
	})
	if err != nil {
		log.Fatal(err)
	}
	defer users.Close()

	queries := 0
	load := func(ctx context.Context, id string) (User, error) {
		queries++ // a database query
		return User{ID: id, Name: "Ada"}, nil
	}
	ctx := context.Background()
	for range 3 {
		u, err := users.Get(ctx, "42", load)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(u.Name)
	}
	s := users.Stats()
	fmt.Printf("queries: %d, misses: %d, L1 hits: %d, key: %s\n", queries, s.Misses, s.L1Hits, users.Key("42"))
	// Output:
	// Ada
	// Ada
	// Ada
	// queries: 1, misses: 1, L1 hits: 2, key: v1:user:42
}

// ExampleErrNotFound shows negative caching: a loader's ErrNotFound is
// cached for NegativeTTL, and Get returns it without asking the origin.
func ExampleErrNotFound() {
	users, err := tiercache.New(&tiercache.Options[User]{
		Keyspace:    tiercache.Keyspace{Name: "user"},
		NegativeTTL: 30 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer users.Close()

	queries := 0
	load := func(ctx context.Context, id string) (User, error) {
		queries++
		return User{}, tiercache.ErrNotFound // SELECT found no row
	}
	for range 3 {
		_, err := users.Get(context.Background(), "404", load)
		fmt.Println(errors.Is(err, tiercache.ErrNotFound))
	}
	fmt.Printf("queries: %d, negative hits: %d\n", queries, users.Stats().NegativeHits)
	// Output:
	// true
	// true
	// true
	// queries: 1, negative hits: 2
}

// ExampleDegraded shows what a caller sees when the origin fails and a
// Fallback is configured.
func ExampleDegraded() {
	status, err := tiercache.New(&tiercache.Options[map[string]string]{
		Keyspace: tiercache.Keyspace{Name: "status"},
		Retry:    tiercache.Retry{Attempts: 1},
		Degrade: tiercache.Degrade[map[string]string]{Fallback: func(id string, cause error) map[string]string {
			return map[string]string{"status": "degraded"}
		}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer status.Close()
	v, err := status.Get(context.Background(), "svc", func(context.Context, string) (map[string]string, error) {
		return nil, errors.New("origin down")
	})
	fmt.Println(v["status"], tiercache.Degraded(err), errors.Is(err, tiercache.ErrFallback))
	fmt.Println(err)
	// Output:
	// degraded true true
	// tiercache: fallback value served: origin down
}
