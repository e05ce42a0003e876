package tiercache

import "testing"

func TestDecide(t *testing.T) {
	tests := []struct {
		name string
		s    seen
		want action
	}{
		{"read: fresh entry", seen{tier: tierOK, cur: fresh}, serveCur},
		{"read: stale entry", seen{tier: tierOK, cur: stale}, serveCur},
		{"read: nothing, store locks", seen{tier: tierOK, canLock: true}, tryLock},
		{"read: nothing, store without locks", seen{tier: tierOK}, loadFill},
		{"read: tier failed, copy held", seen{tier: tierFailed, prev: true, canLock: true}, servePrev},
		{"read: tier failed, no copy", seen{tier: tierFailed, canLock: true}, loadLocal},
		{"read: breaker open, copy held", seen{tier: tierSkipped, prev: true}, servePrev},
		{"read: breaker open, no copy", seen{tier: tierSkipped}, loadLocal},
		{"refresh: tier failed, copy held", seen{tier: tierFailed, prev: true, refresh: true}, loadLocal},
		{"lock: taken, nothing there", seen{tier: tierOK, locked: true, acquired: true, canLock: true}, loadFill},
		{"lock: taken, but a fresh fill raced", seen{tier: tierOK, locked: true, acquired: true, cur: fresh}, serveCur},
		{"lock: taken, stale entry", seen{tier: tierOK, locked: true, acquired: true, cur: stale}, loadFill},
		{"lock: held, fresh entry", seen{tier: tierOK, locked: true, cur: fresh}, serveCur},
		{"lock: held, stale entry", seen{tier: tierOK, locked: true, cur: stale}, serveCur},
		{"lock: held, nothing", seen{tier: tierOK, locked: true}, wait},
		{"lock: held, nothing, wait over", seen{tier: tierOK, locked: true, timedOut: true}, loadLocal},
		{"lock: held, nothing, wait over, FailOnLockWait", seen{tier: tierOK, locked: true, timedOut: true, failWait: true}, failWait},
		{"lock: held, nothing, refresh", seen{tier: tierOK, locked: true, refresh: true}, giveUp},
		{"lock: call failed (maybe taken)", seen{tier: tierFailed, locked: true, prev: true}, loadFill},
		{"lock: breaker open, copy held", seen{tier: tierSkipped, locked: true, prev: true}, servePrev},
		{"lock: breaker open, no copy", seen{tier: tierSkipped, locked: true}, loadLocal},
		{"lock first: taken, nothing there", seen{tier: tierOK, locked: true, probed: true, acquired: true, canLock: true}, loadFill},
		{"lock first: taken, fresh entry", seen{tier: tierOK, locked: true, probed: true, acquired: true, cur: fresh}, serveCur},
		{"lock first: taken, stale entry (served, refreshed under the lock)", seen{tier: tierOK, locked: true, probed: true, acquired: true, cur: stale}, serveLoad},
		{"lock first: held, stale entry", seen{tier: tierOK, locked: true, probed: true, cur: stale}, serveCur},
		{"lock first: call failed, copy held", seen{tier: tierFailed, locked: true, probed: true, prev: true}, servePrev},
		{"lock first: held, nothing", seen{tier: tierOK, locked: true, probed: true}, wait},
		{"lock first: call failed (maybe taken)", seen{tier: tierFailed, locked: true, probed: true}, loadFill},
	}
	for _, tt := range tests {
		if got := decide(tt.s); got != tt.want {
			t.Errorf("%s: decide(%+v) = %v, want %v", tt.name, tt.s, got, tt.want)
		}
	}
}
