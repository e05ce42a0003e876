package workload

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

func TestRecordSize(t *testing.T) {
	b, err := json.Marshal(NewRecord("4242"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 1000 || len(b) > 1200 {
		t.Errorf("JSON record is %d bytes, want about 1 KB", len(b))
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, time.Millisecond}} {
		got := h.Quantile(tc.q)
		if d := float64(got-tc.want) / float64(tc.want); d > 0.04 || d < -0.04 {
			t.Errorf("Quantile(%v) = %v, want %v within 4%%", tc.q, got, tc.want)
		}
	}
}

func TestTraceSkew(t *testing.T) {
	tr := Trace(10_000, 100_000, 1)
	var top int
	for _, i := range tr {
		if i < 100 {
			top++
		}
	}
	// With s=1.01 over 10 000 keys the 100 most popular take roughly half.
	if top < 30_000 || top > 70_000 {
		t.Errorf("top 1%% of keys got %d of 100000 requests, want a Zipf-like share", top)
	}
}

func TestOriginCounts(t *testing.T) {
	o := NewOrigin(0)
	if _, err := o.Load(context.Background(), "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := o.LoadMany(context.Background(), []string{"2", "3"}); err != nil {
		t.Fatal(err)
	}
	if o.Calls() != 2 || o.IDs() != 3 {
		t.Errorf("calls, ids = %d, %d, want 2, 3", o.Calls(), o.IDs())
	}
}
