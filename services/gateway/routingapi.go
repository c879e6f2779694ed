package gateway

import (
	"net/http"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/helmdesk/helmdesk/pkg/fault"
	routingv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/routing/v1"
)

// The routing service owns groups, rules and queues; these handlers translate JSON
// and check access, nothing more.

func (g *Gateway) handleListGroups(w http.ResponseWriter, r *http.Request, _ Principal) error {
	res, err := g.routing.ListGroups(r.Context(), &routingv1.ListGroupsRequest{})
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(res.GetGroups()))
	for _, grp := range res.GetGroups() {
		out = append(out, map[string]any{"name": grp.GetName(), "created_at": grp.GetCreatedAt().AsTime()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"groups": out})
	return nil
}

func (g *Gateway) handleCreateGroup(w http.ResponseWriter, r *http.Request, p Principal) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	res, err := g.routing.CreateGroup(r.Context(), &routingv1.CreateGroupRequest{Name: req.Name})
	if err != nil {
		return err
	}
	g.audit(r, p, "group.create", "group", res.GetGroup().GetName(), nil, map[string]any{"name": res.GetGroup().GetName()})
	writeJSON(w, http.StatusCreated, map[string]any{"name": res.GetGroup().GetName(), "created_at": res.GetGroup().GetCreatedAt().AsTime()})
	return nil
}

// ruleJSON is one rule in the public format.
type ruleJSON struct {
	Condition string `json:"condition"`
	Action    string `json:"action"`
}

func rulesFromProto(rs []*routingv1.RoutingRule) []ruleJSON {
	out := make([]ruleJSON, len(rs))
	for i, x := range rs {
		out[i] = ruleJSON{Condition: x.GetCondition(), Action: x.GetAction()}
	}
	return out
}

func rulesToProto(rs []ruleJSON) []*routingv1.RoutingRule {
	out := make([]*routingv1.RoutingRule, len(rs))
	for i, x := range rs {
		out[i] = &routingv1.RoutingRule{Condition: x.Condition, Action: x.Action}
	}
	return out
}

