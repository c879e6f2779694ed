package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/helmdesk/helmdesk/pkg/groupcommit"
	"github.com/helmdesk/helmdesk/pkg/logkey"
)

// subscriber receives fan-out payloads of the channels it subscribed to.
type subscriber interface {
	deliver(channel string, payload []byte)
}

// hub multiplexes every socket's subscriptions over one Redis pub/sub connection.
type hub struct {
	rdb *redis.Client
	log *slog.Logger

	mu      sync.Mutex
	ps      *redis.PubSub
	subs    map[string]map[subscriber]struct{}
	waiters map[string][]chan struct{} // channel → callers waiting for the SUBSCRIBE to take effect
	active  map[string]bool            // channels Redis confirmed

	// subscribes groups the channels of sockets opening at the same time into one
	// SUBSCRIBE while another is being written.
	subscribes *groupcommit.Group[string, struct{}]
}

func newHub(rdb *redis.Client, log *slog.Logger) *hub {
	h := &hub{rdb: rdb, log: log, subs: map[string]map[subscriber]struct{}{}, waiters: map[string][]chan struct{}{}, active: map[string]bool{}}
	h.subscribes = &groupcommit.Group[string, struct{}]{Write: h.sendSubscribe, Max: 1000}
	return h
}

// sendSubscribe asks Redis for channels on the current subscription connection. With
// none (the hub is reconnecting), the next connection subscribes every channel anyway.
func (h *hub) sendSubscribe(ctx context.Context, channels []string) (map[int]struct{}, error) {
	h.mu.Lock()
	ps := h.ps
	h.mu.Unlock()
	if ps == nil {
		return nil, nil
	}
	return nil, ps.Subscribe(ctx, channels...)
}

// subscribe adds s to channel and returns once Redis delivers that channel to us, so
// that anything published afterwards reaches s.
func (h *hub) subscribe(ctx context.Context, channel string, s subscriber) error {
	h.mu.Lock()
	set, ok := h.subs[channel]
	if !ok {
		set = map[subscriber]struct{}{}
		h.subs[channel] = set
	}
	set[s] = struct{}{}
	if h.active[channel] {
		h.mu.Unlock()
		return nil
	}
	wait := make(chan struct{})
	h.waiters[channel] = append(h.waiters[channel], wait)
	first := len(h.waiters[channel]) == 1
	connected := h.ps != nil
	h.mu.Unlock()
	if first && connected {
		if _, err := h.subscribes.Do(ctx, []string{channel}); err != nil {
			return fmt.Errorf("subscribe to %s: %w", channel, err)
		}
	}
	select {
	case <-wait:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Second):
		return errors.New("subscribe: redis did not confirm within 10s")
	}
}

// unsubscribe removes s; the Redis subscription ends with the channel's last subscriber.
func (h *hub) unsubscribe(channel string, s subscriber) {
	h.mu.Lock()
	set := h.subs[channel]
	delete(set, s)
	last := len(set) == 0
	if last {
		delete(h.subs, channel)
		delete(h.active, channel)
	}
	ps := h.ps
	h.mu.Unlock()
	if last && ps != nil {
		_ = ps.Unsubscribe(context.Background(), channel)
	}
}

// Run receives and dispatches until ctx is done, reconnecting (and re-subscribing
// every channel) when the Redis connection breaks.
func (h *hub) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		if err := h.session(ctx); err != nil && ctx.Err() == nil {
			h.log.WarnContext(ctx, "fan-out subscription broke, reconnecting", slog.Any(logkey.Error, err))
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	return nil
}

func (h *hub) session(ctx context.Context) error {
	ps := h.rdb.Subscribe(ctx)
	defer ps.Close()
	h.mu.Lock()
	h.ps = ps
	var channels []string
	for ch := range h.subs {
		channels = append(channels, ch)
		h.active[ch] = false
		if len(h.waiters[ch]) == 0 {
			h.waiters[ch] = []chan struct{}{make(chan struct{})}
		}
	}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.ps = nil
		for ch := range h.active {
			h.active[ch] = false
		}
		h.mu.Unlock()
	}()
	if len(channels) > 0 {
		if err := ps.Subscribe(ctx, channels...); err != nil {
			return fmt.Errorf("resubscribe: %w", err)
		}
	} else if err := ps.Ping(ctx); err != nil {
		return fmt.Errorf("ping pubsub: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				h.confirm(m.Channel)
			}
		case *redis.Message:
			h.dispatch(m.Channel, []byte(m.Payload))
		}
	}
}

func (h *hub) confirm(channel string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[channel]; ok {
		h.active[channel] = true
	}
	for _, w := range h.waiters[channel] {
		close(w)
	}
	delete(h.waiters, channel)
}

func (h *hub) dispatch(channel string, payload []byte) {
	h.mu.Lock()
	set := h.subs[channel]
	targets := make([]subscriber, 0, len(set))
	for s := range set {
		targets = append(targets, s)
	}
	h.mu.Unlock()
	for _, s := range targets {
		s.deliver(channel, payload)
	}
}
