package session

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/helmdesk/helmdesk/pkg/app"
	"github.com/helmdesk/helmdesk/pkg/crypto"
	"github.com/helmdesk/helmdesk/pkg/events"
	"github.com/helmdesk/helmdesk/pkg/fault"
	"github.com/helmdesk/helmdesk/pkg/frames"
	"github.com/helmdesk/helmdesk/pkg/groupcommit"
	"github.com/helmdesk/helmdesk/pkg/logkey"
	"github.com/helmdesk/helmdesk/pkg/observability"
	eventsv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/events/v1"
	routingv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/routing/v1"
)

// Source is the event source name of this service.
const Source = "session"

// Deps are the connections the service uses.
type Deps struct {
	Runtime  *app.Runtime
	Mongo    *mongo.Database
	Redis    *redis.Client
	Producer *events.Producer
	Routing  routingv1.RoutingServiceClient
	Brokers  []string
	Keyring  *crypto.Keyring
}

// Service is the session service.
type Service struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	repo    *repo
	state   *stateStore
	metrics *metrics
	// inserts merges the message inserts of every partition this process owns into
	// as few InsertMany calls as possible: databases pay per call far more than per
	// document (FerretDB's SQLite backend takes one transaction per call).
	inserts *groupcommit.Group[Message, bool]
	// storedSeqs decides which sessions of an inbound batch are fanned out before it
	// is stored.
	storedSeqs storedSeqs
	// chains orders the Redis steps (watermarks, late fan-outs) of each partition's
	// pipelined batches.
	chainMu sync.Mutex
	chains  map[int]*link
}

type metrics struct {
	created    prometheus.Counter
	persisted  *prometheus.CounterVec
	duplicates prometheus.Counter
	active     prometheus.Gauge
	batchSize  prometheus.Histogram
	// fanouts counts sessions of inbound batches by whether they were fanned out
	// before or after the batch was stored.
	fanouts *prometheus.CounterVec
	// stages times the inbound write path: wait (from the gateway accepting a message
	// to its batch starting), sequence, fanout (before the insert), persist and deliver
	// (after it).
	stages *prometheus.HistogramVec
	// historyReads counts message history reads by where they were answered from, and
	// for MongoDB why the recent buffer could not answer.
	historyReads *prometheus.CounterVec
}

// New prepares the service: indexes, Redis scripts, metrics.
func New(ctx context.Context, cfg Config, deps Deps) (*Service, error) {
	r, err := newRepo(ctx, deps.Mongo)
	if err != nil {
		return nil, fmt.Errorf("prepare session storage: %w", err)
	}
	f := promauto.With(deps.Runtime.Metrics.Registry)
	m := &metrics{
		created:    f.NewCounter(prometheus.CounterOpts{Name: "helmdesk_session_sessions_created_total", Help: "Sessions created."}),
		persisted:  f.NewCounterVec(prometheus.CounterOpts{Name: "helmdesk_session_messages_persisted_total", Help: "Messages given a seq and persisted, by sender type."}, []string{"sender"}),
		duplicates: f.NewCounter(prometheus.CounterOpts{Name: "helmdesk_session_messages_duplicate_total", Help: "Inbound messages recognised as repeats of an earlier client_msg_id."}),
		active:     f.NewGauge(prometheus.GaugeOpts{Name: "helmdesk_session_active_sessions", Help: "Sessions not yet closed (queued or assigned), cluster-wide."}),
		batchSize:  f.NewHistogram(prometheus.HistogramOpts{Name: "helmdesk_session_inbound_batch_size", Help: "Messages per persisted inbound batch.", Buckets: prometheus.ExponentialBuckets(1, 2, 11)}),
		fanouts: f.NewCounterVec(prometheus.CounterOpts{Name: "helmdesk_session_inbound_fanouts_total",
			Help: "Sessions of inbound batches fanned out to gateways, by when: before_store (seqs known final) or after_store."}, []string{"when"}),
		stages: f.NewHistogramVec(prometheus.HistogramOpts{Name: "helmdesk_session_inbound_stage_seconds",
			Help: "Inbound write path by stage: wait (gateway accept to batch start, oldest message), sequence, fanout (before the insert), persist, deliver (after it).", Buckets: observability.LatencyBuckets}, []string{"stage"}),
		historyReads: f.NewCounterVec(prometheus.CounterOpts{Name: "helmdesk_session_history_reads_total",
			Help: "Message history reads (resumes, REST pages) by source: recent (Redis) or mongodb, with why Redis could not answer (no_state, empty, older, hole, redis_error)."}, []string{"source", "miss"}),
	}
	return &Service{
		cfg:     cfg,
		deps:    deps,
		log:     deps.Runtime.Logger,
		repo:    r,
		state:   &stateStore{rdb: deps.Redis, ttl: cfg.StateTTL},
		metrics: m,
		inserts: &groupcommit.Group[Message, bool]{Write: r.insertMessages, Max: 5000},
	}, nil
}

