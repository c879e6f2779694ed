package stats

import (
	"math"
	"math/bits"
	"sync"
	"time"
)

const (
	subBits    = 7
	subBuckets = 1 << subBits // 128: relative error below 1/128
	linear     = 2 * subBuckets
)

// Histogram records durations. It is safe for concurrent use; the zero value is
// ready.
type Histogram struct {
	mu     sync.Mutex
	counts []uint64
	n      uint64
	sum    float64 // microseconds
	min    int64   // microseconds
	max    int64
}

// index maps microseconds to a bucket.
func index(us int64) int {
	if us < linear {
		return int(us)
	}
	shift := bits.Len64(uint64(us)) - (subBits + 1) // us>>shift is in [128, 255]
	return linear + (shift-1)*subBuckets + int(us>>shift) - subBuckets
}

// bounds returns a bucket's lowest value and its width, in microseconds.
func bounds(i int) (low, width int64) {
	if i < linear {
		return int64(i), 1
	}
	shift := (i-linear)/subBuckets + 1
	sub := int64((i-linear)%subBuckets + subBuckets)
	return sub << shift, 1 << shift
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	i := index(us)
	h.mu.Lock()
	if i >= len(h.counts) {
		grown := make([]uint64, i+1+subBuckets)
		copy(grown, h.counts)
		h.counts = grown
	}
	h.counts[i]++
	if h.n == 0 || us < h.min {
		h.min = us
	}
	if us > h.max {
		h.max = us
	}
	h.n++
	h.sum += float64(us)
	h.mu.Unlock()
}

// Count returns the number of recorded durations.
func (h *Histogram) Count() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// Quantile returns the duration below which a fraction q (0..1) of the samples lie,
// or 0 when there are none.
func (h *Histogram) Quantile(q float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.quantile(q)
}

func (h *Histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	if rank >= h.n {
		return time.Duration(h.max) * time.Microsecond
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			low, width := bounds(i)
			v := low + width/2 // the middle of the bucket
			v = min(max(v, h.min), h.max)
			return time.Duration(v) * time.Microsecond
		}
	}
	return time.Duration(h.max) * time.Microsecond
}

// Take returns a copy of h and empties h: for per-interval percentiles.
func (h *Histogram) Take() *Histogram {
	h.mu.Lock()
	defer h.mu.Unlock()
	cp := &Histogram{counts: h.counts, n: h.n, sum: h.sum, min: h.min, max: h.max}
	h.counts, h.n, h.sum, h.min, h.max = nil, 0, 0, 0, 0
	return cp
}

// Merge adds every sample of o to h.
func (h *Histogram) Merge(o *Histogram) {
	o.mu.Lock()
	counts := append([]uint64(nil), o.counts...)
	n, sum, lo, hi := o.n, o.sum, o.min, o.max
	o.mu.Unlock()
	if n == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(counts) > len(h.counts) {
		grown := make([]uint64, len(counts))
		copy(grown, h.counts)
		h.counts = grown
	}
	for i, c := range counts {
		h.counts[i] += c
	}
	if h.n == 0 || lo < h.min {
		h.min = lo
	}
	if hi > h.max {
		h.max = hi
	}
	h.n += n
	h.sum += sum
}

// Summary is a histogram's percentiles in milliseconds, for reports.
type Summary struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	Min   float64 `json:"min_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Microseconds())) / 1000 }

// Summary returns the histogram's percentiles.
func (h *Histogram) Summary() Summary {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return Summary{}
	}
	return Summary{
		Count: h.n,
		Mean:  math.Round(h.sum/float64(h.n)) / 1000,
		Min:   float64(h.min) / 1000,
		P50:   ms(h.quantile(0.50)),
		P90:   ms(h.quantile(0.90)),
		P99:   ms(h.quantile(0.99)),
		Max:   float64(h.max) / 1000,
	}
}
