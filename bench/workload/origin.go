package workload

import (
	"context"
	"sync/atomic"
	"time"
)

// Origin is the slow source of truth every contender's loader reads: each
// call sleeps Delay and is counted. It is safe for concurrent use; its zero
// value is an origin without delay.
type Origin struct {
	// Delay is how long one call takes (a database query). It must not be
	// changed while loads run.
	Delay time.Duration

	calls atomic.Int64 // loader calls, single or batch
	ids   atomic.Int64 // ids loaded
}

// NewOrigin returns an Origin whose calls take delay.
func NewOrigin(delay time.Duration) *Origin { return &Origin{Delay: delay} }

// Load returns the record of id after Delay. It returns ctx's error if ctx
// ends first.
func (o *Origin) Load(ctx context.Context, id string) (Record, error) {
	o.calls.Add(1)
	o.ids.Add(1)
	if err := o.sleep(ctx); err != nil {
		return Record{}, err
	}
	return NewRecord(id), nil
}

// LoadMany returns the records of ids after one Delay: a batch query.
func (o *Origin) LoadMany(ctx context.Context, ids []string) (map[string]Record, error) {
	o.calls.Add(1)
	o.ids.Add(int64(len(ids)))
	if err := o.sleep(ctx); err != nil {
		return nil, err
	}
	m := make(map[string]Record, len(ids))
	for _, id := range ids {
		m[id] = NewRecord(id)
	}
	return m, nil
}

func (o *Origin) sleep(ctx context.Context) error {
	if o.Delay <= 0 {
		return nil
	}
	t := time.NewTimer(o.Delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Calls returns the number of loader calls so far, single and batch.
func (o *Origin) Calls() int64 { return o.calls.Load() }

// IDs returns the number of ids loaded so far.
func (o *Origin) IDs() int64 { return o.ids.Load() }
