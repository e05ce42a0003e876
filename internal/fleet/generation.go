package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/internal/keys"
	"github.com/tiercache/tiercache/stats"
)

// The runtime generation of a keyspace lives in the store (keys.Version),
// never only in the processes: the store's value is the authority, and a
// process moves to a generation only after reading it there.
//
//   - A process reads it when it starts, when its subscription comes back,
//     when a message hints at a change, and every syncEvery: its read also
//     raises the stored value to the generation it uses if the store holds
//     less (the key was lost: a restart without persistence, FLUSHALL,
//     eviction), and then hints to the others. So processes never split
//     over a lost key for longer than it takes to notice, and never move
//     back: a generation only goes up.
//   - A bump stores a generation above any stored or known, and at least
//     the store's clock in microseconds, so that even after the key was
//     lost a bump moves every process to keys nobody has used.
//   - Until a process has read the generation (at start, after losing its
//     subscription), it does not use the shared tier: it does not know its
//     keys.

// syncEvery is how often a process re-reads the generation besides hints:
// the bound on how long a lost version key or a missed bump goes unnoticed
// when messages are lost.
func (t *Tier) syncEvery() time.Duration {
	return max(t.caps.NotifyBound, time.Second)
}

// maintain is the tier's background loop: generation syncs and repairs of
// failed writes.
func (t *Tier) maintain() {
	tick := time.NewTicker(t.syncEvery())
	defer tick.Stop()
	repair := time.NewTimer(time.Hour)
	repair.Stop()
	defer repair.Stop()
	backoff := minRepairBackoff
	if t.caps.Generations && !t.caps.Messages {
		// With messages, the first sync follows the subscription's first
		// Up, so that no bump falls between the two.
		t.sync(t.ctx)
	}
	for {
		select {
		case <-t.ctx.Done():
			t.endRound()
			return
		case <-t.hint:
			t.sync(t.ctx)
		case <-tick.C:
			if t.caps.Generations {
				t.sync(t.ctx)
			}
		case <-t.kick:
			repair.Reset(0)
		case <-repair.C:
			switch more, err := t.repair(t.ctx); {
			case err != nil:
				repair.Reset(backoff)
				backoff = min(2*backoff, maxRepairBackoff)
			case more:
				backoff = minRepairBackoff
				repair.Reset(0)
			default:
				backoff = minRepairBackoff
			}
		}
	}
}

// syncSoon asks the maintenance loop to read the generation now.
func (t *Tier) syncSoon() {
	select {
	case t.hint <- struct{}{}:
	default:
	}
}

// endRound wakes the callers of Ready waiting for the current sync round.
func (t *Tier) endRound() {
	t.roundMu.Lock()
	close(t.round)
	t.round = make(chan struct{})
	t.roundMu.Unlock()
}

// readyRounds is how many sync rounds Ready waits for: the round in
// progress when it is called may have started its read before the store
// could answer (a process just started, a connection being made), so one
// more that starts after the call; a write must not fail for that alone.
const readyRounds = 2

// Ready returns the keyspace in effect once its generation is known, after
// up to readyRounds syncs if it is not (waiting at most until ctx ends, and
// no longer once the breaker opens); ok is false if it could not be read:
// the caller must not use the shared tier.
func (t *Tier) Ready(ctx context.Context) (space *keys.Space, ok bool) {
	for range readyRounds {
		if t.known.Load() {
			return t.space.Load(), true
		}
		if t.brk != nil && !t.brk.Allow() {
			return nil, false
		}
		t.roundMu.Lock()
		round := t.round
		t.roundMu.Unlock()
		t.syncSoon()
		select {
		case <-round:
		case <-ctx.Done():
			return nil, false
		case <-t.ctx.Done():
			return nil, false
		}
	}
	if t.known.Load() {
		return t.space.Load(), true
	}
	return nil, false
}

