// Package groupcommit merges concurrent writes into grouped ones (group commit):
// while one write runs, the writes that arrive queue up and then go out together.
// Stores and brokers pay per call far more than per item, so under load this
// multiplies throughput without adding latency when idle.
package groupcommit

import (
	"context"
	"sync"
)

// Group groups the items of concurrent Do calls into calls of Write, one at a time.
type Group[T, R any] struct {
	// Write writes items in one call. It returns results for some of them by index
	// (per-item failures, duplicates, ...), or an error that fails them all.
	Write func(ctx context.Context, items []T) (map[int]R, error)
	// Max bounds the items of one write; a single larger Do is written alone.
	Max int

	mu      sync.Mutex
	queue   []*request[T, R]
	running bool
}

type request[T, R any] struct {
	ctx     context.Context
	items   []T
	results map[int]R
	err     error
	done    chan struct{}
}

// Do queues items for the next grouped write and waits for it. It returns the
// results of its own items, indexed as in items (nil when there are none).
//
// The write runs on a goroutine of its own with the values of the first queued
// caller's ctx but not its cancellation: a caller that gives up gets ctx.Err() at
// once, and its items are still written with the others.
func (g *Group[T, R]) Do(ctx context.Context, items []T) (map[int]R, error) {
	req := &request[T, R]{ctx: ctx, items: items, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, req)
	if !g.running {
		g.running = true
		go g.flush()
	}
	g.mu.Unlock()
	select {
	case <-req.done:
		return req.results, req.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// flush writes what is queued, one write at a time, until the queue is empty.
func (g *Group[T, R]) flush() {
	for {
		g.mu.Lock()
		if len(g.queue) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		var batch []*request[T, R]
		n := 0
		for len(g.queue) > 0 && (n == 0 || n+len(g.queue[0].items) <= g.Max) {
			n += len(g.queue[0].items)
			batch = append(batch, g.queue[0])
			g.queue[0] = nil
			g.queue = g.queue[1:]
		}
		g.mu.Unlock()

		all := make([]T, 0, n)
		for _, r := range batch {
			all = append(all, r.items...)
		}
		results, err := g.Write(context.WithoutCancel(batch[0].ctx), all)
		off := 0
		for _, r := range batch {
			r.err = err
			for i := range r.items {
				if v, ok := results[off+i]; ok {
					if r.results == nil {
						r.results = map[int]R{}
					}
					r.results[i] = v
				}
			}
			off += len(r.items)
			close(r.done)
		}
	}
}
