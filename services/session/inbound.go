package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/helmdesk/helmdesk/pkg/events"
	"github.com/helmdesk/helmdesk/pkg/fault"
	"github.com/helmdesk/helmdesk/pkg/frames"
	"github.com/helmdesk/helmdesk/pkg/logkey"
	eventsv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/events/v1"
)

// pending is one inbound message on its way to storage.
type pending struct {
	in         *eventsv1.InboundMessage
	acceptedAt time.Time
	msg        Message
	dup        bool // the client id was seen before: msg.Seq is the earlier seq
	stored     bool // a dup whose seq is known to be in MongoDB already
}

// HandleBatch is the partition owner's write path: dedup, sequence, fan out, persist,
// publish. It is idempotent, so a batch replayed after a crash changes nothing twice.
//
// A session whose new seqs continue the ones this process last stored (or fanned out
// as final) for it, while it still owns the partition, is fanned out before the insert
// rather than after it: its seqs are final (a replay gives the same messages the same
// seqs, and the insert cannot refuse them), and the message is already durable in
// Kafka. Any other session (the first batch after a start or a rebalance, state
// rebuilt or lost in Redis) is fanned out only once the insert has shown its seqs to
// be right.
func (s *Service) HandleBatch(ctx context.Context, b events.Batch) error {
	// The consumer hands a batch over whole only when none of the partition's is
	// running: the ones after it start a new chain.
	s.chainMu.Lock()
	delete(s.chains, b.Partition)
	s.chainMu.Unlock()
	w, err := s.startWrite(ctx, b)
	if err != nil || w == nil {
		return err
	}
	return w.finish(ctx, nil, nil)
}

// StartBatch is HandleBatch with its insert left running: the consumer starts the
// partition's next batch meanwhile, so a slow insert holds up neither the fan-out of
// the sessions that can go before it nor the batches behind it. The batches of a
// partition move their watermarks in the order they started; a batch whose
// predecessor failed fails too, without moving a stored watermark past messages that
// are not stored.
func (s *Service) StartBatch(ctx context.Context, b events.Batch) (<-chan error, error) {
	w, err := s.startWrite(ctx, b)
	if err != nil {
		// The consumer waits for the batches before this one and handles it again.
		return nil, err
	}
	done := make(chan error, 1)
	if w == nil {
		done <- nil
		return done, nil
	}
	mine := &link{ordered: make(chan struct{})}
	s.chainMu.Lock()
	if s.chains == nil {
		s.chains = map[int]*link{}
	}
	prev := s.chains[b.Partition]
	s.chains[b.Partition] = mine
	s.chainMu.Unlock()
	go func() { done <- w.finish(ctx, prev, mine) }()
	return done, nil
}

// link is a partition's batch in the order the Redis steps of its batches run.
type link struct {
	ordered chan struct{} // closed once the batch's Redis step is done or failed
	err     error         // set before ordered is closed
}

// write is an inbound batch sequenced, and fanned out where it may be before it is
// stored.
type write struct {
	s         *Service
	order     []string
	bySession map[string][]*pending
	states    map[string]seqResult
	late      []string
	size      int
	fanned    time.Time
}

// startWrite decodes and sequences the batch and fans out the sessions that may go
// before the insert. It returns nil when the batch holds no message to write.
func (s *Service) startWrite(ctx context.Context, b events.Batch) (*write, error) {
	start := time.Now()
	order, bySession := s.decodeInbound(ctx, b)
	if len(order) == 0 {
		return nil, nil
	}
	oldest := start
	for _, ps := range bySession {
		if ps[0].acceptedAt.Before(oldest) {
			oldest = ps[0].acceptedAt
		}
	}
	s.metrics.stages.WithLabelValues("wait").Observe(start.Sub(oldest).Seconds())
	states, err := s.sequenceAll(ctx, order, bySession)
	if err != nil {
		return nil, err
	}
	sequenced := time.Now()
	s.metrics.stages.WithLabelValues("sequence").Observe(sequenced.Sub(start).Seconds())
	early, late := s.storedSeqs.split(order, bySession, events.StillOwner(ctx), s.cfg.RecentSize)
	if len(early) > 0 {
		if err := s.fanOut(ctx, early, bySession, states); err != nil {
			s.storedSeqs.forget(order)
			return nil, err
		}
		s.storedSeqs.fannedOut(early, bySession)
		s.metrics.fanouts.WithLabelValues("before_store").Add(float64(len(early)))
	}
	fanned := time.Now()
	s.metrics.stages.WithLabelValues("fanout").Observe(fanned.Sub(sequenced).Seconds())
	return &write{s: s, order: order, bySession: bySession, states: states, late: late, size: len(b.Messages), fanned: fanned}, nil
}

