package fleet

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/internal/keys"
	"github.com/tiercache/tiercache/stats"
)

// Server-assisted invalidation: the store tells the process of every change
// of a value key of the keyspace in effect (Redis client tracking on the
// keyspace's head, "v1:user:"), whoever makes it: another tiercache
// process, redis-cli, a service in another language, an expiry, an
// eviction. The process drops its copy as it does for a message.
//
// It comes on top of the messages, which still carry what tracking cannot:
// the releases of rebuilds without a fill (no value key changes), version
// hints and acknowledgements (the version key is not under the head), and
// writes to carry over to other generations and code Versions (their keys
// are not either). A write by tiercache is therefore heard twice, which is
// harmless: both only drop copies and wake waiters.
//
// The writing process hears its own writes too: the store cannot tell them
// from a concurrent write by another client (Redis merges the
// invalidations of one key in one event loop turn), so it drops its own
// copy after a Set or a fill and reads the shared tier once more. Dropping a
// copy never serves a value the contract forbids; keeping one might.
//
// Trust: L1 answers before the shared tier only while every channel that
// can miss a change is up: the subscription (with messages), and the
// tracking (once the store has said it can track). Until the first answer
// of the store, tracking counts as down; a store that refuses it (Redis
// before 6, an ACL without CLIENT) turns it off, and the messages carry on
// alone, as without it.

// Tracking states.
const (
	trackOff     = iota // not used: not asked, not supported, refused
	trackPending        // asked; the store has not answered yet
	trackOn             // the store can track (up or not: see trackUp)
)

// track runs the tracking of the keyspace in effect, again for each new
// generation (its head changes), until the tier closes or the store
// refuses.
func (t *Tier) track() {
	for {
		space := t.space.Load()
		ctx, cancel := context.WithCancel(t.ctx)
		t.trackMu.Lock()
		t.trackStop = cancel
		t.trackMu.Unlock()
		if t.space.Load() != space {
			// A switch between the load and the store of trackStop.
			cancel()
			continue
		}
		err := t.store.Track(ctx, space.Head(), trackHandler{t, space})
		cancel()
		if t.ctx.Err() != nil {
			return
		}
		if errors.Is(err, driver.ErrUnsupported) {
			t.trackState.Store(trackOff)
			t.trackUp.Store(false)
			t.retrust()
			t.signalUp()
			if !t.trackLogged.Swap(true) || t.trackWasOn.Load() {
				t.trackWasOn.Store(false)
				t.info("tiercache: server-assisted invalidation unavailable; changes by other clients reach L1 only within L1TTL",
					slog.String("err", err.Error()))
			}
			return
		}
		// Another generation: track its head.
	}
}

// retrack restarts the tracking on the keyspace now in effect; until it is
// up again the cache's copies are not trusted.
func (t *Tier) retrack() {
	if t.trackState.Load() == trackOff {
		return
	}
	t.trackMu.Lock()
	t.trackUp.Store(false)
	stop := t.trackStop
	t.trackMu.Unlock()
	t.retrust()
	if stop != nil {
		stop()
	}
}

// retrust tells the cache whether its copies may answer first: only while
// nothing that can miss a change is down.
func (t *Tier) retrust() {
	t.trustMu.Lock()
	defer t.trustMu.Unlock()
	t.cfg.Local.Trust(t.listening())
}

// listening reports whether every channel of changes is up.
func (t *Tier) listening() bool {
	msgs := !t.caps.Messages || t.up.Load()
	switch t.trackState.Load() {
	case trackPending:
		return false
	case trackOn:
		return msgs && t.trackUp.Load()
	}
	return msgs
}

// signalUp wakes WaitSettled.
func (t *Tier) signalUp() {
	t.upMu.Lock()
	close(t.upCh)
	t.upCh = make(chan struct{})
	t.upMu.Unlock()
}

// Tracking reports whether server-assisted invalidation is in use: asked
// for, and not refused by the store.
func (t *Tier) Tracking() bool { return t.trackState.Load() == trackOn }

// trackHandler receives the tracking of one generation's keys.
type trackHandler struct {
	t     *Tier
	space *keys.Space
}

func (h trackHandler) Invalidate(ks []string) {
	t := h.t
	if ks == nil {
		t.own.forget()
		t.cfg.Local.Flush()
		t.waiters.WakeAll()
		return
	}
	var checkKeys, checkIDs []string
	for _, k := range ks {
		id, ok := h.space.ID(k)
		if !ok {
			continue
		}
		// A copy of an own write may not be in L1 yet (its fill's reply and
		// this message race): checked all the same, so that it can enter.
		if t.own.invalidated(k) {
			checkKeys, checkIDs = append(checkKeys, k), append(checkIDs, id)
		} else {
			t.drop(id)
		}
		t.waiters.Wake(id)
	}
	if len(checkKeys) > 0 {
		t.checkOwn(checkKeys, checkIDs)
	}
}

// drop drops id's copy, and counts it if there was one.
func (t *Tier) drop(id string) {
	if t.cfg.Local.Invalidate(id) {
		t.cfg.Record(stats.Invalidation)
	}
}

// wrote remembers a write of this process about to be sent (see own).
func (t *Tier) wrote(key string, value []byte) {
	if t.trackState.Load() != trackOff {
		t.own.wrote(key, value)
	}
}

// Up flushes the cache's copies (they may have missed changes while the
// tracking was down) and trusts them again if the subscription is up too.
func (h trackHandler) Up() {
	t := h.t
	t.trackMu.Lock()
	if t.space.Load() != h.space {
		// A generation left behind (see retrack): its tracking is ending.
		t.trackMu.Unlock()
		return
	}
	if t.trackState.Swap(trackOn) != trackOn && !t.trackLogged.Swap(true) {
		t.info("tiercache: server-assisted invalidation on (Redis client tracking)", slog.String("prefix", h.space.Head()))
	}
	t.trackWasOn.Store(true)
	t.own.forget()
	t.cfg.Local.Flush()
	t.trackUp.Store(true)
	t.trackMu.Unlock()
	t.retrust()
	if t.trackLost.Swap(false) {
		down := time.Duration(t.cfg.Now() - t.trackLostAt.Load())
		t.info("tiercache: invalidation tracking back; in-process copies flushed",
			slog.String("prefix", h.space.Head()), slog.String("down", down.Round(time.Millisecond).String()))
	}
	t.waiters.WakeAll()
	t.signalUp()
}

// Down stops trusting the cache's copies before the shared tier. A restart
// for a new generation is not a loss worth a Warn.
func (h trackHandler) Down(err error) {
	t := h.t
	t.trackUp.Store(false)
	t.retrust()
	if errors.Is(err, context.Canceled) || errors.Is(err, driver.ErrUnsupported) {
		return
	}
	if !t.trackLost.Swap(true) {
		t.trackLostAt.Store(t.cfg.Now())
		t.warn(t.ctx, "tiercache: invalidation tracking lost; in-process copies answer only when the shared tier fails", h.space.Head(), err)
	}
}
