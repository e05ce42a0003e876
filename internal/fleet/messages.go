package fleet

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/internal/keys"
	"github.com/tiercache/tiercache/stats"
)

// Messages on a keyspace's channel are "<op> <instance> <version> <ids>",
// version being the sender's version in keys ("v1", "v1+1764201234567890") and
// ids separated by newlines (ids hold no control characters):
//
//	w  a write (Set, Delete): the ids changed. Receivers drop their copies
//	   and wake their waiters. A receiver whose keys are not the sender's
//	   carries the write over to its own keys (see carries): one that
//	   moved to a newer generation within ForwardWindow, or one on another
//	   code Version of the keyspace (a rolling deploy).
//	F  a write carried over (or completed after a failure): as w, but never
//	   carried over again, so that two code Versions do not echo each
//	   other's writes forever.
//	f  a rebuild's fill: receivers drop their (older) copies and wake.
//	r  a rebuild released without a fill: receivers wake their waiters.
//	v  hint: re-read the keyspace's generation from the store.
//	a  acknowledgement: the sender moved to version (ids empty).
//
// A message is a hint, never the authority: nothing in one moves a process
// to a state the store does not hold. The worst a forged message can do is
// make processes drop copies, or delete entries (which costs reloads from
// the origin), or read the generation once more.
const (
	opWrite    = 'w'
	opCarried  = 'F'
	opFill     = 'f'
	opReleased = 'r'
	opVersion  = 'v'
	opAck      = 'a'
)

// message returns the message of op about ids in space.
func (t *Tier) message(op byte, space *keys.Space, ids ...string) string {
	n := len(ids)
	for _, id := range ids {
		n += len(id)
	}
	var b strings.Builder
	b.Grow(4 + len(t.instance) + len(space.Version) + n)
	b.WriteByte(op)
	b.WriteByte(' ')
	b.WriteString(t.instance)
	b.WriteByte(' ')
	b.WriteString(space.Version)
	b.WriteByte(' ')
	for i, id := range ids {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(id)
	}
	return b.String()
}

// note returns the note announcing op about ids, or none without messages.
func (t *Tier) note(op byte, space *keys.Space, ids ...string) driver.Note {
	if !t.caps.Messages {
		return driver.Note{}
	}
	return driver.Note{Channel: t.channel, Message: t.message(op, space, ids...)}
}

// FillNote is the note a single conditional fill of id publishes.
func (t *Tier) FillNote(space *keys.Space, id string) driver.Note { return t.note(opFill, space, id) }

// Filled tells the other processes that ids were filled (they drop older
// copies and wake their waiters).
func (t *Tier) Filled(ctx context.Context, space *keys.Space, ids []string) {
	t.announce(ctx, opFill, space, ids)
}

// Released tells the processes waiting for the rebuilds of ids that they
// ended without a fill.
func (t *Tier) Released(ctx context.Context, space *keys.Space, ids []string) {
	t.announce(ctx, opReleased, space, ids)
}

// announce publishes op about ids, driver.MaxBatch ids per message. A
// failure is logged: fills and releases are hints (waiters also poll).
func (t *Tier) announce(ctx context.Context, op byte, space *keys.Space, ids []string) {
	if !t.caps.Messages || len(ids) == 0 {
		return
	}
	err := chunks(len(ids), func(lo, hi int) error {
		return t.call(ctx, func(ctx context.Context) error {
			_, err := t.store.Publish(ctx, t.channel, t.message(op, space, ids[lo:hi]...))
			return err
		})
	})
	if err != nil {
		t.warn(ctx, "tiercache: message not sent", space.Key(ids[0]), err)
	}
}

// handler receives the subscription's messages and state.
type handler struct{ t *Tier }

