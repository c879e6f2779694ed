package session

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestGroupInserterMergesConcurrentInsertsAndMapsDuplicates(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	g := &groupInserter{max: 100, insert: func(_ context.Context, msgs []Message) (map[int]bool, error) {
		if calls.Add(1) == 1 {
			<-release // hold the first insert so that the others queue behind it
		}
		dups := map[int]bool{}
		for i, m := range msgs {
			if m.ClientMsgID == "dup" {
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
			msgs := []Message{{ClientMsgID: fmt.Sprint(i)}, {ClientMsgID: "dup"}}
			d, err := g.Insert(ctx, msgs)
			if err != nil {
				t.Error(err)
			}
			results[i] = d
		})
		if i == 0 {
			time.Sleep(20 * time.Millisecond) // the first is now inserting
		}
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d insert calls for 6 concurrent inserts, want 2 (one held, then the rest together)", n)
	}
	for i, d := range results {
		if len(d) != 1 || !d[1] {
			t.Fatalf("caller %d duplicates %v, want only its own index 1", i, d)
		}
	}
}
