package session

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/helmdesk/helmdesk/pkg/events"
	"github.com/helmdesk/helmdesk/pkg/fault"
	"github.com/helmdesk/helmdesk/pkg/frames"
	"github.com/helmdesk/helmdesk/pkg/logkey"
	eventsv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/events/v1"
	routingv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/routing/v1"
)

// activityKey is a sorted set of open sessions scored by their last activity (Unix
// seconds); the idle sweeper closes those that went quiet.
const activityKey = "hd:sessions:activity"

var errClosed = fault.New(fault.Conflict, "session_closed", "the session is already closed")

// systemMessage appends a system message to the session through the inbound topic, so
// the partition owner gives it the next seq in order with everything else. key makes
// it idempotent: the same key is one message however often it is sent.
func (s *Service) systemMessage(ctx context.Context, sid, key, event, text string) error {
	env, err := events.NewEnvelope(events.TypeInboundMessage, Source, sid, &eventsv1.InboundMessage{
		SessionId: sid, ClientMsgId: "system:" + key, Sender: &eventsv1.Sender{Type: frames.SenderSystem},
		Text: text, Event: event, ReceivedAt: timestamppb.Now(), GatewayId: s.deps.Runtime.Instance,
	})
	if err != nil {
		return err
	}
	if err := s.deps.Producer.Publish(ctx, events.Record{Topic: events.TopicInbound, Envelope: env}); err != nil {
		return fmt.Errorf("append system message to %s: %w", sid, err)
	}
	return nil
}

// fanoutTo publishes one frame to several channels.
func (s *Service) fanoutTo(ctx context.Context, frame any, channels ...string) error {
	payload, err := frames.Encode(time.Time{}, frame)
	if err != nil {
		return fmt.Errorf("encode frame: %w", err)
	}
	pipe := s.deps.Redis.Pipeline()
	for _, ch := range channels {
		pipe.Publish(ctx, ch, payload)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("fan out frame: %w", err)
	}
	return nil
}

func actorLabel(a Actor) string {
	if a.Type == "" {
		return "system"
	}
	return a.Type
}

// Close ends a session: the agent's capacity is released (or the session leaves its
// queue), the session is marked closed, a system message and chat_closed follow, and
// the customer is asked for a rating.
func (s *Service) Close(ctx context.Context, sid string, by Actor, reason string) (Session, error) {
	if utf8.RuneCountInString(reason) > 500 {
		return Session{}, fault.Invalid("reason", "invalid_reason", "reason is longer than 500 characters")
	}
	sess, err := s.repo.getSession(ctx, sid)
	if err != nil {
		return Session{}, err
	}
	if sess.Status == StatusClosed {
		return Session{}, errClosed
	}
	// One closer wins, whichever replica it reaches.
	if ok, err := s.state.claim(ctx, sid, "closed"); err != nil {
		return Session{}, err
	} else if !ok {
		return Session{}, errClosed
	}
	// Capacity first: Release frees whichever agent holds the session or takes it out
	// of its queue, and is idempotent, so a retry after a failure below cannot leak
	// an agent's slot.
	if _, err := s.deps.Routing.Release(ctx, &routingv1.ReleaseRequest{SessionId: sid}); err != nil {
		s.state.unclaim(context.WithoutCancel(ctx), sid, "closed")
		return Session{}, fmt.Errorf("release session %s in routing: %w", sid, err)
	}
	now := time.Now().UTC()
	if err := s.repo.close(ctx, sid, actorLabel(by), reason, now); err != nil {
		s.state.unclaim(context.WithoutCancel(ctx), sid, "closed")
		return Session{}, err
	}
	sess.Status, sess.ClosedAt, sess.ClosedBy, sess.CloseReason = StatusClosed, &now, actorLabel(by), reason
	if err := s.state.setAgent(ctx, sid, sess.AgentID, sess.Group, StatusClosed); err != nil {
		return Session{}, err
	}
	s.deps.Redis.ZRem(ctx, activityKey, sid)
	s.deps.Redis.Decr(ctx, activeSessionsKey)
	text := "The conversation was closed."
	switch by.Type {
	case frames.SenderCustomer:
		text = "The customer ended the conversation."
	case frames.SenderAgent:
		text = "The agent closed the conversation."
	case "", frames.SenderSystem:
		if reason == "idle" {
			text = "The conversation was closed after a period of inactivity."
		}
	}
	if err := s.systemMessage(ctx, sid, "closed", "closed", text); err != nil {
		return Session{}, err
	}
	ev := &eventsv1.ChatClosed{SessionId: sid, AgentId: sess.AgentID, ClosedBy: actorLabel(by), Reason: reason, CreatedAt: timestamppb.New(sess.CreatedAt), ClosedAt: timestamppb.New(now), Channel: sess.Channel, Group: sess.Group}
	if sess.AssignedAt != nil {
		ev.AssignedAt = timestamppb.New(*sess.AssignedAt)
	}
	if sess.FirstResponseAt != nil {
		ev.FirstResponseAt = timestamppb.New(*sess.FirstResponseAt)
	}
	if err := s.publishEvent(ctx, events.TypeChatClosed, sid, ev); err != nil {
		return Session{}, err
	}
	channels := []string{frames.SessionChannel(sid)}
	if sess.AgentID != "" {
		channels = append(channels, frames.AgentChannel(sess.AgentID))
	}
	frame := frames.Session{Type: frames.TypeSession, SessionID: sid, Status: frames.StatusClosed, AgentID: sess.AgentID, Group: sess.Group, CSATRequested: true}
	if err := s.fanoutTo(ctx, frame, channels...); err != nil {
		return Session{}, err
	}
	return sess, nil
}

