package routing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/helmdesk/helmdesk/pkg/fault"
	"github.com/helmdesk/helmdesk/pkg/logkey"
	"github.com/helmdesk/helmdesk/pkg/store"
	"github.com/helmdesk/helmdesk/services/routing/internal/dispatch"
	"github.com/helmdesk/helmdesk/services/routing/internal/rules"
)

// Limits of the routing profile.
const (
	defaultMaxSessions = 5
	maxMaxSessions     = 100
	maxAgentGroups     = 50
)

// validID checks an identifier (session, agent, connection): 1-128 printable
// characters without spaces.
func validID(field, v string) error {
	if v == "" {
		return fault.Invalid(field, "invalid_"+field, "%s is required", field)
	}
	if !rules.ValidAgentID(v) {
		return fault.Invalid(field, "invalid_"+field, "%s must be 1-128 printable characters without spaces", field)
	}
	return nil
}

func validPriority(p int) error {
	if p < 0 || p > rules.MaxPriority {
		return fault.Invalid("priority", "invalid_priority", "priority must be between 0 and %d", rules.MaxPriority)
	}
	return nil
}

func agentNotFound(id string) error {
	return fault.New(fault.NotFound, "agent_not_found", "agent %s has no routing profile", id)
}

// assignInput is a session to route and what the rules see about it.
type assignInput struct {
	SessionID string
	rules.Input
}

// assignment is the outcome of routing one session.
type assignment struct {
	Assigned     bool
	AgentID      string
	Group        string
	Position     int64 // 1-based, when queued
	RuleIndex    int   // -1 for the default route
	RulesVersion int64
	Action       string
}

func (s *Service) assign(ctx context.Context, in assignInput) (assignment, error) {
	start := time.Now()
	if err := validID("session_id", in.SessionID); err != nil {
		return assignment{}, err
	}
	if err := validPriority(in.Priority); err != nil {
		return assignment{}, err
	}
	if in.PreviousSessions < 0 {
		return assignment{}, fault.Invalid("previous_sessions", "invalid_previous_sessions", "previous_sessions must not be negative")
	}
	if in.LastAgentID != "" && !rules.ValidAgentID(in.LastAgentID) {
		return assignment{}, fault.Invalid("last_agent_id", "invalid_last_agent_id", "last_agent_id must be 1-128 printable characters without spaces")
	}
	st := s.rules()
	for attempt := 0; ; attempt++ {
		now := s.now()
		in.Time = now
		d := st.set.Evaluate(in.Input, false)
		p, err := s.board.Assign(ctx, in.SessionID, s.routeFor(d.Action, in.Input), st.version, now)
		var stale *dispatch.StaleRulesError
		if errors.As(err, &stale) {
			if attempt == 3 {
				return assignment{}, &fault.Error{Kind: fault.Unavailable, Code: "rules_changing", Message: "the routing rules are being changed, try again", Err: err}
			}
			if st, err = s.reloadRules(ctx); err != nil {
				return assignment{}, err
			}
			continue
		}
		if err != nil {
			return assignment{}, err
		}
		if p.Assigned {
			s.metrics.assignments.WithLabelValues("assigned").Inc()
		} else {
			s.metrics.assignments.WithLabelValues("queued").Inc()
		}
		s.metrics.assignTime.Observe(time.Since(start).Seconds())
		if p.DrainNeeded {
			s.drain(ctx, []string{p.Group})
		}
		return assignment{Assigned: p.Assigned, AgentID: p.AgentID, Group: p.Group, Position: p.Position,
			RuleIndex: d.Index, RulesVersion: st.version, Action: d.Action.String()}, nil
	}
}

// routeFor turns a rule action into a route on the board.
func (s *Service) routeFor(a rules.Action, in rules.Input) dispatch.Route {
	r := dispatch.Route{Group: a.Group, Strategy: dispatch.LeastLoaded, Priority: in.Priority}
	switch a.Kind {
	case rules.RoundRobin:
		r.Strategy = dispatch.RoundRobin
	case rules.AssignToAgent:
		r.AgentID = a.AgentID
		if a.Group == "" {
			r.Strategy = dispatch.RoundRobin // no fallback group: the default route
		}
	case rules.AssignToLastAgent:
		r.AgentID = in.LastAgentID
	case rules.Queue:
		if a.HasPriority {
			r.Priority = a.Priority
		}
	}
	return r
}