// finish stores the batch and, once the Redis step of the partition's batch before it
// (prev, if any) is done without error, delivers it: fans out the rest, moves the
// watermarks, publishes message_created. mine, if not nil, is told when this batch's
// Redis step is done.
func (w *write) finish(ctx context.Context, prev, mine *link) error {
	s := w.s
	err := s.persist(ctx, w.bySession)
	persisted := time.Now()
	s.metrics.stages.WithLabelValues("persist").Observe(persisted.Sub(w.fanned).Seconds())
	if prev != nil {
		<-prev.ordered
		if err == nil && prev.err != nil {
			err = fmt.Errorf("an earlier batch of the partition failed: %w", prev.err)
		}
	}
	delivering := time.Now()
	var records []events.Record
	var claims []firstResponse
	if err == nil {
		records, claims, err = s.deliverInRedis(ctx, w.order, w.late, w.bySession, w.states)
	}
	if mine != nil {
		mine.err = err
		close(mine.ordered)
	}
	if err == nil {
		err = s.deliverElsewhere(ctx, records, claims)
		s.metrics.stages.WithLabelValues("deliver").Observe(time.Since(delivering).Seconds())
	}
	if err != nil {
		s.storedSeqs.forget(w.order)
		return err
	}
	if len(w.late) > 0 {
		s.metrics.fanouts.WithLabelValues("after_store").Add(float64(len(w.late)))
	}
	s.storedSeqs.record(w.bySession)
	s.metrics.batchSize.Observe(float64(w.size))
	return nil
}

func (s *Service) decodeInbound(ctx context.Context, b events.Batch) ([]string, map[string][]*pending) {
	var order []string
	bySession := map[string][]*pending{}
	for _, km := range b.Messages {
		env, err := events.Unmarshal(km.Value)
		if err == nil && env.GetType() != events.TypeInboundMessage {
			continue
		}
		in := &eventsv1.InboundMessage{}
		if err == nil {
			err = events.Payload(env, in)
		}
		if err == nil && (in.GetSessionId() == "" || in.GetClientMsgId() == "" || in.GetSender() == nil) {
			err = errors.New("inbound message lacks session, client id or sender")
		}
		if err != nil {
			// A record no gateway could have written: keep the partition moving.
			s.log.ErrorContext(ctx, "skip malformed inbound record", slog.Int64(logkey.Offset, km.Offset), slog.Any(logkey.Error, err))
			continue
		}
		sid := in.GetSessionId()
		if _, ok := bySession[sid]; !ok {
			order = append(order, sid)
		}
		bySession[sid] = append(bySession[sid], &pending{in: in, acceptedAt: in.GetReceivedAt().AsTime()})
	}
	return order, bySession
}

// sequenceAll assigns seqs to every session of the batch and returns what the state
// said of each (agent, first response). Sessions the batch names but that do not exist
// are dropped from bySession.
func (s *Service) sequenceAll(ctx context.Context, order []string, bySession map[string][]*pending) (map[string]seqResult, error) {
	ids := make(map[string][]string, len(order))
	for _, sid := range order {
		for _, p := range bySession[sid] {
			ids[sid] = append(ids[sid], p.in.GetClientMsgId())
		}
	}
	results, cold, err := s.state.assignAll(ctx, order, ids)
	if err != nil {
		return nil, err
	}
	for _, sid := range cold {
		if err := s.loadState(ctx, sid); err != nil {
			if fault.Is(err, fault.NotFound) {
				s.log.WarnContext(ctx, "drop messages for unknown session", slog.String(logkey.SessionID, sid), slog.Int(logkey.Count, len(bySession[sid])))
				delete(bySession, sid)
				continue
			}
			return nil, err
		}
		r, stillCold, err := s.state.assignAll(ctx, []string{sid}, map[string][]string{sid: ids[sid]})
		if err != nil {
			return nil, err
		}
		if len(stillCold) > 0 {
			return nil, fmt.Errorf("state of session %s vanished while loading it", sid)
		}
		results[sid] = r[sid]
	}
	for sid, res := range results {
		for i, p := range bySession[sid] {
			seq := res.seqs[i]
			if seq < 0 {
				seq, p.dup = -seq, true
				p.stored = seq <= res.stored
			}
			p.msg = Message{
				ID:          messageID(sid, seq),
				SessionID:   sid,
				Seq:         seq,
				ClientMsgID: p.in.GetClientMsgId(),
				Sender:      Sender{Type: p.in.GetSender().GetType(), ID: p.in.GetSender().GetId()},
				Text:        p.in.GetText(),
				Event:       p.in.GetEvent(),
				CreatedAt:   p.acceptedAt.UTC().Truncate(time.Millisecond),
			}
		}
	}
	return results, nil
}

