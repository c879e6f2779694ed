package gateway

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/helmdesk/helmdesk/pkg/auth"
	"github.com/helmdesk/helmdesk/pkg/fault"
	"github.com/helmdesk/helmdesk/pkg/frames"
	routingv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/routing/v1"
	sessionv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/session/v1"
	"github.com/helmdesk/helmdesk/services/session"
)

// route is one entry of the API's route table; the table is the single place where
// access is declared, and tests walk it.
type route struct {
	pattern string
	access  access
	handle  func(w http.ResponseWriter, r *http.Request, p Principal) error
}

func (g *Gateway) routeTable() []route {
	return []route{
		// setup and sign-in
		{"POST /api/v1/setup", public, g.handleSetup},
		{"GET /api/v1/setup", public, g.handleSetupState},
		{"POST /api/v1/auth/login", public, g.handleLogin},
		{"POST /api/v1/auth/logout", anyUser, g.handleLogout},
		{"GET /api/v1/auth/sessions", need(PermAuthSessions), g.handleListSignIns},
		{"DELETE /api/v1/auth/sessions/{id}", need(PermAuthSessions), g.handleRevokeSignIn},
		{"GET /api/v1/me", anyUser, g.handleMe},
		{"GET /api/v1/roles", need(PermAgentsRead), g.handleListRoles},
		{"POST /api/v1/roles", need(PermRolesManage), g.handleCreateRole},
		{"GET /api/v1/permissions", anyUser, g.handleListPermissions},
		{"POST /api/v1/api_keys", need(PermAPIKeysManage), g.handleCreateAPIKey},
		{"GET /api/v1/api_keys", need(PermAPIKeysManage), g.handleListAPIKeys},
		{"DELETE /api/v1/api_keys/{id}", need(PermAPIKeysManage), g.handleRevokeAPIKey},
		{"GET /api/v1/audit_logs", need(PermAuditRead), g.handleListAudit},
		{"GET /api/v1/audit_logs/export", need(PermAuditExport), g.handleExportAudit},
		{"GET /api/v1/audit_logs/verify", need(PermAuditRead), g.handleVerifyAudit},
		// agents, groups, presence, routing
		{"GET /api/v1/agents", need(PermAgentsRead), g.handleListAgents},
		{"POST /api/v1/agents", need(PermAgentsManage), g.handleCreateAgent},
		{"POST /api/v1/agents/import", need(PermAgentsManage), g.handleImportAgents},
		{"GET /api/v1/agents/online_status", anyUser, g.handleOnlineStatus},
		{"GET /api/v1/agents/{id}", need(PermAgentsRead), g.handleGetAgent},
		{"PATCH /api/v1/agents/{id}", anyUser, g.handlePatchAgent},
		{"PUT /api/v1/agents/{id}/status", anyUser, g.handleSetStatus},
		{"GET /api/v1/groups", need(PermGroupsRead), g.handleListGroups},
		{"POST /api/v1/groups", need(PermGroupsManage), g.handleCreateGroup},
		{"GET /api/v1/routing/rules", need(PermRoutingRead), g.handleGetRules},
		{"PUT /api/v1/routing/rules", need(PermRoutingManage), g.handlePutRules},
		{"GET /api/v1/routing/rules/versions", need(PermRoutingRead), g.handleRuleVersions},
		{"POST /api/v1/routing/test", need(PermRoutingRead), g.handleTestRules},
		{"GET /api/v1/routing/queues", need(PermQueuesRead), g.handleListQueues},
		// conversations
		{"POST /api/v1/customer/sessions", public, g.handleCustomerSession},
		{"GET /api/v1/sessions", anyUser, g.handleListSessions},
		{"GET /api/v1/sessions/{id}", userOrClient, g.handleGetSession},
		{"GET /api/v1/sessions/{id}/messages", userOrClient, g.handleMessages},
		{"GET /api/v1/sessions/{id}/customer_sessions", anyUser, g.handleCustomerSessions},
		{"POST /api/v1/sessions/{id}/close", userOrClient, g.handleClose},
		{"POST /api/v1/sessions/{id}/transfer", anyUser, g.handleTransfer},
		{"POST /api/v1/sessions/{id}/csat", customerOnly, g.handleCSAT},
		{"POST /api/v1/sessions/{id}/reviews", need(PermReviewsWrite), g.handleAddReview},
		{"GET /api/v1/sessions/{id}/reviews", need(PermReviewsRead), g.handleListReviews},
		{"GET " + customerSocketPath, public, g.handleCustomerSocket},
		{"GET " + agentSocketPath, public, g.handleAgentSocket},
		{"GET /api/v1/customers", need(PermCustomersRead), g.handleFindCustomers},
		{"DELETE /api/v1/customers/{id}", need(PermCustomersErase), g.handleEraseCustomer},
		// channels
		{"GET /api/v1/channels", need(PermChannelsRead), g.handleListChannels},
		{"POST /api/v1/channels", need(PermChannelsManage), g.handleCreateChannel},
		{"GET /api/v1/channels/{id}", need(PermChannelsRead), g.handleGetChannel},
		{"PATCH /api/v1/channels/{id}", need(PermChannelsManage), g.handlePatchChannel},
		{"GET /api/v1/channels/by_key/{key}/widget", public, g.handleWidgetConfig},
	}
}