// release frees a session; agentID "" means whoever holds it (a waiting session
// leaves its queue). It returns whether anything was freed.
func (s *Service) release(ctx context.Context, sessionID, agentID string) (bool, error) {
	if err := validID("session_id", sessionID); err != nil {
		return false, err
	}
	if agentID != "" {
		if err := validID("agent_id", agentID); err != nil {
			return false, err
		}
	}
	r, err := s.board.Release(ctx, sessionID, agentID)
	if err != nil {
		return false, err
	}
	if r.Released && r.Waiting {
		s.drain(ctx, withEveryone(r.AgentGroups))
	}
	return r.Released || r.Dequeued, nil
}

func withEveryone(groups []string) []string { return append([]string{""}, groups...) }

// transferInput says where a session moves.
type transferInput struct {
	SessionID string
	ToAgentID string
	ToGroup   string
	Priority  int
}

// transferResult is the outcome of a transfer.
type transferResult struct {
	assignment
	PreviousAgentID string
}

func (s *Service) transfer(ctx context.Context, in transferInput) (transferResult, error) {
	if err := validID("session_id", in.SessionID); err != nil {
		return transferResult{}, err
	}
	if err := validPriority(in.Priority); err != nil {
		return transferResult{}, err
	}
	switch {
	case (in.ToAgentID == "") == (in.ToGroup == ""):
		return transferResult{}, fault.Invalid("to_agent_id", "invalid_transfer_target", "set exactly one of to_agent_id and to_group")
	case in.ToAgentID != "":
		if err := validID("to_agent_id", in.ToAgentID); err != nil {
			return transferResult{}, err
		}
		if _, err := s.agentState(ctx, in.ToAgentID); err != nil {
			return transferResult{}, err
		}
	default:
		if err := s.checkGroups(ctx, "to_group", []string{in.ToGroup}); err != nil {
			return transferResult{}, err
		}
	}
	t, err := s.board.Transfer(ctx, in.SessionID, dispatch.Route{AgentID: in.ToAgentID, Group: in.ToGroup, Strategy: dispatch.LeastLoaded, Priority: in.Priority}, s.now())
	if err != nil {
		return transferResult{}, err
	}
	if t.Unavailable {
		return transferResult{}, fault.New(fault.Conflict, "agent_unavailable", "agent %s is not online with spare capacity", in.ToAgentID)
	}
	if t.PreviousAgent != "" && !t.Same {
		s.drain(ctx, withEveryone(t.PreviousGroups))
	}
	if t.DrainNeeded {
		s.drain(ctx, []string{t.Group})
	}
	return transferResult{
		assignment:      assignment{Assigned: t.Assigned, AgentID: t.AgentID, Group: t.Group, Position: t.Position, RuleIndex: -1},
		PreviousAgentID: t.PreviousAgent,
	}, nil
}

func (s *Service) removeFromQueue(ctx context.Context, sessionID string) (bool, error) {
	if err := validID("session_id", sessionID); err != nil {
		return false, err
	}
	return s.board.Remove(ctx, sessionID)
}

func (s *Service) queuePosition(ctx context.Context, sessionID string) (dispatch.Position, error) {
	if err := validID("session_id", sessionID); err != nil {
		return dispatch.Position{}, err
	}
	p, err := s.board.Position(ctx, sessionID)
	if err != nil {
		return dispatch.Position{}, err
	}
	if !p.Known {
		return dispatch.Position{}, fault.New(fault.NotFound, "session_not_routed", "session %s is neither waiting nor assigned", sessionID)
	}
	return p, nil
}