// Run consumes the inbound and routing topics until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	rt := s.deps.Runtime
	inbound := events.NewConsumer(events.ConsumerConfig{Brokers: s.deps.Brokers, GroupID: s.cfg.ConsumerGroup, Topics: []string{events.TopicInbound}}, s, s.log, rt.Metrics, rt.Tracer)
	routed := events.NewConsumer(events.ConsumerConfig{Brokers: s.deps.Brokers, GroupID: s.cfg.ConsumerGroup + "-routing", Topics: []string{events.TopicRouting}}, events.HandlerFunc(s.handleRouting), s.log, rt.Metrics, rt.Tracer)
	return app.RunAll(ctx, inbound, routed, app.RunnerFunc(s.refreshGauges), app.RunnerFunc(s.sweepIdle))
}

// Assigned is told when the inbound consumer group rebalances: another member may
// have written this member's sessions in between, so what it stored before counts no
// more.
func (s *Service) Assigned(topic string, _ []int) {
	if topic == events.TopicInbound {
		s.storedSeqs.reset()
		s.chainMu.Lock()
		s.chains = nil
		s.chainMu.Unlock()
	}
}

const activeSessionsKey = "hd:stats:active_sessions"

// refreshGauges keeps cluster-wide gauges current.
func (s *Service) refreshGauges(ctx context.Context) error {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		if n, err := s.deps.Redis.Get(ctx, activeSessionsKey).Int64(); err == nil {
			s.metrics.active.Set(float64(n))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// CreateSessionInput is what a customer starts a session with.
type CreateSessionInput struct {
	UserID  string
	Channel string
	PageURL string
	Profile map[string]any
}

var (
	userIDPattern     = regexp.MustCompile(`^[\p{L}\p{N}_.:@+\-]{1,128}$`)
	profileKeyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	channelPattern    = regexp.MustCompile(`^[a-z0-9_\-]{1,64}$`)
)

func validateCreate(in CreateSessionInput) error {
	if !userIDPattern.MatchString(in.UserID) {
		return fault.Invalid("user_id", "invalid_user_id", "user_id must be 1-128 letters, digits or _ . : @ + -")
	}
	if in.Channel != "" && !channelPattern.MatchString(in.Channel) {
		return fault.Invalid("channel", "invalid_channel", "channel must be 1-64 lowercase letters, digits, _ or -")
	}
	if len(in.PageURL) > 2048 {
		return fault.Invalid("page_url", "invalid_page_url", "page_url is longer than 2048 bytes")
	}
	if in.PageURL != "" {
		if u, err := url.Parse(in.PageURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return fault.Invalid("page_url", "invalid_page_url", "page_url must be an http or https URL")
		}
	}
	if len(in.Profile) > 64 {
		return fault.Invalid("profile", "invalid_profile", "profile has more than 64 attributes")
	}
	for k := range in.Profile {
		if !profileKeyPattern.MatchString(k) {
			return fault.Invalid("profile", "invalid_profile", "profile attribute %q: names are letters, digits and _ (at most 64), starting with a letter or _", k)
		}
	}
	return nil
}

// CreateSession starts a session and routes it.
func (s *Service) CreateSession(ctx context.Context, in CreateSessionInput) (Session, error) {
	if in.Channel == "" {
		in.Channel = "web"
	}
	if err := validateCreate(in); err != nil {
		return Session{}, err
	}
	now := time.Now().UTC()
	plain, secret := splitProfile(in.Profile)
	cust, err := s.repo.upsertCustomer(ctx, in.UserID, plain, now)
	if err != nil {
		return Session{}, err
	}
	if err := s.sealCustomer(ctx, cust.ID, secret); err != nil {
		return Session{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Session{}, fmt.Errorf("generate session id: %w", err)
	}
	sess := Session{ID: id.String(), CustomerID: cust.ID, UserID: in.UserID, Channel: in.Channel, PageURL: in.PageURL, Profile: plain, Status: StatusQueued, CreatedAt: now}
	if sess.Sensitive, err = s.seal(collSessions, sess.ID, secret); err != nil {
		return Session{}, err
	}
	if err := s.repo.insertSession(ctx, sess); err != nil {
		return Session{}, err
	}
	if err := s.state.create(ctx, sess); err != nil {
		return Session{}, err
	}
	// Events and routing see the profile without its sensitive attributes.
	profile, err := structpb.NewStruct(sess.Profile)
	if err != nil {
		return Session{}, fault.Invalid("profile", "invalid_profile", "profile values must be JSON values: %v", err)
	}
	env, err := events.NewEnvelope(events.TypeChatCreated, Source, sess.ID, &eventsv1.ChatCreated{
		SessionId: sess.ID, CustomerId: cust.ID, UserId: in.UserID, Channel: in.Channel, PageUrl: in.PageURL, Profile: profile, CreatedAt: timestamppb.New(now),
	})
	if err != nil {
		return Session{}, err
	}
	if err := s.deps.Producer.Publish(ctx, events.Record{Topic: events.TopicEvents, Envelope: env}); err != nil {
		return Session{}, fmt.Errorf("publish chat_created: %w", err)
	}
	s.metrics.created.Inc()
	s.deps.Redis.Incr(ctx, activeSessionsKey)
	s.deps.Redis.ZAdd(ctx, activityKey, redis.Z{Score: float64(now.Unix()), Member: sess.ID})

	res, err := s.deps.Routing.Assign(ctx, &routingv1.AssignRequest{SessionId: sess.ID, Channel: sess.Channel, PageUrl: sess.PageURL, Profile: profile, LastAgentId: cust.LastAgentID})
	if err != nil {
		// Without a routing decision nobody would ever pick the session up: undo it
		// so that the customer's retry starts cleanly.
		s.log.ErrorContext(ctx, "route new session", slog.String(logkey.SessionID, sess.ID), slog.Any(logkey.Error, err))
		_ = s.repo.deleteSession(context.WithoutCancel(ctx), sess.ID)
		_ = s.state.drop(context.WithoutCancel(ctx), sess.ID)
		s.deps.Redis.Decr(context.WithoutCancel(ctx), activeSessionsKey)
		s.deps.Redis.ZRem(context.WithoutCancel(ctx), activityKey, sess.ID)
		return Session{}, fault.New(fault.Unavailable, "routing_unavailable", "the session could not be routed, try again")
	}
	if res.GetAssigned() {
		if _, err := s.applyAssignment(ctx, &sess, sess.ID, res.GetAgentId(), res.GetGroup(), time.Now().UTC()); err != nil {
			return Session{}, err
		}
		sess.Status, sess.AgentID, sess.Group = StatusAssigned, res.GetAgentId(), res.GetGroup()
		at := time.Now().UTC()
		sess.AssignedAt = &at
	} else {
		sess.Group, sess.QueuePosition = res.GetGroup(), res.GetQueuePosition()
		if res.GetGroup() != "" {
			if err := s.repo.setQueued(ctx, sess.ID, res.GetGroup()); err != nil {
				return Session{}, err
			}
			if err := s.state.setAgent(ctx, sess.ID, "", res.GetGroup(), StatusQueued); err != nil {
				return Session{}, err
			}
		}
	}
	return sess, nil
}

// applyAssignment records that agentID now serves the session and tells everyone:
// the customer, the new agent, and the agent who had it before (a re-route after they
// went offline), who loses access. before is the session as stored, when the caller
// has it already. It reports whether anything changed.
func (s *Service) applyAssignment(ctx context.Context, before *Session, sid, agentID, group string, at time.Time) (bool, error) {
	if before == nil {
		sess, err := s.repo.getSession(ctx, sid)
		if err != nil {
			return false, err
		}
		before = &sess
	}
	if before.Status == StatusClosed || (before.Status == StatusAssigned && before.AgentID == agentID) {
		return false, nil // closed meanwhile, or a replayed routing event
	}
	if err := s.repo.setAssigned(ctx, sid, agentID, group, at); err != nil {
		return false, err
	}
	if err := s.state.setAgent(ctx, sid, agentID, group, StatusAssigned); err != nil {
		return false, err
	}
	if err := s.repo.setCustomerLastAgent(ctx, before.CustomerID, agentID); err != nil {
		s.log.WarnContext(ctx, "record last agent", slog.Any(logkey.Error, err))
	}
	env, err := events.NewEnvelope(events.TypeChatAssigned, Source, sid, &eventsv1.ChatAssigned{SessionId: sid, AgentId: agentID, Group: group, AssignedAt: timestamppb.New(at)})
	if err != nil {
		return false, err
	}
	if err := s.deps.Producer.Publish(ctx, events.Record{Topic: events.TopicEvents, Envelope: env}); err != nil {
		return false, fmt.Errorf("publish chat_assigned: %w", err)
	}
	frame := frames.Session{Type: frames.TypeSession, SessionID: sid, Status: frames.StatusAssigned, AgentID: agentID, Group: group}
	channels := []string{frames.SessionChannel(sid), frames.AgentChannel(agentID)}
	if before.AgentID != "" && before.AgentID != agentID {
		channels = append(channels, frames.AgentChannel(before.AgentID))
	}
	return true, s.fanoutTo(ctx, frame, channels...)
}

// reveal puts a session's decrypted sensitive attributes back into its profile.
func (s *Service) reveal(sess *Session) error {
	profile := plainMap(sess.Profile)
	if err := s.unseal(collSessions, sess.ID, sess.Sensitive, profile); err != nil {
		return err
	}
	sess.Profile, sess.Sensitive = profile, nil
	return nil
}

// GetSession returns one session with its last seq.
func (s *Service) GetSession(ctx context.Context, id string) (Session, error) {
	if id == "" {
		return Session{}, fault.Invalid("session_id", "invalid_session_id", "session_id is required")
	}
	sess, err := s.repo.getSession(ctx, id)
	if err != nil {
		return Session{}, err
	}
	if n, ok, err := s.state.lastSeq(ctx, id); err == nil && ok {
		sess.LastSeq, sess.LastSeqKnown = n, true
	} else if last, err := s.repo.lastMessages(ctx, id, 1); err == nil {
		sess.LastSeqKnown = true
		if len(last) == 1 {
			sess.LastSeq = last[0].Seq
		}
	}
	s.addQueuePosition(ctx, &sess)
	return sess, nil
}

// addQueuePosition sets a queued session's place in its queue, as routing has it
// (left at 0 when routing cannot say).
func (s *Service) addQueuePosition(ctx context.Context, sess *Session) {
	if sess.Status != StatusQueued {
		return
	}
	if q, err := s.deps.Routing.GetQueuePosition(ctx, &routingv1.GetQueuePositionRequest{SessionId: sess.ID}); err == nil && q.GetQueued() {
		sess.QueuePosition = q.GetQueuePosition()
	}
}

// SessionSummary returns what a socket's greeting needs of a session: id, status,
// agent, group, last seq, queue position and whether it was rated (CSAT set, score 0).
// It is read from the session's state in Redis, and from MongoDB when that is missing.
func (s *Service) SessionSummary(ctx context.Context, id string) (Session, error) {
	if id == "" {
		return Session{}, fault.Invalid("session_id", "invalid_session_id", "session_id is required")
	}
	got, err := s.SessionSummaries(ctx, []string{id})
	if err != nil {
		return Session{}, err
	}
	if len(got) == 0 {
		return Session{}, fault.New(fault.NotFound, "session_not_found", "session %s does not exist", id)
	}
	return got[0], nil
}

// MaxSummaries bounds the ids of one SessionSummaries call.
const MaxSummaries = 500

// SessionSummaries returns the summaries (see SessionSummary) of the sessions ids
// name, in no particular order and each once; ids that name no session are left out.
// The states of all of them are read in one Redis round trip, so a gateway greeting
// the sockets of a reconnect storm pays per batch, not per socket.
func (s *Service) SessionSummaries(ctx context.Context, ids []string) ([]Session, error) {
	if len(ids) == 0 || len(ids) > MaxSummaries {
		return nil, fault.Invalid("session_ids", "invalid_session_ids", "between 1 and %d session ids are required", MaxSummaries)
	}
	unique := make([]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if id == "" {
			return nil, fault.Invalid("session_ids", "invalid_session_ids", "a session id is empty")
		}
		if !seen[id] {
			seen[id] = true
			unique = append(unique, id)
		}
	}
	states, err := s.state.summaries(ctx, unique)
	if err != nil {
		// Redis is only the fast path: read every session from MongoDB instead.
		s.log.WarnContext(ctx, "read session summaries", slog.Any(logkey.Error, err))
		states = nil
	}
	// Sessions without state (expired, or Redis lost it) are read from MongoDB, and
	// queued ones ask routing for their place: a few at a time, so that one batch
	// after a loss of Redis does not read its sessions one after the other.
	found := make([]*Session, len(unique)) // nil: no such session
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(summaryReads)
	for i, id := range unique {
		sess, inState := states[id]
		if inState && sess.Status != StatusQueued {
			found[i] = &sess
			continue
		}
		g.Go(func() error {
			if inState {
				s.addQueuePosition(gctx, &sess)
				found[i] = &sess
				return nil
			}
			stored, err := s.GetSession(gctx, id)
			if fault.Is(err, fault.NotFound) {
				return nil
			}
			found[i] = &stored
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make([]Session, 0, len(unique))
	for _, sess := range found {
		if sess != nil {
			out = append(out, *sess)
		}
	}
	return out, nil
}

// summaryReads bounds the concurrent reads of one SessionSummaries call.
const summaryReads = 16

// ListMessages returns up to limit messages with seq > afterSeq and whether more follow.
func (s *Service) ListMessages(ctx context.Context, sid string, afterSeq int64, limit int) ([]frames.Message, bool, error) {
	if sid == "" {
		return nil, false, fault.Invalid("session_id", "invalid_session_id", "session_id is required")
	}
	if afterSeq < 0 {
		return nil, false, fault.Invalid("after_seq", "invalid_after_seq", "after_seq must be 0 or more")
	}
	if limit <= 0 || limit > 500 {
		limit = 500
	}
	last, known, err := s.state.lastSeq(ctx, sid)
	if err != nil {
		return nil, false, err
	}
	miss := "no_state"
	if known {
		if afterSeq >= last {
			return nil, false, nil
		}
		var msgs []frames.Message
		msgs, miss, err = s.state.recentAfter(ctx, sid, afterSeq, limit)
		if err != nil {
			miss = "redis_error"
		} else if miss == "" {
			s.metrics.historyReads.WithLabelValues("recent", "").Inc()
			end := afterSeq
			if len(msgs) > 0 {
				end = msgs[len(msgs)-1].Seq
			}
			return msgs, end < last, nil
		}
	}
	s.metrics.historyReads.WithLabelValues("mongodb", miss).Inc()
	stored, err := s.repo.messagesAfter(ctx, sid, afterSeq, limit+1)
	if err != nil {
		return nil, false, err
	}
	if len(stored) == 0 {
		if _, err := s.repo.getSession(ctx, sid); err != nil {
			return nil, false, err
		}
	}
	more := len(stored) > limit
	if more {
		stored = stored[:limit]
	}
	// Only a run without holes: while a replayed batch is being re-persisted after a
	// crash, a later seq can be stored before earlier ones. Returning past a hole
	// would let a reader skip the missing messages for good.
	out := make([]frames.Message, 0, len(stored))
	for _, m := range stored {
		if m.Seq != afterSeq+int64(len(out))+1 {
			more = true
			break
		}
		out = append(out, m.Frame())
	}
	// The newest messages may be fanned out before they are stored: a run that
	// ends short of the session's last seq goes on from the recent buffer.
	if end := afterSeq + int64(len(out)); known && !more && end < last && len(out) < limit {
		if tail, miss, err := s.state.recentAfter(ctx, sid, end, limit-len(out)); err == nil && miss == "" {
			out = append(out, tail...)
			more = afterSeq+int64(len(out)) < last
		}
	}
	return out, more, nil
}

// ListSessions lists sessions newest first; the cursor of the next page is the id of
// the last session returned ("" on the last page).
func (s *Service) ListSessions(ctx context.Context, f sessionFilter) ([]Session, string, error) {
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	if f.Before != "" && len(f.Before) > 64 {
		return nil, "", fault.Invalid("cursor", "invalid_cursor", "cursor is not one this API returned")
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return nil, "", fault.Invalid("created_from", "invalid_time_range", "created_from must be before created_to")
	}
	if f.assignedToOnly() {
		list, more, err := s.assignedTo(ctx, f.AgentID, f.Limit, f.Summary)
		if err != nil {
			return nil, "", err
		}
		next := ""
		if more {
			next = list[len(list)-1].ID
		}
		return list, next, nil
	}
	f.Limit++
	list, err := s.repo.listSessions(ctx, f)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(list) == f.Limit {
		list = list[:f.Limit-1]
		next = list[len(list)-1].ID
	}
	return list, next, nil
}
