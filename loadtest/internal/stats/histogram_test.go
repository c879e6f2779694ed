package stats

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestIndexBounds(t *testing.T) {
	// Every value falls inside the bounds of its bucket, and buckets are contiguous.
	prevEnd := int64(0)
	for i := 0; i < linear+40*subBuckets; i++ {
		low, width := bounds(i)
		if low != prevEnd {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, low, prevEnd)
		}
		for _, v := range []int64{low, low + width - 1} {
			if got := index(v); got != i {
				t.Fatalf("index(%d) = %d, want %d", v, got, i)
			}
		}
		if low >= linear && float64(width)/float64(low) > 1.0/subBuckets+1e-9 {
			t.Fatalf("bucket %d: width %d too wide for %d", i, width, low)
		}
		prevEnd = low + width
	}
}

func TestQuantiles(t *testing.T) {
	tests := []struct {
		name    string
		samples []time.Duration
		q       float64
		want    time.Duration
	}{
		{"empty", nil, 0.99, 0},
		{"one", []time.Duration{7 * time.Millisecond}, 0.5, 7 * time.Millisecond},
		{"max is exact", []time.Duration{time.Millisecond, 1234567 * time.Microsecond}, 1, 1234567 * time.Microsecond},
		{"small values exact", []time.Duration{10 * time.Microsecond, 20 * time.Microsecond, 30 * time.Microsecond}, 0.5, 20 * time.Microsecond},
		{"negative is zero", []time.Duration{-time.Second}, 0.5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, s := range tt.samples {
				h.Record(s)
			}
			if got := h.Quantile(tt.q); got != tt.want {
				t.Fatalf("Quantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

// TestAgainstExact compares percentiles with the exact ones of a skewed sample.
func TestAgainstExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var exact []time.Duration
	for range 100000 {
		d := time.Duration(math.Exp(r.NormFloat64()*1.5+8)) * time.Microsecond // ~3 ms median, long tail
		h.Record(d)
		exact = append(exact, d)
	}
	slices.Sort(exact)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := exact[int(math.Ceil(q*float64(len(exact))))-1]
		got := h.Quantile(q)
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 0.01 {
			t.Errorf("p%v = %v, exact %v (%.2f%% off)", q*100, got, want, rel*100)
		}
	}
	s := h.Summary()
	if s.Count != 100000 || s.Max != float64(exact[len(exact)-1].Microseconds())/1000 || s.P50 > s.P90 || s.P90 > s.P99 || s.P99 > s.Max {
		t.Fatalf("summary = %+v", s)
	}
}

func TestMergeAndConcurrency(t *testing.T) {
	var a, b Histogram
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				a.Record(time.Duration(g*1000+i) * time.Millisecond)
			}
		})
	}
	wg.Wait()
	b.Record(time.Hour)
	b.Merge(&a)
	if b.Count() != 4001 || b.Quantile(1) != time.Hour || b.Summary().Min != 0 {
		t.Fatalf("merged: count %d, max %v, summary %+v", b.Count(), b.Quantile(1), b.Summary())
	}
	if p50 := b.Quantile(0.5); p50 < 1980*time.Millisecond || p50 > 2020*time.Millisecond {
		t.Fatalf("p50 = %v, want about 2s", p50)
	}
}

func TestTake(t *testing.T) {
	var h Histogram
	h.Record(time.Second)
	h.Record(3 * time.Second)
	got := h.Take()
	if got.Count() != 2 || got.Quantile(1) != 3*time.Second || h.Count() != 0 || h.Quantile(0.99) != 0 {
		t.Fatalf("taken %d (max %v), left %d", got.Count(), got.Quantile(1), h.Count())
	}
	h.Record(time.Millisecond)
	if h.Summary().Min != 1 || h.Summary().Max != 1 {
		t.Fatalf("after Take: %+v", h.Summary())
	}
}