func (s *Service) queues(ctx context.Context) ([]dispatch.QueueStats, error) {
	qs, err := s.board.Queues(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(qs, func(a, b dispatch.QueueStats) int { return strings.Compare(a.Group, b.Group) })
	return qs, nil
}

// agentProfile is an agent's routing profile as given by the gateway.
type agentProfile struct {
	AgentID     string
	MaxSessions int // 0 = default
	Groups      []string
}

func (s *Service) upsertAgent(ctx context.Context, p agentProfile) (dispatch.Agent, error) {
	if err := validID("agent_id", p.AgentID); err != nil {
		return dispatch.Agent{}, err
	}
	if p.MaxSessions == 0 {
		p.MaxSessions = defaultMaxSessions
	}
	if p.MaxSessions < 1 || p.MaxSessions > maxMaxSessions {
		return dispatch.Agent{}, fault.Invalid("max_sessions", "invalid_max_sessions", "max_sessions must be between 1 and %d", maxMaxSessions)
	}
	groups := slices.Clone(p.Groups)
	slices.Sort(groups)
	groups = slices.Compact(groups)
	if len(groups) > maxAgentGroups {
		return dispatch.Agent{}, fault.Invalid("groups", "too_many_groups", "an agent belongs to at most %d groups", maxAgentGroups)
	}
	if err := s.checkGroups(ctx, "groups", groups); err != nil {
		return dispatch.Agent{}, err
	}
	now := s.now().UTC()
	if err := s.repo.upsertProfile(ctx, profile{AgentID: p.AgentID, MaxSessions: p.MaxSessions, Groups: groups, UpdatedAt: now}); err != nil {
		return dispatch.Agent{}, err
	}
	status, err := s.board.UpsertAgent(ctx, p.AgentID, p.MaxSessions, groups)
	if err != nil {
		return dispatch.Agent{}, err
	}
	if status == dispatch.Online {
		s.drain(ctx, withEveryone(groups)) // capacity or groups may have grown
	}
	return s.agentState(ctx, p.AgentID)
}

// checkGroups rejects names that are not valid or not existing groups.
func (s *Service) checkGroups(ctx context.Context, field string, names []string) error {
	for _, g := range names {
		if !rules.ValidGroupName(g) {
			return fault.Invalid(field, "invalid_group_name", "group %q is not a valid group name (1-64 characters of a-z, 0-9, _ and -)", g)
		}
	}
	missing, err := s.repo.missingGroups(ctx, names)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fault.Invalid(field, "unknown_group", "unknown group(s): %s (create them first)", strings.Join(missing, ", "))
	}
	return nil
}

// agentState returns an agent's state, restoring the Redis mirror of the profile
// from MongoDB when Redis lost it.
func (s *Service) agentState(ctx context.Context, id string) (dispatch.Agent, error) {
	if err := validID("agent_id", id); err != nil {
		return dispatch.Agent{}, err
	}
	a, ok, err := s.board.Agent(ctx, id, s.now())
	if err != nil {
		return dispatch.Agent{}, err
	}
	if ok {
		return a, nil
	}
	if err := s.remirror(ctx, id); err != nil {
		return dispatch.Agent{}, err
	}
	a, ok, err = s.board.Agent(ctx, id, s.now())
	if err != nil {
		return dispatch.Agent{}, err
	}
	if !ok {
		return dispatch.Agent{}, agentNotFound(id)
	}
	return a, nil
}

// remirror copies a stored profile into Redis (offline); NotFound when there is none.
func (s *Service) remirror(ctx context.Context, id string) error {
	p, err := s.repo.getProfile(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return agentNotFound(id)
	}
	if err != nil {
		return err
	}
	if _, err := s.board.UpsertAgent(ctx, id, p.MaxSessions, p.Groups); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "restored agent routing profile in redis", slog.String(logkey.AgentID, id))
	return nil
}

func (s *Service) listAgents(ctx context.Context, group string) ([]dispatch.Agent, error) {
	if group != "" && !rules.ValidGroupName(group) {
		return nil, fault.Invalid("group", "invalid_group_name", "group %q is not a valid group name", group)
	}
	profiles, err := s.repo.listProfiles(ctx, group)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(profiles))
	for i, p := range profiles {
		ids[i] = p.AgentID
	}
	states, err := s.board.Agents(ctx, ids, s.now())
	if err != nil {
		return nil, err
	}
	byID := make(map[string]dispatch.Agent, len(states))
	for _, a := range states {
		byID[a.ID] = a
	}
	out := make([]dispatch.Agent, len(profiles))
	for i, p := range profiles {
		a, ok := byID[p.AgentID]
		if !ok { // not mirrored (Redis lost it): offline with the stored profile
			a = dispatch.Agent{ID: p.AgentID, Status: dispatch.Offline, Max: p.MaxSessions, Groups: p.Groups}
		}
		out[i] = a
	}
	return out, nil
}

// statusChange is the outcome of SetAgentStatus.
type statusChange struct {
	Agent    dispatch.Agent
	Released []string // sessions released because the agent went offline
}

