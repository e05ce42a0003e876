package tiercache_test

import (
	"context"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
)

// K: an abandoned load that later succeeds finishes its call with
// (fetched{}, nil): a caller still joined to it dereferences a nil entry.
func TestInProcessAbandonedSuccessNilEntry(t *testing.T) {
	c := inprocNew(t, tiercache.Options[user]{Rebuild: tiercache.Rebuild{LoadTimeout: 10 * time.Millisecond}})
	entered, finish := make(chan struct{}), make(chan struct{})
	go c.Get(context.Background(), "42", func(ctx context.Context, id string) (user, error) {
		close(entered)
		<-finish // ignores ctx, then succeeds
		return user{ID: id}, nil
	})
	<-entered
	go func() {
		time.Sleep(200 * time.Millisecond) // the leader has abandoned (10ms+20ms)
		close(finish)
	}()
	m, err := c.GetMany(context.Background(), []string{"42"}, func(ctx context.Context, ids []string) (map[string]user, error) {
		return map[string]user{"42": {ID: "42"}}, nil
	})
	t.Logf("GetMany = %v, %v", m, err)
}
