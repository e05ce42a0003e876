package fleet

import "sync"

// Waiters are the waits of this process for other processes' rebuilds, by
// id. A wait registers one channel (of capacity 1) under each id it waits
// for; a wake of any of them signals it. The zero value is ready to use.
type Waiters struct {
	mu sync.Mutex
	m  map[string][]chan struct{}
}

// Add registers ch under ids.
func (w *Waiters) Add(ids []string, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = make(map[string][]chan struct{})
	}
	for _, id := range ids {
		w.m[id] = append(w.m[id], ch)
	}
}

// Remove unregisters ch from ids.
func (w *Waiters) Remove(ids []string, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		list := w.m[id]
		for i, c := range list {
			if c == ch {
				list[i] = list[len(list)-1]
				list = list[:len(list)-1]
				break
			}
		}
		if len(list) == 0 {
			delete(w.m, id)
		} else {
			w.m[id] = list
		}
	}
}

// Wake signals every wait registered under id.
func (w *Waiters) Wake(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ch := range w.m[id] {
		signal(ch)
	}
}

// WakeAll signals every wait.
func (w *Waiters) WakeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, list := range w.m {
		for _, ch := range list {
			signal(ch)
		}
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