func (s *Service) publishEvent(ctx context.Context, typ, sid string, payload proto.Message) error {
	env, err := events.NewEnvelope(typ, Source, sid, payload)
	if err != nil {
		return err
	}
	if err := s.deps.Producer.Publish(ctx, events.Record{Topic: events.TopicEvents, Envelope: env}); err != nil {
		return fmt.Errorf("publish %s: %w", typ, err)
	}
	return nil
}

// Transfer hands a session to another agent (toAgent) or group (toGroup). The
// routing service decides whether the target can take it now or it waits in the
// group's queue.
func (s *Service) Transfer(ctx context.Context, sid string, by Actor, toAgent, toGroup, note string) (Session, error) {
	if (toAgent == "") == (toGroup == "") {
		return Session{}, fault.Invalid("agent_id", "invalid_transfer_target", "give exactly one of agent_id and group")
	}
	if utf8.RuneCountInString(note) > 500 {
		return Session{}, fault.Invalid("note", "invalid_note", "note is longer than 500 characters")
	}
	sess, err := s.repo.getSession(ctx, sid)
	if err != nil {
		return Session{}, err
	}
	if sess.Status == StatusClosed {
		return Session{}, errClosed
	}
	if toAgent != "" && toAgent == sess.AgentID {
		return Session{}, fault.New(fault.Conflict, "already_assigned", "the session is already assigned to that agent")
	}
	res, err := s.deps.Routing.Transfer(ctx, &routingv1.TransferRequest{SessionId: sid, ToAgentId: toAgent, ToGroup: toGroup})
	if err != nil {
		return Session{}, err
	}
	now := time.Now().UTC()
	from := sess.AgentID
	if res.GetAssigned() {
		if err := s.repo.setAssigned(ctx, sid, res.GetAgentId(), res.GetGroup(), now); err != nil {
			return Session{}, err
		}
		sess.Status, sess.AgentID, sess.Group, sess.AssignedAt = StatusAssigned, res.GetAgentId(), res.GetGroup(), &now
	} else {
		if err := s.repo.setQueued(ctx, sid, res.GetGroup()); err != nil {
			return Session{}, err
		}
		sess.Status, sess.AgentID, sess.Group, sess.QueuePosition = StatusQueued, "", res.GetGroup(), res.GetQueuePosition()
	}
	if err := s.state.setAgent(ctx, sid, sess.AgentID, sess.Group, sess.Status); err != nil {
		return Session{}, err
	}
	text := "The conversation was transferred"
	if sess.Status == StatusQueued {
		text += " to the " + sess.Group + " queue."
	} else {
		text += " to another agent."
	}
	if note != "" {
		text += " Note: " + note
	}
	if err := s.systemMessage(ctx, sid, "transfer:"+strconv.FormatInt(now.UnixNano(), 36), "transferred", text); err != nil {
		return Session{}, err
	}
	if err := s.publishEvent(ctx, events.TypeChatTransferred, sid, &eventsv1.ChatTransferred{
		SessionId: sid, FromAgentId: from, ToAgentId: sess.AgentID, ToGroup: sess.Group, Queued: sess.Status == StatusQueued,
		ByType: actorLabel(by), ById: by.ID, TransferredAt: timestamppb.New(now),
	}); err != nil {
		return Session{}, err
	}
	if sess.Status == StatusAssigned {
		if err := s.publishEvent(ctx, events.TypeChatAssigned, sid, &eventsv1.ChatAssigned{SessionId: sid, AgentId: sess.AgentID, Group: sess.Group, AssignedAt: timestamppb.New(now)}); err != nil {
			return Session{}, err
		}
		if err := s.repo.setCustomerLastAgent(ctx, sess.CustomerID, sess.AgentID); err != nil {
			s.log.WarnContext(ctx, "record last agent", slog.Any(logkey.Error, err))
		}
	}
	channels := []string{frames.SessionChannel(sid)}
	if from != "" {
		channels = append(channels, frames.AgentChannel(from))
	}
	if sess.AgentID != "" && sess.AgentID != from {
		channels = append(channels, frames.AgentChannel(sess.AgentID))
	}
	frame := frames.Session{Type: frames.TypeSession, SessionID: sid, Status: string(sess.Status), AgentID: sess.AgentID, Group: sess.Group, QueuePosition: sess.QueuePosition}
	if err := s.fanoutTo(ctx, frame, channels...); err != nil {
		return Session{}, err
	}
	return sess, nil
}

