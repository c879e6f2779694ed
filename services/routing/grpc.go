package routing

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/helmdesk/helmdesk/pkg/fault"
	routingv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/routing/v1"
	"github.com/helmdesk/helmdesk/services/routing/internal/dispatch"
	"github.com/helmdesk/helmdesk/services/routing/internal/rules"
)

// grpcServer is the gRPC port: it converts protobuf to domain values and back, and
// nothing else.
type grpcServer struct {
	routingv1.UnimplementedRoutingServiceServer
	s *Service
}

var statusToProto = map[dispatch.Status]routingv1.AgentStatus{
	dispatch.Online:  routingv1.AgentStatus_AGENT_STATUS_ONLINE,
	dispatch.Away:    routingv1.AgentStatus_AGENT_STATUS_AWAY,
	dispatch.Offline: routingv1.AgentStatus_AGENT_STATUS_OFFLINE,
}

var statusFromProto = map[routingv1.AgentStatus]dispatch.Status{
	routingv1.AgentStatus_AGENT_STATUS_ONLINE:  dispatch.Online,
	routingv1.AgentStatus_AGENT_STATUS_AWAY:    dispatch.Away,
	routingv1.AgentStatus_AGENT_STATUS_OFFLINE: dispatch.Offline,
}

func agentToProto(a dispatch.Agent) *routingv1.AgentState {
	return &routingv1.AgentState{
		AgentId: a.ID, Status: statusToProto[a.Status], CurrentSessionCount: int64(a.Load),
		MaxSessions: int32(a.Max), Groups: a.Groups, Connections: int32(a.Connections),
	}
}

func (g *grpcServer) Assign(ctx context.Context, req *routingv1.AssignRequest) (*routingv1.AssignResponse, error) {
	a, err := g.s.assign(ctx, assignInput{SessionID: req.GetSessionId(), Input: rules.Input{
		Profile: req.GetProfile().AsMap(), Channel: req.GetChannel(), PageURL: req.GetPageUrl(),
		DepartmentID: req.GetDepartmentId(), Intent: req.GetIntent(), PreviousSessions: req.GetPreviousSessions(),
		LastAgentID: req.GetLastAgentId(), LastGroup: req.GetLastGroup(), Priority: int(req.GetPriority()),
	}})
	if err != nil {
		return nil, err
	}
	return &routingv1.AssignResponse{Assigned: a.Assigned, AgentId: a.AgentID, Group: a.Group, QueuePosition: a.Position,
		RuleIndex: int32(a.RuleIndex), RulesVersion: a.RulesVersion, Action: a.Action}, nil
}

func (g *grpcServer) Release(ctx context.Context, req *routingv1.ReleaseRequest) (*routingv1.ReleaseResponse, error) {
	released, err := g.s.release(ctx, req.GetSessionId(), req.GetAgentId())
	if err != nil {
		return nil, err
	}
	return &routingv1.ReleaseResponse{Released: released}, nil
}

func (g *grpcServer) Transfer(ctx context.Context, req *routingv1.TransferRequest) (*routingv1.TransferResponse, error) {
	t, err := g.s.transfer(ctx, transferInput{SessionID: req.GetSessionId(), ToAgentID: req.GetToAgentId(), ToGroup: req.GetToGroup(), Priority: int(req.GetPriority())})
	if err != nil {
		return nil, err
	}
	return &routingv1.TransferResponse{Assigned: t.Assigned, AgentId: t.AgentID, Group: t.Group, QueuePosition: t.Position, PreviousAgentId: t.PreviousAgentID}, nil
}

func (g *grpcServer) RemoveFromQueue(ctx context.Context, req *routingv1.RemoveFromQueueRequest) (*routingv1.RemoveFromQueueResponse, error) {
	removed, err := g.s.removeFromQueue(ctx, req.GetSessionId())
	if err != nil {
		return nil, err
	}
	return &routingv1.RemoveFromQueueResponse{Removed: removed}, nil
}

func (g *grpcServer) GetQueuePosition(ctx context.Context, req *routingv1.GetQueuePositionRequest) (*routingv1.GetQueuePositionResponse, error) {
	p, err := g.s.queuePosition(ctx, req.GetSessionId())
	if err != nil {
		return nil, err
	}
	res := &routingv1.GetQueuePositionResponse{Queued: p.Queued, Group: p.Group, QueuePosition: p.Position, QueueLength: p.Length, AgentId: p.AgentID}
	if p.Queued {
		res.EnqueuedAt = timestamppb.New(p.EnqueuedAt)
	}
	return res, nil
}