func (g *Gateway) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range g.routeTable() {
		mux.Handle(rt.pattern, g.guard(rt))
	}
	mux.Handle("/api/", notFoundHandler(g))
	g.rt.Mount(mux)
	g.mountConsole(mux)
	return withCORS(g.instrument(mux))
}

// bearer extracts the request's token from the Authorization header, or for
// WebSocket upgrades (browsers cannot set headers there) the access_token parameter.
func bearer(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return r.URL.Query().Get("access_token")
	}
	return ""
}

// guard authenticates and authorises a request before its handler runs.
func (g *Gateway) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p Principal
		if rt.access != public {
			var err error
			p, err = g.identity.authenticate(r.Context(), bearer(r))
			if err == nil {
				err = authorize(rt.access, p, r)
				if fault.Is(err, fault.PermissionDenied) {
					g.auditDenied(r, p, rt.pattern)
				}
			}
			if err != nil {
				g.writeError(w, r, err)
				return
			}
		}
		if err := rt.handle(w, r, p); err != nil {
			g.writeError(w, r, err)
		}
	})
}

// --- setup and sign-in ---

type setupRequest struct {
	Organization string `json:"organization"`
	Admin        struct {
		Email    string `json:"email"`
		Password string `json:"password"`
		Name     string `json:"name"`
	} `json:"admin"`
}

func (g *Gateway) handleSetup(w http.ResponseWriter, r *http.Request, _ Principal) error {
	var req setupRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	orgName, err := validateName("organization", req.Organization)
	if err != nil {
		return err
	}
	email, err := normalizeEmail(req.Admin.Email)
	if err != nil {
		err.(*fault.Error).Field = "admin.email"
		return err
	}
	name, err := validateName("admin.name", req.Admin.Name)
	if err != nil {
		return err
	}
	org, admin, err := g.identity.setup(r.Context(), orgName, User{Email: email, Name: name, Role: auth.RoleAdmin}, req.Admin.Password)
	if err != nil {
		if fe := fault.As(err); fe.Field == "password" {
			fe.Field = "admin.password"
		}
		return err
	}
	token, exp, err := g.identity.issue(r.Context(), tokenUser, admin.ID, admin.Role, g.cfg.UserTokenTTL, r)
	if err != nil {
		return err
	}
	g.audit(r, Principal{Kind: tokenUser, UserID: admin.ID, Name: admin.Email}, "setup.complete", "organization", org.ID, nil, map[string]any{"organization": org.Name, "admin_email": admin.Email})
	writeJSON(w, http.StatusCreated, map[string]any{"organization": org, "admin": admin, "token": token, "expires_at": exp})
	return nil
}

