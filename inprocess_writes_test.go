package tiercache_test

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
)

// I: origin updated, then Set or Delete; after that returns, no Get may
// return an older version (Store nil).
func TestInProcessNoStaleAfterWrite(t *testing.T) {
	c := inprocNew(t, tiercache.Options[user]{L1: tiercache.L1[user]{Size: 100}, TTL: time.Hour})
	var origin [4]atomic.Int64
	load := func(ctx context.Context, id string) (user, error) {
		i := int(id[0] - '0')
		v := origin[i].Load()
		runtime.Gosched()
		return user{ID: id, Version: int(v)}, nil
	}
	var bad atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := 0; i < 4; i++ {
					c.Get(context.Background(), itoa(i), load)
				}
			}
		}()
	}
	var ww sync.WaitGroup
	for i := 0; i < 4; i++ {
		ww.Add(1)
		go func() {
			defer ww.Done()
			id := itoa(i)
			for n := 1; n <= 3000; n++ {
				origin[i].Store(int64(n))
				if n%2 == 0 {
					c.Set(context.Background(), id, user{ID: id, Version: n})
				} else {
					c.Delete(context.Background(), id)
				}
				u, err := c.Get(context.Background(), id, load)
				if err == nil && u.Version < n {
					if bad.Add(1) <= 5 {
						t.Errorf("after write %d of %s returned, Get = version %d", n, id, u.Version)
					}
				}
			}
		}()
	}
	ww.Wait()
	close(stop)
	wg.Wait()
	t.Logf("stale reads: %d", bad.Load())
}

// J: Close during many in-flight loads: every Get returns, Close is prompt,
// no goroutines left.
func TestInProcessCloseDuringLoads(t *testing.T) {
	base := runtime.NumGoroutine()
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "x"}, Rebuild: tiercache.Rebuild{LoadTimeout: 10 * time.Second}}
	c, err := tiercache.New(&o)
	if err != nil {
		t.Fatal(err)
	}
	var started sync.WaitGroup
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 100 {
		started.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Get(context.Background(), itoa(i), func(ctx context.Context, id string) (user, error) {
				started.Done()
				<-ctx.Done()
				return user{}, ctx.Err()
			})
			errs <- err
		}()
	}
	started.Wait()
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Get(context.Background(), itoa(i), nil)
			errs <- err
		}()
	}
	t0 := time.Now()
	c.Close()
	tc := time.Since(t0)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Gets hung after Close")
	}
	close(errs)
	kinds := map[string]int{}
	for err := range errs {
		if err == nil {
			kinds["nil"]++
		} else {
			kinds[err.Error()]++
		}
	}
	time.Sleep(100 * time.Millisecond)
	t.Logf("Close took %v; errors %v; goroutines %d -> %d", tc, kinds, base, runtime.NumGoroutine())
	if tc > 500*time.Millisecond {
		t.Errorf("Close took %v with loaders that honour ctx", tc)
	}
	if runtime.NumGoroutine() > base+2 {
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines left: %d -> %d\n%s", base, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
	}
}
