package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/helmdesk/helmdesk/pkg/testdeps"
)

type inbox chan string

func (b inbox) deliver(_ string, payload []byte) { b <- string(payload) }

func startHub(t *testing.T) (*hub, *redis.Client) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testdeps.Redis(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	h := newHub(rdb, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		h.mu.Lock()
		up := h.ps != nil
		h.mu.Unlock()
		if up {
			return h, rdb
		}
		if time.Now().After(deadline) {
			t.Fatal("the hub never connected")
		}
	}
}

// Sockets that open together subscribe together; every one of them gets what is
// published to its channel once subscribe returns, and nothing else.
func TestSubscriptionsOfABurst(t *testing.T) {
	h, rdb := startHub(t)
	ctx := context.Background()
	const n = 200
	boxes := make([]inbox, n)
	var wg sync.WaitGroup
	for i := range n {
		boxes[i] = make(inbox, 4)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.subscribe(ctx, fmt.Sprintf("burst:%d", i), boxes[i]); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := range n {
		if err := rdb.Publish(ctx, fmt.Sprintf("burst:%d", i), fmt.Sprint(i)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i, box := range boxes {
		select {
		case got := <-box:
			if got != fmt.Sprint(i) {
				t.Fatalf("channel %d delivered %q", i, got)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("channel %d delivered nothing", i)
		}
	}
	for i, box := range boxes {
		select {
		case got := <-box:
			t.Fatalf("channel %d delivered %q as well", i, got)
		default:
		}
	}

	// One SUBSCRIBE names several channels; each is confirmed.
	for _, ch := range []string{"many:a", "many:b", "many:c"} {
		h.mu.Lock()
		h.subs[ch] = map[subscriber]struct{}{}
		h.waiters[ch] = []chan struct{}{make(chan struct{})}
		waiter := h.waiters[ch][0]
		h.mu.Unlock()
		defer func() {
			select {
			case <-waiter:
			case <-time.After(5 * time.Second):
				t.Errorf("%s was never confirmed", ch)
			}
		}()
	}
	if _, err := h.sendSubscribe(ctx, []string{"many:a", "many:b", "many:c"}); err != nil {
		t.Fatal(err)
	}
}