func (g *Gateway) handleSetupState(w http.ResponseWriter, r *http.Request, _ Principal) error {
	_, done, err := g.identity.organization(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"setup_done": done})
	return nil
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

var errBadCredentials = fault.New(fault.Unauthenticated, "invalid_credentials", "the email or password is wrong")

func (g *Gateway) handleMe(w http.ResponseWriter, r *http.Request, p Principal) error {
	u, err := g.identity.userByID(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

// --- agents ---

var agentStatuses = map[string]routingv1.AgentStatus{
	"online":  routingv1.AgentStatus_AGENT_STATUS_ONLINE,
	"away":    routingv1.AgentStatus_AGENT_STATUS_AWAY,
	"offline": routingv1.AgentStatus_AGENT_STATUS_OFFLINE,
}

func statusName(st routingv1.AgentStatus) string {
	for k, v := range agentStatuses {
		if v == st {
			return k
		}
	}
	return "offline"
}

// mayActOnAgent: users act on themselves; admins and supervisors on anyone.
func mayActOnAgent(p Principal, agentID string) bool {
	return (p.Kind == tokenUser && p.UserID == agentID) || p.Has(PermAgentsStatus)
}

func (g *Gateway) handleSetStatus(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if !mayActOnAgent(p, id) {
		return errForbidden
	}
	var req struct {
		Status string `json:"status"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	st, ok := agentStatuses[req.Status]
	if !ok {
		return fault.Invalid("status", "invalid_status", "status must be online, away or offline")
	}
	if _, err := g.identity.userByID(r.Context(), id); err != nil {
		return err
	}
	res, err := g.routing.SetAgentStatus(r.Context(), &routingv1.SetAgentStatusRequest{AgentId: id, Status: st})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, agentStateJSON(res.GetState()))
	return nil
}

func agentStateJSON(s *routingv1.AgentState) map[string]any {
	return map[string]any{"agent_id": s.GetAgentId(), "status": statusName(s.GetStatus()), "current_session_count": s.GetCurrentSessionCount()}
}

func (g *Gateway) handleOnlineStatus(w http.ResponseWriter, r *http.Request, p Principal) error {
	id := r.URL.Query().Get("agent_id")
	if id == "" || len(id) > 64 {
		return fault.Invalid("agent_id", "invalid_agent_id", "agent_id query parameter is required")
	}
	res, err := g.routing.GetAgentStatus(r.Context(), &routingv1.GetAgentStatusRequest{AgentId: id})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, agentStateJSON(res.GetState()))
	return nil
}

// --- customers and sessions ---

type customerSessionRequest struct {
	UserID  string         `json:"user_id"`
	Profile map[string]any `json:"profile"`
	PageURL string         `json:"page_url"`
	Channel string         `json:"channel"`
	// ChannelKey is the widget's channel key; when set, the session's channel is that
	// channel's type.
	ChannelKey string `json:"channel_key"`
}

func (g *Gateway) handleCustomerSession(w http.ResponseWriter, r *http.Request, _ Principal) error {
	var req customerSessionRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.UserID == "" {
		return fault.Invalid("user_id", "invalid_user_id", "user_id is required (the site's id for the customer, or an anonymous visitor id)")
	}
	profile, err := structpb.NewStruct(req.Profile)
	if err != nil {
		return fault.Invalid("profile", "invalid_profile", "profile must be a JSON object")
	}
	if req.ChannelKey != "" {
		if req.Channel, err = g.resolveChannelKey(r.Context(), req.ChannelKey); err != nil {
			return err
		}
	}
	res, err := g.sessions.CreateSession(r.Context(), &sessionv1.CreateSessionRequest{UserId: req.UserID, Channel: req.Channel, PageUrl: req.PageURL, Profile: profile})
	if err != nil {
		return err
	}
	sess := res.GetSession()
	token, exp, err := g.identity.issue(r.Context(), tokenCustomer, sess.GetId(), "", g.cfg.CustomerTokenTTL, r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"session_id": sess.GetId(), "customer_token": token, "expires_at": exp,
		"status": session.StatusName(sess.GetStatus()), "agent_id": sess.GetAgentId(), "queue_position": sess.GetQueuePosition(),
	})
	return nil
}

type sessionJSON struct {
	ID         string         `json:"id"`
	CustomerID string         `json:"customer_id"`
	UserID     string         `json:"user_id"`
	Channel    string         `json:"channel"`
	PageURL    string         `json:"page_url"`
	Profile    map[string]any `json:"profile"`
	Status     string         `json:"status"`
	AgentID    string         `json:"agent_id"`
	Group      string         `json:"group"`
	LastSeq    int64          `json:"last_seq"`
	CreatedAt  time.Time      `json:"created_at"`
	AssignedAt *time.Time     `json:"assigned_at,omitempty"`
	// FirstResponseAt is the first agent message: FRT = first_response_at - created_at.
	FirstResponseAt *time.Time     `json:"first_response_at,omitempty"`
	ClosedAt        *time.Time     `json:"closed_at,omitempty"`
	ClosedBy        string         `json:"closed_by,omitempty"`
	CloseReason     string         `json:"close_reason,omitempty"`
	QueuePosition   int64          `json:"queue_position,omitempty"`
	CSAT            map[string]any `json:"csat,omitempty"`
}

func toSessionJSON(s *sessionv1.Session) sessionJSON {
	out := sessionJSON{
		ID: s.GetId(), CustomerID: s.GetCustomerId(), UserID: s.GetUserId(), Channel: s.GetChannel(), PageURL: s.GetPageUrl(),
		Profile: s.GetProfile().AsMap(), Status: session.StatusName(s.GetStatus()), AgentID: s.GetAgentId(), Group: s.GetGroup(),
		LastSeq: s.GetLastSeq(), CreatedAt: s.GetCreatedAt().AsTime(),
	}
	if s.GetAssignedAt() != nil {
		t := s.GetAssignedAt().AsTime()
		out.AssignedAt = &t
	}
	if s.GetClosedAt() != nil {
		t := s.GetClosedAt().AsTime()
		out.ClosedAt = &t
	}
	if s.GetFirstResponseAt() != nil {
		t := s.GetFirstResponseAt().AsTime()
		out.FirstResponseAt = &t
	}
	out.ClosedBy, out.CloseReason, out.QueuePosition = s.GetClosedBy(), s.GetCloseReason(), s.GetQueuePosition()
	if s.GetCsat() != nil {
		out.CSAT = csatJSON(s.GetCsat())
	}
	return out
}

// loadSession fetches a session and applies object-level access; a session the
// principal may not read is reported as missing, so ids cannot be probed.
func (g *Gateway) loadSession(ctx context.Context, p Principal, id string) (*sessionv1.Session, error) {
	res, err := g.sessions.GetSession(ctx, &sessionv1.GetSessionRequest{SessionId: id})
	if err != nil {
		return nil, err
	}
	if !canReadSession(p, res.GetSession()) {
		return nil, fault.New(fault.NotFound, "session_not_found", "session %s does not exist", id)
	}
	return res.GetSession(), nil
}

func (g *Gateway) handleGetSession(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	s, err := g.loadSession(r.Context(), p, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toSessionJSON(s))
	return nil
}

func (g *Gateway) handleListSessions(w http.ResponseWriter, r *http.Request, p Principal) error {
	q := r.URL.Query()
	req := &sessionv1.ListSessionsRequest{
		AgentId: q.Get("agent_id"), Group: q.Get("group"), Channel: q.Get("channel"),
		CustomerId: q.Get("customer_id"), UserId: q.Get("user_id"), Cursor: q.Get("cursor"), Limit: 50,
	}
	if !p.Has(PermSessionsReadAll) && !p.Has(PermSessionsReadTeam) {
		// Agents see the sessions assigned to them, now or before.
		if req.AgentId != "" && req.AgentId != p.UserID {
			return errForbidden
		}
		req.AgentId, req.IncludePastAgents = p.UserID, true
	}
	switch q.Get("status") {
	case "":
	case frames.StatusQueued:
		req.Status = sessionv1.Status_STATUS_QUEUED
	case frames.StatusAssigned:
		req.Status = sessionv1.Status_STATUS_ASSIGNED
	case frames.StatusClosed:
		req.Status = sessionv1.Status_STATUS_CLOSED
	default:
		return fault.Invalid("status", "invalid_status", "status must be queued, assigned or closed")
	}
	for name, dst := range map[string]**timestamppb.Timestamp{"created_from": &req.CreatedFrom, "created_to": &req.CreatedTo} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return fault.Invalid(name, "invalid_time", "%s must be an RFC 3339 time such as 2026-01-31T00:00:00Z", name)
			}
			*dst = timestamppb.New(t)
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return fault.Invalid("limit", "invalid_limit", "limit must be between 1 and 500")
		}
		req.Limit = int32(n)
	}
	res, err := g.sessions.ListSessions(r.Context(), req)
	if err != nil {
		return err
	}
	out := make([]sessionJSON, 0, len(res.GetSessions()))
	for _, s := range res.GetSessions() {
		if canReadSession(p, s) {
			out = append(out, toSessionJSON(s))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out, "next_cursor": res.GetNextCursor()})
	return nil
}

// handleCustomerSessions lists the earlier sessions of a session's customer, for the
// agent serving them.
func (g *Gateway) handleCustomerSessions(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	s, err := g.loadSession(r.Context(), p, id)
	if err != nil {
		return err
	}
	res, err := g.sessions.ListSessions(r.Context(), &sessionv1.ListSessionsRequest{CustomerId: s.GetCustomerId(), Limit: 50})
	if err != nil {
		return err
	}
	out := make([]sessionJSON, 0, len(res.GetSessions()))
	for _, x := range res.GetSessions() {
		if x.GetId() != id {
			out = append(out, toSessionJSON(x))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out})
	return nil
}

func actorOf(p Principal) *sessionv1.Actor {
	if p.Kind == tokenCustomer {
		return &sessionv1.Actor{Type: frames.SenderCustomer, Id: p.SessionID}
	}
	return &sessionv1.Actor{Type: frames.SenderAgent, Id: p.UserID}
}

func (g *Gateway) handleClose(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var req struct {
		Reason string `json:"reason"`
	}
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &req); err != nil {
			return err
		}
	}
	s, err := g.loadSession(r.Context(), p, id)
	if err != nil {
		return err
	}
	if p.Kind == tokenUser && !mayManageSession(p, s) {
		return errForbidden
	}
	res, err := g.sessions.CloseSession(r.Context(), &sessionv1.CloseSessionRequest{SessionId: id, By: actorOf(p), Reason: req.Reason})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toSessionJSON(res.GetSession()))
	return nil
}

func (g *Gateway) handleTransfer(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var req struct {
		AgentID string `json:"agent_id"`
		Group   string `json:"group"`
		Note    string `json:"note"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	s, err := g.loadSession(r.Context(), p, id)
	if err != nil {
		return err
	}
	if !mayManageSession(p, s) {
		return errForbidden
	}
	if req.AgentID != "" {
		if _, err := g.identity.userByID(r.Context(), req.AgentID); err != nil {
			return fault.Invalid("agent_id", "unknown_agent", "agent %s does not exist", req.AgentID)
		}
	}
	res, err := g.sessions.TransferSession(r.Context(), &sessionv1.TransferSessionRequest{SessionId: id, By: actorOf(p), ToAgentId: req.AgentID, ToGroup: req.Group, Note: req.Note})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toSessionJSON(res.GetSession()))
	return nil
}

func (g *Gateway) handleCSAT(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if p.Kind != tokenCustomer {
		return fault.New(fault.PermissionDenied, "customer_token_required", "only the customer of the conversation can rate it")
	}
	var req struct {
		Score   *int   `json:"score"`
		Comment string `json:"comment"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Score == nil {
		return fault.Invalid("score", "invalid_score", "score is required: a whole number from 1 to 5")
	}
	res, err := g.sessions.SubmitCSAT(r.Context(), &sessionv1.SubmitCSATRequest{SessionId: id, Score: int32(*req.Score), Comment: req.Comment})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, csatJSON(res.GetCsat()))
	return nil
}

func csatJSON(c *sessionv1.CSAT) map[string]any {
	return map[string]any{"score": c.GetScore(), "comment": c.GetComment(), "submitted_at": c.GetSubmittedAt().AsTime()}
}

func (g *Gateway) handleMessages(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var after int64
	if v := q.Get("after_seq"); v != "" {
		after, err = strconv.ParseInt(v, 10, 64)
		if err != nil || after < 0 {
			return fault.Invalid("after_seq", "invalid_after_seq", "after_seq must be a whole number, 0 or more")
		}
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		limit, err = strconv.Atoi(v)
		if err != nil || limit < 1 || limit > 500 {
			return fault.Invalid("limit", "invalid_limit", "limit must be between 1 and 500")
		}
	}
	if _, err := g.loadSession(r.Context(), p, id); err != nil {
		return err
	}
	res, err := g.sessions.ListMessages(r.Context(), &sessionv1.ListMessagesRequest{SessionId: id, AfterSeq: after, Limit: int32(limit)})
	if err != nil {
		return err
	}
	out := make([]frames.Message, len(res.GetMessages()))
	for i, m := range res.GetMessages() {
		out[i] = session.FrameFromProto(m)
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": out, "has_more": res.GetMore()})
	return nil
}

// --- sockets ---

func (g *Gateway) handleCustomerSocket(w http.ResponseWriter, r *http.Request, _ Principal) error {
	return g.openSocket(w, r, tokenCustomer, fault.New(fault.PermissionDenied, "customer_token_required", "this socket is for customers; agents use /api/v1/agent/ws"))
}

func (g *Gateway) handleAgentSocket(w http.ResponseWriter, r *http.Request, _ Principal) error {
	return g.openSocket(w, r, tokenUser, fault.New(fault.PermissionDenied, "user_token_required", "this socket is for agents; customers use /api/v1/customer/ws"))
}

// openSocket authenticates a socket request and serves the socket if the token is of
// kind: customers and agents share the guard's authentication but not its roles.
//
// Opening a socket (authentication, upgrade, subscription, greeting) takes one of a
// few setup slots, first come first served. After a gateway restart every client
// reconnects within a second or so; served all at once, each would get a sliver of
// the CPU and all would finish late together. Served in turns, the first to arrive
// are back first and the rest wait, cheaply, for a slot.
func (g *Gateway) openSocket(w http.ResponseWriter, r *http.Request, kind tokenKind, wrongKind error) error {
	resumes, err := parseResumes(r.URL.Query(), kind == tokenUser)
	if err != nil {
		return err
	}
	release, err := g.setupSlot(r.Context())
	if err != nil {
		return err
	}
	handedOver := false
	defer func() {
		if !handedOver {
			release()
		}
	}()
	start := time.Now()
	p, err := g.identity.authenticate(r.Context(), bearer(r))
	g.metrics.setupSteps.authenticate.Observe(time.Since(start).Seconds())
	if err != nil {
		return err
	}
	if p.Kind != kind {
		return wrongKind
	}
	handedOver = true
	g.serveSocket(w, r, p, kind == tokenUser, resumes, release)
	return nil
}

// setupSlot waits for a socket setup slot; the returned func gives it back (once).
func (g *Gateway) setupSlot(ctx context.Context) (func(), error) {
	start := time.Now()
	select {
	case g.setups <- struct{}{}:
	default:
		t := time.NewTimer(g.setupWait)
		defer t.Stop()
		select {
		case g.setups <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
			g.metrics.setupWait.Observe(time.Since(start).Seconds())
			return nil, fault.New(fault.Unavailable, "busy", "the server is busy opening other sockets; reconnect shortly")
		}
	}
	g.metrics.setupWait.Observe(time.Since(start).Seconds())
	var once sync.Once
	return func() { once.Do(func() { <-g.setups }) }, nil
}