// sync reads the generation from the store (raising it to ours if the
// store holds less) and moves to it if it is newer.
func (t *Tier) sync(ctx context.Context) {
	defer t.endRound()
	if !t.caps.Generations {
		return
	}
	cur := t.space.Load()
	// The writes done before the generation is read went to the keys in
	// effect if the read finds no move.
	t.recentMu.Lock()
	confirmed := make(map[*write]bool)
	for _, w := range t.recent {
		if w.done {
			confirmed[w] = true
		}
	}
	t.recentMu.Unlock()
	var gen int64
	var raised bool
	err := t.call(ctx, func(ctx context.Context) (err error) {
		gen, raised, err = t.store.Generation(ctx, t.verKey, cur.Gen)
		return err
	})
	if err != nil {
		return
	}
	if gen > cur.Gen {
		t.switchTo(ctx, gen, t.everKnown.Load())
	} else if len(confirmed) > 0 {
		t.recentMu.Lock()
		t.recent = slices.DeleteFunc(t.recent, func(w *write) bool { return confirmed[w] })
		t.recentMu.Unlock()
	}
	t.known.Store(true)
	t.everKnown.Store(true)
	if raised {
		// The key was missing or lower: lost (or never written), and other
		// processes may use another generation. Have them read it again: the
		// highest generation any of them knows wins.
		if cur.Gen > 0 {
			t.info("tiercache: runtime version key restored", slog.String("version", cur.Version))
		}
		t.publish(ctx, t.message(opVersion, cur))
	}
}

// switchTo moves to generation gen if it is newer than the one in use, and
// flushes the cache's copies (and the claims of loads in flight), so that
// once it returns no copy of the old generation is left or can enter: it
// flushes on both sides of the keyspace swap, before for readers that see
// the new keyspace, after for what loads that read the old one kept in
// between (a load notes the cache's epoch before it reads the keyspace).
func (t *Tier) switchTo(ctx context.Context, gen int64, announce bool) {
	t.genMu.Lock()
	cur := t.space.Load()
	if gen <= cur.Gen {
		t.genMu.Unlock()
		return
	}
	next := keys.NewSpace(t.cfg.Prefix, t.cfg.Version, t.cfg.Name, gen)
	t.cfg.Local.Flush()
	t.prevGen.Store(cur.Gen)
	t.switched.Store(t.cfg.Now())
	// This process's writes since it last confirmed its generation may have
	// gone to the old keys while another process already filled the new
	// ones: carry them over (see pending), before any read uses the new
	// keys. The carry and the swap are one step for begin, which records a
	// write before reading the keyspace: a write either is carried over or
	// sees the new keys.
	t.recentMu.Lock()
	var carry []string
	for _, w := range t.recent {
		carry = append(carry, w.ids...)
	}
	t.recent = nil
	if len(carry) > 0 {
		t.pending.add(carry...)
	}
	t.space.Store(next)
	t.recentMu.Unlock()
	t.retrack()
	t.repairSoon()
	t.cfg.Local.Flush()
	t.genMu.Unlock()
	if !announce {
		// The first read of the generation: where this process starts,
		// not a move.
		return
	}
	t.cfg.Record(stats.VersionSwitch)
	t.info("tiercache: switched to a new runtime version", slog.String("from", cur.Version), slog.String("to", next.Version))
	t.publish(ctx, t.message(opAck, next))
}

// publish sends a message; a failure is logged.
func (t *Tier) publish(ctx context.Context, msg string) {
	if !t.caps.Messages {
		return
	}
	err := t.call(ctx, func(ctx context.Context) error {
		_, err := t.store.Publish(ctx, t.channel, msg)
		return err
	})
	if err != nil {
		t.warn(ctx, "tiercache: message not sent", t.channel, err)
	}
}

// Bumped is the result of a runtime version bump.
type Bumped struct {
	// Version is the new version in keys, e.g. "v1+1764201234567890".
	Version string
	// Generation is its runtime generation.
	Generation int64
	// Heard is how many subscribed processes received the bump's message
	// (on Redis Cluster, only those connected to the node that took it).
	Heard int64
	// Switched is how many processes, besides the caller, said they moved
	// to the new version before Bump returned.
	Switched int
}

// ackWaitMax bounds how long a bump waits for the processes that heard it
// to say they switched.
const ackWaitMax = 2 * time.Second