// loadState rebuilds a session's Redis state from MongoDB.
func (s *Service) loadState(ctx context.Context, sid string) error {
	sess, err := s.repo.getSession(ctx, sid)
	if err != nil {
		return err
	}
	recent, err := s.repo.lastMessages(ctx, sid, 1000)
	if err != nil {
		return err
	}
	return s.state.install(ctx, sess, recent)
}

// persist writes the batch in one insert. A duplicate key on a message that the
// state called new means Redis lost writes (for example restored from an older
// snapshot): undo what this attempt inserted for that session, forget its state and
// fail, so the retry re-sequences from MongoDB.
func (s *Service) persist(ctx context.Context, bySession map[string][]*pending) error {
	// Repeats are inserted again (a crash can come between sequencing a message and
	// storing it), except those the stored watermark covers: a resend of a message
	// long stored costs nothing here, and keeps its duplicate out of the batch (FerretDB
	// inserts a batch that hits a duplicate key one document per transaction). For the
	// same reason a message repeated within the batch goes in once.
	var all []*pending
	seen := map[string]bool{}
	for _, ps := range bySession {
		for _, p := range ps {
			if !p.stored && !seen[p.msg.ID] {
				seen[p.msg.ID] = true
				all = append(all, p)
			}
		}
	}
	if len(all) == 0 {
		return nil
	}
	docs := make([]Message, len(all))
	for i, p := range all {
		docs[i] = p.msg
	}
	dups, err := s.inserts.Do(ctx, docs)
	if err != nil {
		return err
	}
	stale := map[string]bool{}
	for i := range dups {
		if !all[i].dup {
			stale[all[i].msg.SessionID] = true
		}
	}
	if len(stale) == 0 {
		return nil
	}
	for sid := range stale {
		var undo []string
		for i, p := range all {
			if p.msg.SessionID == sid && !p.dup && !dups[i] {
				undo = append(undo, p.msg.ID)
			}
		}
		if len(undo) > 0 {
			if _, err := s.repo.messages.DeleteMany(ctx, bson.M{"_id": bson.M{"$in": undo}}); err != nil {
				return fmt.Errorf("undo stale inserts of session %s: %w", sid, err)
			}
		}
		if err := s.state.drop(ctx, sid); err != nil {
			return err
		}
		s.log.WarnContext(ctx, "session state was stale, re-sequencing from storage", slog.String(logkey.SessionID, sid))
	}
	return fmt.Errorf("stale sequence state for %d sessions", len(stale))
}

// fanOut sends the sessions' messages to gateways and appends them to the sessions'
// recent buffers, in one Redis round trip.
func (s *Service) fanOut(ctx context.Context, sids []string, bySession map[string][]*pending, states map[string]seqResult) error {
	pipe := s.deps.Redis.Pipeline()
	if err := s.addFanOut(ctx, pipe, sids, bySession, states); err != nil {
		return err
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("fan out batch: %w", err)
	}
	return nil
}

// addFanOut queues the fan-out of the sessions' messages on pipe. Each message goes
// into the recent buffer before it is published: a socket subscribes before it reads
// the buffer, so a message published before the socket subscribed is in the buffer it
// reads, and one published after reaches it live.
func (s *Service) addFanOut(ctx context.Context, pipe redis.Pipeliner, sids []string, bySession map[string][]*pending, states map[string]seqResult) error {
	for _, sid := range sids {
		ps, agent := bySession[sid], states[sid].agent
		for _, p := range ps {
			payload, err := frames.Encode(p.acceptedAt, p.msg.Frame())
			if err != nil {
				return fmt.Errorf("encode message frame: %w", err)
			}
			// Repeats go into the recent buffer too (readers drop the copies): after a
			// crash between persisting a batch and its fan-out, the replayed batch is
			// all repeats, and this is what puts its messages into the buffer.
			pipe.RPush(ctx, recentKey(sid), payload[8:])
			pipe.Publish(ctx, frames.SessionChannel(sid), payload)
			if agent != "" {
				pipe.Publish(ctx, frames.AgentChannel(agent), payload)
			}
		}
		if len(ps) > 0 {
			pipe.LTrim(ctx, recentKey(sid), int64(-s.cfg.RecentSize), -1)
			pipe.Expire(ctx, recentKey(sid), s.cfg.StateTTL)
		}
	}
	return nil
}