func (g *grpcServer) ListQueues(ctx context.Context, _ *routingv1.ListQueuesRequest) (*routingv1.ListQueuesResponse, error) {
	qs, err := g.s.queues(ctx)
	if err != nil {
		return nil, err
	}
	res := &routingv1.ListQueuesResponse{Queues: make([]*routingv1.QueueStats, len(qs))}
	for i, q := range qs {
		res.Queues[i] = &routingv1.QueueStats{Group: q.Group, Length: q.Length}
		if !q.Oldest.IsZero() {
			res.Queues[i].OldestEnqueuedAt = timestamppb.New(q.Oldest)
		}
	}
	return res, nil
}

func (g *grpcServer) UpsertAgent(ctx context.Context, req *routingv1.UpsertAgentRequest) (*routingv1.UpsertAgentResponse, error) {
	a, err := g.s.upsertAgent(ctx, agentProfile{AgentID: req.GetAgentId(), MaxSessions: int(req.GetMaxSessions()), Groups: req.GetGroups()})
	if err != nil {
		return nil, err
	}
	return &routingv1.UpsertAgentResponse{State: agentToProto(a)}, nil
}

func (g *grpcServer) ListAgents(ctx context.Context, req *routingv1.ListAgentsRequest) (*routingv1.ListAgentsResponse, error) {
	agents, err := g.s.listAgents(ctx, req.GetGroup())
	if err != nil {
		return nil, err
	}
	res := &routingv1.ListAgentsResponse{Agents: make([]*routingv1.AgentState, len(agents))}
	for i, a := range agents {
		res.Agents[i] = agentToProto(a)
	}
	return res, nil
}

func (g *grpcServer) SetAgentStatus(ctx context.Context, req *routingv1.SetAgentStatusRequest) (*routingv1.SetAgentStatusResponse, error) {
	st, ok := statusFromProto[req.GetStatus()]
	if !ok {
		return nil, fault.Invalid("status", "invalid_status", "status must be online, away or offline")
	}
	c, err := g.s.setAgentStatus(ctx, req.GetAgentId(), st)
	if err != nil {
		return nil, err
	}
	return &routingv1.SetAgentStatusResponse{State: agentToProto(c.Agent), ReleasedSessionIds: c.Released}, nil
}

func (g *grpcServer) GetAgentStatus(ctx context.Context, req *routingv1.GetAgentStatusRequest) (*routingv1.GetAgentStatusResponse, error) {
	a, err := g.s.agentState(ctx, req.GetAgentId())
	if err != nil {
		return nil, err
	}
	return &routingv1.GetAgentStatusResponse{State: agentToProto(a)}, nil
}

func (g *grpcServer) AgentConnected(ctx context.Context, req *routingv1.AgentConnectedRequest) (*routingv1.AgentConnectedResponse, error) {
	a, err := g.s.agentConnected(ctx, req.GetAgentId(), req.GetConnectionId())
	if err != nil {
		return nil, err
	}
	return &routingv1.AgentConnectedResponse{State: agentToProto(a)}, nil
}

func (g *grpcServer) AgentDisconnected(ctx context.Context, req *routingv1.AgentDisconnectedRequest) (*routingv1.AgentDisconnectedResponse, error) {
	if err := g.s.agentDisconnected(ctx, req.GetAgentId(), req.GetConnectionId()); err != nil {
		return nil, err
	}
	return &routingv1.AgentDisconnectedResponse{}, nil
}

func groupToProto(gr group) *routingv1.Group {
	return &routingv1.Group{Name: gr.Name, CreatedAt: timestamppb.New(gr.CreatedAt)}
}

