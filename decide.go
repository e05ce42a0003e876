package tiercache

// The decision at the heart of a miss. Every id a miss resolves goes
// through rounds of calls to the shared tier (a read, then lock attempts),
// and after each call what to do next depends only on what the call showed.
// decide is that rule, as a pure function, so that Get, GetMany and
// background refreshes take the same path.

// action is what to do next with an id being resolved.
type action uint8

const (
	serveCur  action = iota + 1 // answer with the entry found in the shared tier
	servePrev                   // answer with this process's copy: the tier failed
	tryLock                     // take the key's rebuild lock
	loadFill                    // load, and fill the shared tier (under the lock if taken)
	loadLocal                   // load for this process alone, fill nothing
	wait                        // another process is rebuilding: wait for its fill
	giveUp                      // a refresh that another process is doing: nothing to do
	failWait                    // the wait for another process's rebuild timed out: ErrLockWait
	serveLoad                   // answer with the stale entry found, and refresh it under the lock taken
)

var actionNames = [...]string{serveCur: "serveCur", servePrev: "servePrev", tryLock: "tryLock", loadFill: "loadFill",
	loadLocal: "loadLocal", wait: "wait", giveUp: "giveUp", failWait: "failWait", serveLoad: "serveLoad"}

func (a action) String() string {
	if int(a) < len(actionNames) && actionNames[a] != "" {
		return actionNames[a]
	}
	return "action(?)"
}

// tierState is what became of the last call for an id.
type tierState uint8

const (
	tierOK      tierState = iota + 1
	tierFailed            // the call went out and failed: it may have taken effect
	tierSkipped           // no call: breaker open, generation unknown, or a pending write of the id
)

// seen is what is known of an id after a call to the shared tier.
type seen struct {
	tier     tierState
	cur      freshness // of the entry the tier holds: 0 none, fresh, stale (expired is none)
	locked   bool      // the call was a lock attempt
	acquired bool      // it took the lock
	prev     bool      // this process holds a copy it may serve while the tier fails
	canLock  bool      // the store has rebuild locks
	refresh  bool      // a background refresh: never waits
	timedOut bool      // the wait for another process's rebuild is over
	failWait bool      // Options.Rebuild.FailOnLockWait
	probed   bool      // the call was a lock attempt with no read before it
}

// decide returns what to do with an id after a call showed s.
//
//   - The tier failed or was not asked: this process's copy, if it may
//     serve one, else a load for this process alone; but after a lock
//     attempt that went out (the lock may be ours, the reply lost) a
//     conditional fill, which stores and releases a lock we hold and does
//     nothing otherwise, so the others do not wait for its expiry.
//   - A fresh entry: serve it (a lock taken meanwhile is released).
//   - A stale entry found by a lock attempt made without a read (see
//     Cache.lockFirst): serve it, as a read would have, and if that attempt
//     took the lock, refresh it under that lock (load and fill).
//   - The tier failed on such an attempt: this process's copy if it may
//     serve one (as after a failed read; the lock, maybe taken, is released
//     in the background), else a conditional fill as for any lock attempt.
//   - The lock taken: load and fill.
//   - A stale entry: another process is refreshing it; serve it meanwhile.
//   - Nothing after a read: take the lock (or, without locks, load and fill).
//   - Nothing, lock held by another: a refresh gives up; a request waits for
//     the fill, and once the wait is over loads alone or fails.
func decide(s seen) action {
	switch {
	case s.tier != tierOK:
		switch {
		case s.probed && s.prev && !s.refresh:
			return servePrev
		case s.locked && s.tier == tierFailed:
			return loadFill
		case s.prev && !s.refresh:
			return servePrev
		}
		return loadLocal
	case s.cur == fresh:
		return serveCur
	case s.acquired && s.cur == stale && s.probed:
		return serveLoad
	case s.acquired:
		return loadFill
	case s.cur == stale:
		return serveCur
	case !s.locked:
		if s.canLock {
			return tryLock
		}
		return loadFill
	case s.refresh:
		return giveUp
	case s.timedOut && s.failWait:
		return failWait
	case s.timedOut:
		return loadLocal
	}
	return wait
}
