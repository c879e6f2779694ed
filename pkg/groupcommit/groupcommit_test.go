package groupcommit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/helmdesk/helmdesk/pkg/groupcommit"
)

func TestConcurrentWritesAreMergedAndResultsMappedBack(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	g := &groupcommit.Group[string, bool]{Max: 100, Write: func(_ context.Context, items []string) (map[int]bool, error) {
		if calls.Add(1) == 1 {
			<-release // hold the first write so that the others queue behind it
		}
		dups := map[int]bool{}
		for i, it := range items {
			if it == "dup" {
				dups[i] = true
			}
		}
		return dups, nil
	}}
	ctx := context.Background()
	var wg sync.WaitGroup
	results := make([]map[int]bool, 6)
	for i := range 6 {
		wg.Go(func() {
			d, err := g.Do(ctx, []string{fmt.Sprint(i), "dup"})
			if err != nil {
				t.Error(err)
			}
			results[i] = d
		})
		if i == 0 {
			time.Sleep(20 * time.Millisecond) // the first is now writing
		}
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d write calls for 6 concurrent writes, want 2 (one held, then the rest together)", n)
	}
	for i, d := range results {
		if len(d) != 1 || !d[1] {
			t.Fatalf("caller %d results %v, want only its own index 1", i, d)
		}
	}
}

// An error fails every item of its write; a caller that gives up returns at once
// and its items are written all the same; no write exceeds Max items unless one
// caller's items alone do.
func TestErrorsCancellationAndTheBound(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	release := make(chan struct{})
	boom := errors.New("boom")
	g := &groupcommit.Group[int, error]{Max: 3, Write: func(_ context.Context, items []int) (map[int]error, error) {
		mu.Lock()
		sizes = append(sizes, len(items))
		first := len(sizes) == 1
		mu.Unlock()
		if first {
			<-release
		}
		for _, it := range items {
			if it < 0 {
				return nil, boom
			}
		}
		return nil, nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := g.Do(ctx, []int{1})
		gaveUp <- err
	}()
	time.Sleep(20 * time.Millisecond) // the first write is held
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("a caller that gave up got %v, want context.Canceled", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, items := range [][]int{{2, 3}, {-1, 4}, {5, 6, 7, 8}} {
		wg.Go(func() { _, errs[i] = g.Do(context.Background(), items) })
		time.Sleep(10 * time.Millisecond) // queued in this order
	}
	close(release)
	wg.Wait()
	if errs[0] != nil || !errors.Is(errs[1], boom) || errs[2] != nil {
		t.Fatalf("errors %v, want only the second caller's write to fail", errs)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(sizes) != "[1 2 2 4]" {
		t.Fatalf("write sizes %v, want [1 2 2 4]: the held one, then each within Max 3 but the 4 alone", sizes)
	}
}
