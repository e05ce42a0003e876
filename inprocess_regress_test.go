package tiercache_test

import (
	"context"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
)

func inprocNew(t *testing.T, o tiercache.Options[user]) *tiercache.Cache[user] {
	t.Helper()
	o.Retry.Attempts = 1
	if o.Keyspace.Name == "" {
		o.Keyspace.Name = "inproc"
	}
	c, err := tiercache.New(&o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A: a Get that joins a call led by GetMany (Store nil) gets an immediate
// "abandoned" error: GetMany's call has a zero Deadline.
func TestInProcessGetJoinsGetMany(t *testing.T) {
	c := inprocNew(t, tiercache.Options[user]{Rebuild: tiercache.Rebuild{LoadTimeout: 5 * time.Second}})
	entered, release := make(chan struct{}), make(chan struct{})
	batch := func(ctx context.Context, ids []string) (map[string]user, error) {
		close(entered)
		<-release
		return map[string]user{"42": {ID: "42", Name: "batch"}}, nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		m, err := c.GetMany(context.Background(), []string{"42"}, batch)
		t.Logf("GetMany = %v, %v", m, err)
	}()
	<-entered
	loads := 0
	start := time.Now()
	go func() { time.Sleep(200 * time.Millisecond); close(release) }()
	u, err := c.Get(context.Background(), "42", func(ctx context.Context, id string) (user, error) {
		loads++
		return user{ID: id, Name: "single"}, nil
	})
	t.Logf("Get after %v = %+v, %v (loader calls %d)", time.Since(start), u, err, loads)
	if err != nil || u.Name != "batch" {
		t.Errorf("Get joining GetMany's load = %+v, %v; want the batch's value", u, err)
	}
	<-done
}

// B: a GetMany that joins a call led by Get whose loader ignores its context
// waits for its own ctx, not LoadTimeout+abandonAfter.
func TestInProcessGetManyJoinsStuckGet(t *testing.T) {
	c := inprocNew(t, tiercache.Options[user]{Rebuild: tiercache.Rebuild{LoadTimeout: 50 * time.Millisecond}})
	entered, unstick := make(chan struct{}), make(chan struct{})
	defer close(unstick)
	go func() {
		_, err := c.Get(context.Background(), "42", func(ctx context.Context, id string) (user, error) {
			close(entered)
			<-unstick
			return user{ID: id}, nil
		})
		t.Logf("Get: %v", err)
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	m, err := c.GetMany(ctx, []string{"42"}, func(ctx context.Context, ids []string) (map[string]user, error) {
		return map[string]user{"42": {ID: "42"}}, nil
	})
	took := time.Since(start)
	t.Logf("GetMany after %v = %v, %v", took, m, err)
	if took > time.Second {
		t.Errorf("GetMany joined a stuck in-process load and waited %v (its own ctx); want about LoadTimeout+20ms", took)
	}
}

// D: a leader left on its ctx and its loader hangs; long after the load's
// deadline, the next caller joins the dead call and gets an "abandoned"
// error at once, its own loader never called.
func TestInProcessStaleCallSacrificesCaller(t *testing.T) {
	c := inprocNew(t, tiercache.Options[user]{Rebuild: tiercache.Rebuild{LoadTimeout: 30 * time.Millisecond}})
	unstick := make(chan struct{})
	defer close(unstick)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	_, err := c.Get(ctx, "42", func(ctx context.Context, id string) (user, error) { <-unstick; return user{}, nil })
	cancel()
	t.Logf("first Get: %v", err)
	time.Sleep(200 * time.Millisecond)
	called := false
	u, err := c.Get(context.Background(), "42", func(ctx context.Context, id string) (user, error) {
		called = true
		return user{ID: id}, nil
	})
	t.Logf("second Get (200ms later) = %+v, %v; loader called: %v", u, err, called)
	if err != nil {
		t.Errorf("second Get, 200ms after the stuck load's deadline, failed without calling its loader: %v", err)
	}
}

func itoa(i int) string {
	const d = "0123456789"
	if i < 10 {
		return d[i : i+1]
	}
	return itoa(i/10) + d[i%10:i%10+1]
}
