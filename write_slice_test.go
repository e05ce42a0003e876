package tiercache_test

// Tests from the second adversarial review (each failed on the code it reviewed): the caller's slice of ids.

import (
	"context"
	"testing"

	"github.com/tiercache/tiercache"
)

// TestDeleteKeepsNoCallerSlice: contract 1 and the carry-over rule ("A
// process that moves to a new generation carries over its own writes made
// since it last read the generation"). Delete(ctx, ids...) records the
// write for the carry-over by keeping the caller's slice itself (fleet.begin:
// &write{ids: ids}), not a copy. A caller that reuses its buffer once
// Delete has returned (the usual batching idiom: ids = ids[:0]) rewrites
// what the cache will carry over: after the switch the cache carries over
// the ids now in the buffer, not the ones it deleted, and serves, from the
// new keys, the value its Delete replaced.
func TestDeleteKeepsNoCallerSlice(t *testing.T) {
	t.Run("BufferReused", func(t *testing.T) { advDeleteSlice(t, true) })
	t.Run("Control", func(t *testing.T) { advDeleteSlice(t, false) })
}

func advDeleteSlice(t *testing.T, reuse bool) {
	const id = "x"
	s := advGenerationSetup(t, id, tiercache.Options[user]{})
	ctx := t.Context()
	batch := []string{id}
	if err := s.a.Delete(ctx, batch...); err != nil {
		t.Fatal(err)
	}
	if reuse {
		batch[0] = "next-batch-id" // the caller reuses its slice for its next batch
	}
	s.hintLate(t)
	waitUntil(t, func() bool { return s.a.Stats().WritesRepaired >= 1 }, "A's carry-over to be repaired")
	u, err := s.a.Get(ctx, id, func(context.Context, string) (user, error) { return user{ID: id, Name: "v1"}, nil })
	if err != nil || u.Name != "v1" {
		t.Errorf("after A's Delete(%q) returned nil and A switched to %s, A serves %+v, %v: the value its Delete replaced (the caller had reused its slice: %v)",
			id, s.bumped, u, err, reuse)
	}
}