func (s *Service) setAgentStatus(ctx context.Context, id string, st dispatch.Status) (statusChange, error) {
	if err := validID("agent_id", id); err != nil {
		return statusChange{}, err
	}
	switch st {
	case dispatch.Online, dispatch.Away, dispatch.Offline:
	default:
		return statusChange{}, fault.Invalid("status", "invalid_status", "status must be online, away or offline")
	}
	prev, released, found, err := s.board.SetStatus(ctx, id, st, s.now())
	if err == nil && !found {
		if err = s.remirror(ctx, id); err == nil {
			prev, released, found, err = s.board.SetStatus(ctx, id, st, s.now())
		}
	}
	if err != nil {
		return statusChange{}, err
	}
	if !found {
		return statusChange{}, agentNotFound(id)
	}
	a, err := s.agentState(ctx, id)
	if err != nil {
		return statusChange{}, err
	}
	if prev != st {
		s.log.InfoContext(ctx, "agent status changed", slog.String(logkey.AgentID, id), slog.String(logkey.Status, string(st)), slog.Int(logkey.Count, len(released)))
	}
	switch {
	case st == dispatch.Online:
		s.drain(ctx, withEveryone(a.Groups))
	case len(released) > 0:
		s.drain(ctx, nil) // the released sessions wait at the head of their queues
	}
	return statusChange{Agent: a, Released: released}, nil
}

func (s *Service) agentConnected(ctx context.Context, id, conn string) (dispatch.Agent, error) {
	if err := validID("agent_id", id); err != nil {
		return dispatch.Agent{}, err
	}
	if err := validID("connection_id", conn); err != nil {
		return dispatch.Agent{}, err
	}
	restored, found, err := s.board.Connect(ctx, id, conn, s.now(), s.cfg.ConnectionTTL, s.cfg.PresenceGrace)
	if err == nil && !found {
		if err = s.remirror(ctx, id); err == nil {
			restored, found, err = s.board.Connect(ctx, id, conn, s.now(), s.cfg.ConnectionTTL, s.cfg.PresenceGrace)
		}
	}
	if err != nil {
		return dispatch.Agent{}, err
	}
	if !found {
		return dispatch.Agent{}, agentNotFound(id)
	}
	a, err := s.agentState(ctx, id)
	if err != nil {
		return dispatch.Agent{}, err
	}
	if restored {
		s.log.InfoContext(ctx, "agent online again: console reconnected", slog.String(logkey.AgentID, id))
		s.drain(ctx, withEveryone(a.Groups))
	}
	return a, nil
}