// Bump moves the keyspace to a new runtime generation: it stores one in the
// store, switches this process, hints every other, and waits (at most
// ackWaitMax, and until ctx ends) until as many processes as heard the hint
// say they switched.
func (t *Tier) Bump(ctx context.Context) (Bumped, error) {
	if !t.caps.Generations {
		return Bumped{}, fmt.Errorf("tiercache: bump: the store keeps no runtime versions")
	}
	cur := t.space.Load()
	var gen int64
	err := t.call(ctx, func(ctx context.Context) (err error) {
		gen, err = t.store.Bump(ctx, t.verKey, cur.Gen)
		return err
	})
	if err == nil && gen <= cur.Gen {
		err = fmt.Errorf("the store returned generation %d, not above %d", gen, cur.Gen)
	}
	if err != nil {
		return Bumped{}, fmt.Errorf("tiercache: bump version of %s: %w", t.cfg.Name, err)
	}
	version := keys.VersionAt(t.cfg.Version, gen)
	w := &ackWait{gen: gen, seen: map[string]bool{t.instance: true}, more: make(chan struct{}, 1)}
	t.acks.Store(w)
	defer t.acks.CompareAndSwap(w, nil)
	t.switchTo(ctx, gen, true)
	b := Bumped{Version: version, Generation: gen}
	if !t.caps.Messages {
		return b, nil
	}
	err = t.call(ctx, func(ctx context.Context) (err error) {
		b.Heard, err = t.store.Publish(ctx, t.channel, t.message(opVersion, t.space.Load()))
		return err
	})
	if err != nil {
		return b, fmt.Errorf("tiercache: version bumped to %s, but the message to running processes failed (they switch within %v): %w", version, t.syncEvery(), err)
	}
	if t.subscribed() && b.Heard > 0 {
		// This process's own subscription, if Redis counted it: on Redis
		// Cluster it counts only the subscribers of the node that took the
		// PUBLISH, so there Heard is a lower bound.
		b.Heard--
	}
	b.Switched = w.wait(ctx, int(b.Heard))
	return b, nil
}

// subscribed reports whether this process's subscription is up (its copies
// are trusted only then).
func (t *Tier) subscribed() bool { return t.up.Load() }

// ackWait counts the processes that said they switched to generation gen
// (whatever their code's Version).
type ackWait struct {
	gen  int64
	mu   sync.Mutex
	seen map[string]bool // instances, this one included
	more chan struct{}
}

func (w *ackWait) ack(instance, version string) {
	if _, gen, ok := keys.ParseVersion(version); !ok || gen != w.gen {
		return
	}
	w.mu.Lock()
	w.seen[instance] = true
	w.mu.Unlock()
	select {
	case w.more <- struct{}{}:
	default:
	}
}

// wait returns the number of other instances that acknowledged, once it
// reaches want or after ackWaitMax or when ctx ends.
func (w *ackWait) wait(ctx context.Context, want int) int {
	t := time.NewTimer(ackWaitMax)
	defer t.Stop()
	for {
		w.mu.Lock()
		n := len(w.seen) - 1
		w.mu.Unlock()
		if n >= want {
			return n
		}
		select {
		case <-w.more:
		case <-t.C:
			return n
		case <-ctx.Done():
			return n
		}
	}
}

// Bump bumps the runtime generation of the keyspace name under prefix from
// outside any cache (the tiercache command): it subscribes to the
// keyspace's channel for the time of the bump, to count the processes that
// switch. version is the code Version reported in the result.
func Bump(ctx context.Context, store driver.Store, prefix, version, name string) (Bumped, error) {
	t := New(Config{
		Store: store, Prefix: prefix, Version: version, Name: name,
		Local: nopLocal{}, Messages: true,
		Now:    func() int64 { return time.Now().UnixNano() },
		Record: func(stats.Event) {},
	})
	t.Start()
	defer t.Close()
	if t.caps.Messages {
		// Wait for the subscription, so that the acknowledgements are heard.
		wait, cancel := context.WithTimeout(ctx, ackWaitMax)
		for !t.subscribed() && wait.Err() == nil {
			t.upMu.Lock()
			up := t.upCh
			t.upMu.Unlock()
			select {
			case <-up:
			case <-wait.Done():
			}
		}
		cancel()
	}
	return t.Bump(ctx)
}

// nopLocal is the Local of a Tier without a cache.
type nopLocal struct{}

func (nopLocal) Invalidate(string) bool { return false }
func (nopLocal) Flush()                 {}
func (nopLocal) Trust(bool)             {}