func (h handler) Message(payload string) {
	t := h.t
	op, rest, _ := strings.Cut(payload, " ")
	instance, rest, _ := strings.Cut(rest, " ")
	version, list, _ := strings.Cut(rest, " ")
	if len(op) != 1 {
		return
	}
	switch op[0] {
	case opVersion:
		t.syncSoon()
		return
	case opAck:
		if w := t.acks.Load(); w != nil {
			w.ack(instance, version)
		}
		return
	case opWrite, opCarried, opFill, opReleased:
	default:
		return
	}
	code, gen, ok := keys.ParseVersion(version)
	if !ok {
		return // not from a tiercache process
	}
	own := instance == t.instance
	forward := op[0] == opWrite && !own && t.carries(code, gen)
	if list == "" {
		return
	}
	if forward {
		// Pending before the copies are dropped, so that no read in between
		// takes the new keys' older value back into L1.
		t.pending.add(strings.Split(list, "\n")...)
		t.repairSoon()
	}
	for id := range strings.SplitSeq(list, "\n") {
		if id == "" {
			continue
		}
		if op[0] != opReleased && !own && t.cfg.Local.Invalidate(id) {
			t.cfg.Record(stats.Invalidation)
		}
		t.waiters.Wake(id)
	}
}

// carries reports whether a write announced under the code version code at
// generation gen must be carried over to this process's keys, and asks for
// the generation to be read again if the sender's may be newer.
//
//   - Another generation of this code Version: ours may be out of date, or
//     the sender's. A write from the generation we just left (within
//     ForwardWindow) is carried over, so that it is not lost on processes
//     that have not switched yet.
//   - Another code Version (a rolling deploy): its keys are not ours, but
//     its write changed the origin all the same; every process of the other
//     Version deletes the ids in its own keys (one DEL per process: a
//     deploy's cost, not a steady one).
func (t *Tier) carries(code string, gen int64) bool {
	space := t.space.Load()
	switch {
	case code != t.cfg.Version:
		return true
	case gen == space.Gen:
		return false
	}
	t.syncSoon()
	return gen < space.Gen && gen == t.prevGen.Load() && t.cfg.Now()-t.switched.Load() < int64(t.cfg.ForwardWindow)
}

// Up trusts the cache's copies again (if the tracking is up too) once they
// have been flushed of whatever they may have kept while messages could be
// missed, and has the
// generation read again (a bump may have been missed too).
func (h handler) Up() {
	t := h.t
	t.cfg.Local.Flush()
	t.up.Store(true)
	t.retrust()
	if t.lost.Swap(false) {
		down := time.Duration(t.cfg.Now() - t.lostAt.Load())
		t.info("tiercache: invalidation subscription back; in-process copies flushed and trusted again",
			slog.String("channel", t.channel), slog.String("down", down.Round(time.Millisecond).String()))
	}
	t.signalUp()
	t.waiters.WakeAll()
	t.syncSoon()
}

// Down stops trusting the cache's copies before the shared tier, makes the
// generation unknown until it is read again (a bump may be missed), and
// opens the breaker if the connection died.
func (h handler) Down(err error) {
	t := h.t
	if t.brk != nil && !isTimeout(err) {
		// The subscription's connection died (closed, reset, refused): the
		// store is most likely gone (killed, restarted). Stop calling it at
		// once; the breaker's background probe closes it again as soon as
		// it answers. A health ping that went unanswered does not: a
		// healthy Redis on a loaded machine misses one now and then, and a
		// frozen one fails the calls that open the breaker anyway.
		t.brk.Trip()
	}
	t.up.Store(false)
	t.retrust()
	if t.caps.Generations {
		t.known.Store(false)
	}
	t.syncSoon()
	// Once per loss, not per failed reconnection.
	if !t.lost.Swap(true) {
		t.lostAt.Store(t.cfg.Now())
		t.warn(t.ctx, "tiercache: invalidation subscription lost; in-process copies answer only when the shared tier fails", t.channel, err)
	}
}

// isTimeout reports an error that is a deadline passing, not a connection
// failing.
func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &te) && te.Timeout())
}