func (s *Service) agentDisconnected(ctx context.Context, id, conn string) error {
	if err := validID("agent_id", id); err != nil {
		return err
	}
	if err := validID("connection_id", conn); err != nil {
		return err
	}
	found, err := s.board.Disconnect(ctx, id, conn, s.now(), s.cfg.PresenceGrace)
	if err != nil {
		return err
	}
	if !found {
		if _, err := s.agentState(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) createGroup(ctx context.Context, name string) (group, error) {
	if !rules.ValidGroupName(name) {
		return group{}, fault.Invalid("name", "invalid_group_name", "group name must be 1-64 characters of a-z, 0-9, _ and -")
	}
	g := group{Name: name, CreatedAt: s.now().UTC().Truncate(time.Millisecond)}
	if err := s.repo.insertGroup(ctx, g); err != nil {
		if errors.Is(err, errGroupExists) {
			return group{}, fault.New(fault.Conflict, "group_exists", "group %s already exists", name)
		}
		return group{}, err
	}
	return g, nil
}

func (s *Service) listGroups(ctx context.Context) ([]group, error) { return s.repo.listGroups(ctx) }

// ruleSet is a version of the routing rules.
type ruleSet struct {
	Version   int64
	Rules     []rules.Rule
	UpdatedAt time.Time
	UpdatedBy string
}

func (s *Service) getRules(ctx context.Context, version int64) (ruleSet, error) {
	var v ruleVersion
	var err error
	switch {
	case version < 0:
		return ruleSet{}, fault.Invalid("version", "invalid_version", "version must not be negative")
	case version == 0:
		v, err = s.repo.latestRules(ctx)
	default:
		v, err = s.repo.getRules(ctx, version)
		if errors.Is(err, store.ErrNotFound) {
			return ruleSet{}, fault.New(fault.NotFound, "rules_version_not_found", "routing rules version %d does not exist", version)
		}
	}
	if err != nil {
		return ruleSet{}, err
	}
	return ruleSet{Version: v.Version, Rules: v.rules(), UpdatedAt: v.UpdatedAt, UpdatedBy: v.UpdatedBy}, nil
}

// compileRules validates a rule set: every condition and action, and that the
// groups the actions name exist.
func (s *Service) compileRules(ctx context.Context, rs []rules.Rule) (*rules.Set, error) {
	set, err := s.engine.Compile(rs)
	var verr *rules.ValidationError
	if errors.As(err, &verr) {
		first := verr.Rules[0]
		return nil, fault.Invalid(fmt.Sprintf("routing_rules[%d].%s", first.Index, first.Field), "invalid_rule", "%s", verr.Error())
	}
	if err != nil {
		return nil, err
	}
	if err := s.checkRuleAgents(ctx, rs); err != nil {
		return nil, err
	}
	missing, err := s.repo.missingGroups(ctx, set.Groups())
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		// Name the first rule that uses each missing group.
		var msgs []string
		field := ""
		for _, g := range missing {
			for i, r := range rs {
				if a, err := s.engine.ParseAction(r.Action); err == nil && a.Group == g {
					msgs = append(msgs, fmt.Sprintf("rule %d: action: unknown group %q (create it first)", i, g))
					if field == "" {
						field = fmt.Sprintf("routing_rules[%d].action", i)
					}
					break
				}
			}
		}
		return nil, fault.Invalid(field, "unknown_group", "%s", strings.Join(msgs, "; "))
	}
	return set, nil
}

// checkRuleAgents rejects assign_to_agent actions naming an agent without a routing
// profile.
func (s *Service) checkRuleAgents(ctx context.Context, rs []rules.Rule) error {
	for i, r := range rs {
		a, err := s.engine.ParseAction(r.Action)
		if err != nil || a.Kind != rules.AssignToAgent {
			continue
		}
		if _, err := s.repo.getProfile(ctx, a.AgentID); errors.Is(err, store.ErrNotFound) {
			return fault.Invalid(fmt.Sprintf("routing_rules[%d].action", i), "unknown_agent", "rule %d: action: unknown agent %q", i, a.AgentID)
		} else if err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) putRules(ctx context.Context, rs []rules.Rule, by string) (int64, error) {
	if len(by) > 256 {
		return 0, fault.Invalid("updated_by", "invalid_updated_by", "updated_by is longer than 256 characters")
	}
	set, err := s.compileRules(ctx, rs)
	if err != nil {
		return 0, err
	}
	v, err := s.repo.appendRules(ctx, set.Rules(), by, s.now().UTC().Truncate(time.Millisecond))
	if err != nil {
		return 0, err
	}
	if _, err := s.board.RaiseRulesVersion(ctx, v.Version); err != nil {
		return 0, err
	}
	s.current.Lock()
	if cur := s.current.rules; cur == nil || cur.version < v.Version {
		s.current.rules = &ruleState{version: v.Version, set: set, updatedAt: v.UpdatedAt, updatedBy: v.UpdatedBy}
	}
	s.current.Unlock()
	s.log.InfoContext(ctx, "routing rules changed", slog.Int64("rules_version", v.Version), slog.Int(logkey.Count, len(rs)))
	return v.Version, nil
}

func (s *Service) listRuleVersions(ctx context.Context, limit int) ([]ruleSet, error) {
	switch {
	case limit < 0:
		return nil, fault.Invalid("limit", "invalid_limit", "limit must not be negative")
	case limit == 0:
		limit = 50
	case limit > 500:
		limit = 500
	}
	vs, err := s.repo.listRuleVersions(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]ruleSet, len(vs))
	for i, v := range vs {
		out[i] = ruleSet{Version: v.Version, Rules: v.rules(), UpdatedAt: v.UpdatedAt, UpdatedBy: v.UpdatedBy}
	}
	return out, nil
}

// ruleTest is the outcome of TestRules.
type ruleTest struct {
	Decision     rules.Decision
	RulesVersion int64
}

// testRules evaluates the rules in force, or draft when it is not nil.
func (s *Service) testRules(ctx context.Context, in rules.Input, draft []rules.Rule) (ruleTest, error) {
	if err := validPriority(in.Priority); err != nil {
		return ruleTest{}, err
	}
	if in.Time.IsZero() {
		in.Time = s.now()
	}
	if draft != nil {
		set, err := s.compileRules(ctx, draft)
		if err != nil {
			return ruleTest{}, err
		}
		return ruleTest{Decision: set.Evaluate(in, true)}, nil
	}
	st := s.rules()
	if v, err := s.board.RulesVersion(ctx); err == nil && v != st.version {
		if st, err = s.reloadRules(ctx); err != nil {
			return ruleTest{}, err
		}
	}
	return ruleTest{Decision: st.set.Evaluate(in, true), RulesVersion: st.version}, nil
}