func (g *grpcServer) CreateGroup(ctx context.Context, req *routingv1.CreateGroupRequest) (*routingv1.CreateGroupResponse, error) {
	gr, err := g.s.createGroup(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &routingv1.CreateGroupResponse{Group: groupToProto(gr)}, nil
}

func (g *grpcServer) ListGroups(ctx context.Context, _ *routingv1.ListGroupsRequest) (*routingv1.ListGroupsResponse, error) {
	groups, err := g.s.listGroups(ctx)
	if err != nil {
		return nil, err
	}
	res := &routingv1.ListGroupsResponse{Groups: make([]*routingv1.Group, len(groups))}
	for i, gr := range groups {
		res.Groups[i] = groupToProto(gr)
	}
	return res, nil
}

func rulesToProto(rs []rules.Rule) []*routingv1.RoutingRule {
	out := make([]*routingv1.RoutingRule, len(rs))
	for i, r := range rs {
		out[i] = &routingv1.RoutingRule{Condition: r.Condition, Action: r.Action}
	}
	return out
}

func rulesFromProto(rs []*routingv1.RoutingRule) []rules.Rule {
	out := make([]rules.Rule, len(rs))
	for i, r := range rs {
		out[i] = rules.Rule{Condition: r.GetCondition(), Action: r.GetAction()}
	}
	return out
}

func (g *grpcServer) GetRules(ctx context.Context, req *routingv1.GetRulesRequest) (*routingv1.GetRulesResponse, error) {
	rs, err := g.s.getRules(ctx, req.GetVersion())
	if err != nil {
		return nil, err
	}
	res := &routingv1.GetRulesResponse{Version: rs.Version, Rules: rulesToProto(rs.Rules), UpdatedBy: rs.UpdatedBy}
	if !rs.UpdatedAt.IsZero() {
		res.UpdatedAt = timestamppb.New(rs.UpdatedAt)
	}
	return res, nil
}

func (g *grpcServer) PutRules(ctx context.Context, req *routingv1.PutRulesRequest) (*routingv1.PutRulesResponse, error) {
	v, err := g.s.putRules(ctx, rulesFromProto(req.GetRules()), req.GetUpdatedBy())
	if err != nil {
		return nil, err
	}
	return &routingv1.PutRulesResponse{Version: v}, nil
}

func (g *grpcServer) ListRuleVersions(ctx context.Context, req *routingv1.ListRuleVersionsRequest) (*routingv1.ListRuleVersionsResponse, error) {
	vs, err := g.s.listRuleVersions(ctx, int(req.GetLimit()))
	if err != nil {
		return nil, err
	}
	res := &routingv1.ListRuleVersionsResponse{Versions: make([]*routingv1.RuleVersion, len(vs))}
	for i, v := range vs {
		res.Versions[i] = &routingv1.RuleVersion{Version: v.Version, RuleCount: int32(len(v.Rules)), UpdatedAt: timestamppb.New(v.UpdatedAt), UpdatedBy: v.UpdatedBy}
	}
	return res, nil
}

func (g *grpcServer) TestRules(ctx context.Context, req *routingv1.TestRulesRequest) (*routingv1.TestRulesResponse, error) {
	in := rules.Input{
		Profile: req.GetProfile().AsMap(), Channel: req.GetChannel(), PageURL: req.GetPageUrl(),
		DepartmentID: req.GetDepartmentId(), Intent: req.GetIntent(), PreviousSessions: req.GetPreviousSessions(),
		LastAgentID: req.GetLastAgentId(), LastGroup: req.GetLastGroup(), Priority: int(req.GetPriority()),
	}
	if req.GetAt() != nil {
		in.Time = req.GetAt().AsTime()
	}
	var draft []rules.Rule
	if req.GetDraft() != nil {
		draft = rulesFromProto(req.GetDraft().GetRules())
	}
	t, err := g.s.testRules(ctx, in, draft)
	if err != nil {
		return nil, err
	}
	d := t.Decision
	res := &routingv1.TestRulesResponse{
		Matched: d.Index >= 0, RuleIndex: int32(d.Index), Action: d.Action.String(), RulesVersion: t.RulesVersion,
		ParsedAction: &routingv1.RuleAction{Kind: string(d.Action.Kind), Group: d.Action.Group, AgentId: d.Action.AgentID, Priority: int32(d.Action.Priority)},
	}
	for _, tr := range d.Trace {
		res.Trace = append(res.Trace, &routingv1.RuleTrace{RuleIndex: int32(tr.Index), Matched: tr.Matched, Error: tr.Err})
	}
	return res, nil
}