// SubmitCSAT records the customer's rating of a closed session, once.
func (s *Service) SubmitCSAT(ctx context.Context, sid string, score int, comment string) (CSAT, error) {
	if score < 1 || score > 5 {
		return CSAT{}, fault.Invalid("score", "invalid_score", "score must be a whole number from 1 to 5")
	}
	comment = strings.TrimSpace(comment)
	if utf8.RuneCountInString(comment) > 2000 || !utf8.ValidString(comment) {
		return CSAT{}, fault.Invalid("comment", "invalid_comment", "comment must be valid text of at most 2000 characters")
	}
	sess, err := s.repo.getSession(ctx, sid)
	if err != nil {
		return CSAT{}, err
	}
	if sess.CSAT != nil {
		return CSAT{}, fault.New(fault.Conflict, "csat_already_submitted", "this conversation has already been rated")
	}
	if sess.Status != StatusClosed {
		return CSAT{}, fault.New(fault.Conflict, "session_not_closed", "a conversation can be rated once it is closed")
	}
	c := CSAT{Score: score, Comment: comment, SubmittedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if ok, err := s.state.claim(ctx, sid, "csat"); err != nil {
		return CSAT{}, err
	} else if !ok {
		return CSAT{}, fault.New(fault.Conflict, "csat_already_submitted", "this conversation has already been rated")
	}
	if err := s.repo.setCSAT(ctx, sid, c); err != nil {
		s.state.unclaim(context.WithoutCancel(ctx), sid, "csat")
		return CSAT{}, err
	}
	text := fmt.Sprintf("The customer rated the conversation %d/5.", score)
	if comment != "" {
		text += " “" + comment + "”"
	}
	if err := s.systemMessage(ctx, sid, "csat", "csat_submitted", text); err != nil {
		return CSAT{}, err
	}
	if err := s.publishEvent(ctx, events.TypeCSATSubmitted, sid, &eventsv1.CsatSubmitted{
		SessionId: sid, AgentId: sess.AgentID, Score: int32(score), Comment: comment, SubmittedAt: timestamppb.New(c.SubmittedAt),
	}); err != nil {
		return CSAT{}, err
	}
	return c, nil
}

// touch records activity on sessions for the idle sweeper.
func touch(ctx context.Context, pipe redis.Pipeliner, at time.Time, sids ...string) {
	members := make([]redis.Z, len(sids))
	for i, sid := range sids {
		members[i] = redis.Z{Score: float64(at.Unix()), Member: sid}
	}
	// XX: only sessions still open (present in the set) are touched.
	pipe.ZAddXX(ctx, activityKey, members...)
}

// sweepIdle closes sessions without activity for IdleTimeout. Several replicas may
// sweep at once: Close is conditional, so each session is closed once.
func (s *Service) sweepIdle(ctx context.Context) error {
	if s.cfg.IdleTimeout <= 0 {
		<-ctx.Done()
		return nil
	}
	every := min(max(s.cfg.IdleTimeout/10, time.Second), 30*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cutoff := time.Now().Add(-s.cfg.IdleTimeout).Unix()
		ids, err := s.deps.Redis.ZRangeByScore(ctx, activityKey, &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(cutoff, 10), Count: 200}).Result()
		if err != nil {
			s.log.WarnContext(ctx, "list idle sessions", slog.Any(logkey.Error, err))
			continue
		}
		for _, sid := range ids {
			if _, err := s.Close(ctx, sid, Actor{Type: frames.SenderSystem}, "idle"); err != nil {
				if fault.Is(err, fault.Conflict) || fault.Is(err, fault.NotFound) {
					s.deps.Redis.ZRem(ctx, activityKey, sid)
					continue
				}
				s.log.WarnContext(ctx, "close idle session", slog.String(logkey.SessionID, sid), slog.Any(logkey.Error, err))
			}
		}
	}
}