// firstResponse is a session's first agent message, claimed in Redis.
type firstResponse struct {
	sid   string
	at    time.Time
	claim *redis.IntCmd // won when its value is 1
}

// deliverInRedis is the first step of delivering a stored batch, one Redis round trip
// that the partition's batches take in order: it fans out the sessions in late (those
// not fanned out before the insert), moves every session's stored watermark and claims
// first responses. It returns the batch's message_created records and the claims.
func (s *Service) deliverInRedis(ctx context.Context, order, late []string, bySession map[string][]*pending, states map[string]seqResult) ([]events.Record, []firstResponse, error) {
	pipe := s.deps.Redis.Pipeline()
	var records []events.Record
	var claims []firstResponse
	touch(ctx, pipe, time.Now(), order...)
	if err := s.addFanOut(ctx, pipe, late, bySession, states); err != nil {
		return nil, nil, err
	}
	for _, sid := range order {
		ps, ok := bySession[sid]
		if !ok {
			continue
		}
		responded := states[sid].responded
		for _, p := range ps {
			if p.dup {
				s.metrics.duplicates.Inc()
				continue
			}
			s.metrics.persisted.WithLabelValues(p.msg.Sender.Type).Inc()
			env, err := events.NewEnvelope(events.TypeMessageCreated, Source, sid, &eventsv1.MessageCreated{Message: &eventsv1.Message{
				SessionId: sid, Seq: p.msg.Seq, ClientMsgId: p.msg.ClientMsgID,
				Sender: &eventsv1.Sender{Type: p.msg.Sender.Type, Id: p.msg.Sender.ID}, Text: p.msg.Text, CreatedAt: timestamppb.New(p.msg.CreatedAt), Event: p.msg.Event,
			}})
			if err != nil {
				return nil, nil, err
			}
			env.Id = events.StableID(fmt.Sprintf("%s:%s:%d", events.TypeMessageCreated, sid, p.msg.Seq))
			records = append(records, events.Record{Topic: events.TopicEvents, Envelope: env})
			// Only a session whose state showed no first response yet needs the claim;
			// the claim still decides, once, between racing writers.
			if p.msg.Sender.Type == frames.SenderAgent && !responded {
				responded = true
				claims = append(claims, firstResponse{sid: sid, at: p.msg.CreatedAt, claim: s.state.addClaimFirstResponse(ctx, pipe, sid)})
			}
		}
		// Fresh messages carry the session's newest seqs, and persist stored them.
		if last := ps[len(ps)-1]; !last.dup {
			pipe.Set(ctx, storedKey(sid), last.msg.Seq, s.cfg.StateTTL)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, nil, fmt.Errorf("fan out batch: %w", err)
	}
	return records, claims, nil
}

// deliverElsewhere is the rest of delivering a stored batch, which needs no order
// between batches: it publishes message_created and, at the same time, records the
// first responses claimed.
func (s *Service) deliverElsewhere(ctx context.Context, records []events.Record, claims []firstResponse) error {
	published := make(chan error, 1)
	go func() { published <- s.deps.Producer.Publish(ctx, records...) }()
	var markErr error
	for _, c := range claims {
		if c.claim.Val() == 1 {
			if markErr = s.repo.markFirstResponse(ctx, c.sid, c.at); markErr != nil {
				break
			}
		}
	}
	if pubErr := <-published; pubErr != nil {
		return fmt.Errorf("publish message_created: %w", pubErr)
	}
	return markErr
}

// handleRouting applies assignments the routing service made outside a request.
func (s *Service) handleRouting(ctx context.Context, b events.Batch) error {
	for _, km := range b.Messages {
		env, err := events.Unmarshal(km.Value)
		if err != nil || env.GetType() != events.TypeSessionRouted {
			if err != nil {
				s.log.ErrorContext(ctx, "skip malformed routing record", slog.Int64(logkey.Offset, km.Offset), slog.Any(logkey.Error, err))
			}
			continue
		}
		ev := &eventsv1.SessionRouted{}
		if err := events.Payload(env, ev); err != nil {
			s.log.ErrorContext(ctx, "skip malformed routing record", slog.Int64(logkey.Offset, km.Offset), slog.Any(logkey.Error, err))
			continue
		}
		at := ev.GetRoutedAt().AsTime()
		if _, err := s.applyAssignment(events.ContextFrom(ctx, km), nil, ev.GetSessionId(), ev.GetAgentId(), ev.GetGroup(), at); err != nil {
			if fault.Is(err, fault.NotFound) {
				continue
			}
			return err
		}
	}
	return nil
}