func (g *Gateway) handleGetRules(w http.ResponseWriter, r *http.Request, _ Principal) error {
	var version int64
	if v := r.URL.Query().Get("version"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return fault.Invalid("version", "invalid_version", "version must be a positive whole number")
		}
		version = n
	}
	res, err := g.routing.GetRules(r.Context(), &routingv1.GetRulesRequest{Version: version})
	if err != nil {
		return err
	}
	out := map[string]any{"routing_rules": rulesFromProto(res.GetRules()), "version": res.GetVersion(), "updated_by": res.GetUpdatedBy()}
	if res.GetUpdatedAt() != nil {
		out["updated_at"] = res.GetUpdatedAt().AsTime()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (g *Gateway) handlePutRules(w http.ResponseWriter, r *http.Request, p Principal) error {
	var req struct {
		RoutingRules *[]ruleJSON `json:"routing_rules"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.RoutingRules == nil {
		return fault.Invalid("routing_rules", "missing_rules", `the body must be {"routing_rules":[{"condition":…,"action":…}]}`)
	}
	before, err := g.routing.GetRules(r.Context(), &routingv1.GetRulesRequest{})
	if err != nil {
		return err
	}
	res, err := g.routing.PutRules(r.Context(), &routingv1.PutRulesRequest{Rules: rulesToProto(*req.RoutingRules), UpdatedBy: p.UserID})
	if err != nil {
		return err
	}
	g.audit(r, p, "routing.rules_update", "routing_rules", strconv.FormatInt(res.GetVersion(), 10),
		map[string]any{"version": before.GetVersion(), "rules": rulesSummary(rulesFromProto(before.GetRules()))},
		map[string]any{"version": res.GetVersion(), "rules": rulesSummary(*req.RoutingRules)})
	writeJSON(w, http.StatusOK, map[string]any{"routing_rules": *req.RoutingRules, "version": res.GetVersion()})
	return nil
}

func rulesSummary(rs []ruleJSON) []any {
	out := make([]any, len(rs))
	for i, x := range rs {
		out[i] = map[string]any{"condition": x.Condition, "action": x.Action}
	}
	return out
}

func (g *Gateway) handleRuleVersions(w http.ResponseWriter, r *http.Request, _ Principal) error {
	res, err := g.routing.ListRuleVersions(r.Context(), &routingv1.ListRuleVersionsRequest{Limit: 100})
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(res.GetVersions()))
	for _, v := range res.GetVersions() {
		out = append(out, map[string]any{"version": v.GetVersion(), "rule_count": v.GetRuleCount(), "updated_at": v.GetUpdatedAt().AsTime(), "updated_by": v.GetUpdatedBy()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": out})
	return nil
}

// handleTestRules evaluates a routing context against the rules in force (or a
// draft) without assigning anything.
func (g *Gateway) handleTestRules(w http.ResponseWriter, r *http.Request, _ Principal) error {
	var req struct {
		Profile          map[string]any `json:"profile"`
		Channel          string         `json:"channel"`
		PageURL          string         `json:"page_url"`
		DepartmentID     string         `json:"department_id"`
		Intent           string         `json:"intent"`
		LastAgentID      string         `json:"last_agent_id"`
		LastGroup        string         `json:"last_group"`
		PreviousSessions int64          `json:"previous_sessions"`
		Priority         int32          `json:"priority"`
		At               *time.Time     `json:"at"`
		RoutingRules     *[]ruleJSON    `json:"routing_rules"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	profile, err := structpb.NewStruct(req.Profile)
	if err != nil {
		return fault.Invalid("profile", "invalid_profile", "profile must be a JSON object")
	}
	treq := &routingv1.TestRulesRequest{Channel: req.Channel, PageUrl: req.PageURL, Profile: profile, LastAgentId: req.LastAgentID, DepartmentId: req.DepartmentID,
		Intent: req.Intent, PreviousSessions: req.PreviousSessions, LastGroup: req.LastGroup, Priority: req.Priority}
	if req.At != nil {
		treq.At = timestamppb.New(*req.At)
	}
	if req.RoutingRules != nil {
		treq.Draft = &routingv1.RuleSet{Rules: rulesToProto(*req.RoutingRules)}
	}
	res, err := g.routing.TestRules(r.Context(), treq)
	if err != nil {
		return err
	}
	trace := make([]map[string]any, 0, len(res.GetTrace()))
	for _, t := range res.GetTrace() {
		e := map[string]any{"rule_index": t.GetRuleIndex(), "matched": t.GetMatched()}
		if t.GetError() != "" {
			e["error"] = t.GetError()
		}
		trace = append(trace, e)
	}
	pa := res.GetParsedAction()
	writeJSON(w, http.StatusOK, map[string]any{
		"matched": res.GetMatched(), "rule_index": res.GetRuleIndex(), "action": res.GetAction(), "rules_version": res.GetRulesVersion(),
		"parsed_action": map[string]any{"kind": pa.GetKind(), "group": pa.GetGroup(), "agent_id": pa.GetAgentId(), "priority": pa.GetPriority()},
		"trace":         trace,
	})
	return nil
}

func (g *Gateway) handleListQueues(w http.ResponseWriter, r *http.Request, _ Principal) error {
	res, err := g.routing.ListQueues(r.Context(), &routingv1.ListQueuesRequest{})
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(res.GetQueues()))
	for _, q := range res.GetQueues() {
		e := map[string]any{"group": q.GetGroup(), "length": q.GetLength()}
		if q.GetOldestEnqueuedAt() != nil {
			e["oldest_enqueued_at"] = q.GetOldestEnqueuedAt().AsTime()
		}
		out = append(out, e)
	}
	writeJSON(w, http.StatusOK, map[string]any{"queues": out})
	return nil
}
