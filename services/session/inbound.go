package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

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

// HandleBatch is the partition owner's write path: dedup, sequence, persist, fan out,
// publish. It is idempotent, so a batch replayed after a crash changes nothing twice.
func (s *Service) HandleBatch(ctx context.Context, b events.Batch) error {
	start := time.Now()
	order, bySession := s.decodeInbound(ctx, b)
	if len(order) == 0 {
		return nil
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
		return err
	}
	sequenced := time.Now()
	s.metrics.stages.WithLabelValues("sequence").Observe(sequenced.Sub(start).Seconds())
	if err := s.persist(ctx, bySession); err != nil {
		return err
	}
	persisted := time.Now()
	s.metrics.stages.WithLabelValues("persist").Observe(persisted.Sub(sequenced).Seconds())
	if err := s.deliver(ctx, order, bySession, states); err != nil {
		return err
	}
	s.metrics.stages.WithLabelValues("deliver").Observe(time.Since(persisted).Seconds())
	s.metrics.batchSize.Observe(float64(len(b.Messages)))
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

// deliver fans the batch out to gateways, keeps the recent buffer, records first
// responses and publishes message_created.
func (s *Service) deliver(ctx context.Context, order []string, bySession map[string][]*pending, states map[string]seqResult) error {
	pipe := s.deps.Redis.Pipeline()
	var records []events.Record
	touch(ctx, pipe, time.Now(), order...)
	for _, sid := range order {
		ps, ok := bySession[sid]
		if !ok {
			continue
		}
		agent, responded := states[sid].agent, states[sid].responded
		pushed := false
		for _, p := range ps {
			frame := p.msg.Frame()
			payload, err := frames.Encode(p.acceptedAt, frame)
			if err != nil {
				return fmt.Errorf("encode message frame: %w", err)
			}
			pipe.Publish(ctx, frames.SessionChannel(sid), payload)
			if agent != "" {
				pipe.Publish(ctx, frames.AgentChannel(agent), payload)
			}
			// Repeats go into the recent buffer too (readers drop the copies): after a
			// crash between persisting a batch and this step, the replayed batch is all
			// repeats, and this is what puts its messages into the buffer.
			pipe.RPush(ctx, recentKey(sid), payload[8:])
			pushed = true
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
				return err
			}
			env.Id = events.StableID(fmt.Sprintf("%s:%s:%d", events.TypeMessageCreated, sid, p.msg.Seq))
			records = append(records, events.Record{Topic: events.TopicEvents, Envelope: env})
			// Only a session whose state showed no first response yet needs the claim
			// (a Redis round trip); the claim still decides, once, between racing writers.
			if p.msg.Sender.Type == frames.SenderAgent && !responded {
				responded = true
				if first, err := s.state.claimFirstResponse(ctx, sid); err == nil && first {
					if err := s.repo.markFirstResponse(ctx, sid, p.msg.CreatedAt); err != nil {
						return err
					}
				}
			}
		}
		if pushed {
			pipe.LTrim(ctx, recentKey(sid), int64(-s.cfg.RecentSize), -1)
			pipe.Expire(ctx, recentKey(sid), s.cfg.StateTTL)
		}
		// Fresh messages carry the session's newest seqs, and persist stored them.
		if last := ps[len(ps)-1]; !last.dup {
			pipe.Set(ctx, storedKey(sid), last.msg.Seq, s.cfg.StateTTL)
		}
	}
	// The fan-out and the events are independent: do both at once.
	published := make(chan error, 1)
	go func() { published <- s.deps.Producer.Publish(ctx, records...) }()
	_, fanErr := pipe.Exec(ctx)
	pubErr := <-published
	if fanErr != nil {
		return fmt.Errorf("fan out batch: %w", fanErr)
	}
	if pubErr != nil {
		return fmt.Errorf("publish message_created: %w", pubErr)
	}
	return nil
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
