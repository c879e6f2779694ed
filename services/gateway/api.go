package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/helmdesk/helmdesk/pkg/auth"
	"github.com/helmdesk/helmdesk/pkg/fault"
	"github.com/helmdesk/helmdesk/pkg/frames"
	"github.com/helmdesk/helmdesk/pkg/store"
	routingv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/routing/v1"
	sessionv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/session/v1"
	"github.com/helmdesk/helmdesk/services/session"
)

// access says who may call a route.
type access int

const (
	public       access = iota // anyone
	anyUser                    // any signed-in user
	adminOnly                  // admins
	staff                      // admins and supervisors
	userOrClient               // any user, or the customer of the session in the path
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
		{"POST /api/v1/setup", public, g.handleSetup},
		{"GET /api/v1/setup", public, g.handleSetupState},
		{"POST /api/v1/auth/login", public, g.handleLogin},
		{"POST /api/v1/auth/logout", anyUser, g.handleLogout},
		{"GET /api/v1/me", anyUser, g.handleMe},
		{"GET /api/v1/agents", staff, g.handleListAgents},
		{"POST /api/v1/agents", adminOnly, g.handleCreateAgent},
		{"PUT /api/v1/agents/{id}/status", anyUser, g.handleSetStatus},
		{"GET /api/v1/agents/online_status", anyUser, g.handleOnlineStatus},
		{"POST /api/v1/customer/sessions", public, g.handleCustomerSession},
		{"GET /api/v1/sessions", anyUser, g.handleListSessions},
		{"GET /api/v1/sessions/{id}", userOrClient, g.handleGetSession},
		{"GET /api/v1/sessions/{id}/messages", userOrClient, g.handleMessages},
		{"GET /api/v1/customer/ws", public, g.handleCustomerSocket},
		{"GET /api/v1/agent/ws", public, g.handleAgentSocket},
	}
}

func (g *Gateway) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range g.routeTable() {
		mux.Handle(rt.pattern, g.guard(rt))
	}
	mux.Handle("/api/", notFoundHandler(g))
	g.rt.Mount(mux)
	return g.instrument(mux)
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

var errForbidden = fault.New(fault.PermissionDenied, "forbidden", "your role does not allow this")

// guard authenticates and authorises a request before its handler runs.
func (g *Gateway) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p Principal
		if rt.access != public {
			var err error
			p, err = g.identity.authenticate(r.Context(), bearer(r))
			if err == nil {
				err = authorize(rt.access, p, r)
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

func authorize(a access, p Principal, r *http.Request) error {
	isUser := p.Kind == tokenUser
	switch a {
	case anyUser:
		if !isUser {
			return errForbidden
		}
	case adminOnly:
		if !isUser || p.Role != auth.RoleAdmin {
			return errForbidden
		}
	case staff:
		if !isUser || (p.Role != auth.RoleAdmin && p.Role != auth.RoleSupervisor) {
			return errForbidden
		}
	case userOrClient:
		if !isUser && p.SessionID != r.PathValue("id") {
			return fault.New(fault.NotFound, "session_not_found", "session %s does not exist", r.PathValue("id"))
		}
	}
	return nil
}

// canReadSession applies object-level access: customers their own session, agents
// the sessions assigned to them, other roles every session.
func canReadSession(p Principal, s *sessionv1.Session) bool {
	switch {
	case p.Kind == tokenCustomer:
		return p.SessionID == s.GetId()
	case p.Role == auth.RoleAgent:
		return s.GetAgentId() == p.UserID
	default:
		return true
	}
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
	token, exp, err := g.identity.issue(r.Context(), tokenUser, admin.ID, admin.Role, g.cfg.UserTokenTTL)
	if err != nil {
		return err
	}
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

func (g *Gateway) handleLogin(w http.ResponseWriter, r *http.Request, _ Principal) error {
	var req loginRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Email == "" || req.Password == "" {
		return fault.New(fault.InvalidArgument, "missing_credentials", "email and password are required")
	}
	if len(req.Password) > 4*auth.MaxPasswordLen {
		return errBadCredentials
	}
	email := strings.ToLower(strings.TrimSpace(req.Email))
	u, err := g.identity.userByEmail(r.Context(), email)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			// Spend the same time as a real check so timing does not reveal accounts.
			_ = auth.VerifyPassword(dummyHash, req.Password)
			return errBadCredentials
		}
		return err
	}
	if err := auth.VerifyPassword(u.PasswordHash, req.Password); err != nil || u.Disabled {
		return errBadCredentials
	}
	token, exp, err := g.identity.issue(r.Context(), tokenUser, u.ID, u.Role, g.cfg.UserTokenTTL)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": token, "expires_at": exp, "user": u})
	return nil
}

// dummyHash is verified against when the account does not exist.
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$H3kG3i2wQ8b5X6c1rFQ2w6Jx0d4o7v5mKjz2m5bJ4nY"

func (g *Gateway) handleLogout(w http.ResponseWriter, r *http.Request, _ Principal) error {
	if err := g.identity.revoke(r.Context(), bearer(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (g *Gateway) handleMe(w http.ResponseWriter, r *http.Request, p Principal) error {
	u, err := g.identity.userByID(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

// --- agents ---

type createAgentRequest struct {
	Email       string   `json:"email"`
	Password    string   `json:"password"`
	Name        string   `json:"name"`
	Role        string   `json:"role"`
	MaxSessions *int     `json:"max_sessions"`
	Groups      []string `json:"groups"`
}

func (g *Gateway) handleCreateAgent(w http.ResponseWriter, r *http.Request, _ Principal) error {
	var req createAgentRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	email, err := normalizeEmail(req.Email)
	if err != nil {
		return err
	}
	name, err := validateName("name", req.Name)
	if err != nil {
		return err
	}
	role := auth.RoleAgent
	if req.Role != "" {
		role = auth.Role(req.Role)
		if !role.Valid() {
			return fault.Invalid("role", "invalid_role", "role must be one of admin, supervisor, agent, qa")
		}
	}
	maxSessions := 5
	if req.MaxSessions != nil {
		maxSessions = *req.MaxSessions
	}
	if maxSessions < 1 || maxSessions > 100 {
		return fault.Invalid("max_sessions", "invalid_max_sessions", "max_sessions must be between 1 and 100")
	}
	u, err := g.identity.createUser(r.Context(), User{Email: email, Name: name, Role: role, MaxSessions: maxSessions, Groups: req.Groups}, req.Password)
	if err != nil {
		return err
	}
	if _, err := g.routing.UpsertAgent(r.Context(), &routingv1.UpsertAgentRequest{AgentId: u.ID, MaxSessions: int32(maxSessions), Groups: req.Groups}); err != nil {
		// Keep identity and routing consistent: an agent routing does not know is no agent.
		_ = g.identity.deleteUser(context.WithoutCancel(r.Context()), u.ID)
		return err
	}
	writeJSON(w, http.StatusCreated, u)
	return nil
}

func (g *Gateway) handleListAgents(w http.ResponseWriter, r *http.Request, _ Principal) error {
	users, err := g.identity.listUsers(r.Context(), "")
	if err != nil {
		return err
	}
	if users == nil {
		users = []User{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"agents": users})
	return nil
}

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
	return p.UserID == agentID || p.Role == auth.RoleAdmin || p.Role == auth.RoleSupervisor
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
	res, err := g.sessions.CreateSession(r.Context(), &sessionv1.CreateSessionRequest{UserId: req.UserID, Channel: req.Channel, PageUrl: req.PageURL, Profile: profile})
	if err != nil {
		return err
	}
	sess := res.GetSession()
	token, exp, err := g.identity.issue(r.Context(), tokenCustomer, sess.GetId(), "", g.cfg.CustomerTokenTTL)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"session_id": sess.GetId(), "customer_token": token, "expires_at": exp,
		"status": session.StatusName(sess.GetStatus()), "agent_id": sess.GetAgentId(),
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
	ClosedAt   *time.Time     `json:"closed_at,omitempty"`
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
	req := &sessionv1.ListSessionsRequest{AgentId: q.Get("agent_id"), Limit: 100}
	if p.Role == auth.RoleAgent {
		if req.AgentId != "" && req.AgentId != p.UserID {
			return errForbidden
		}
		req.AgentId = p.UserID
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
		out = append(out, toSessionJSON(s))
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out})
	return nil
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
	p, err := g.identity.authenticate(r.Context(), bearer(r))
	if err != nil {
		return err
	}
	if p.Kind != tokenCustomer {
		return fault.New(fault.PermissionDenied, "customer_token_required", "this socket is for customers; agents use /api/v1/agent/ws")
	}
	g.serveSocket(w, r, p, false)
	return nil
}

func (g *Gateway) handleAgentSocket(w http.ResponseWriter, r *http.Request, _ Principal) error {
	p, err := g.identity.authenticate(r.Context(), bearer(r))
	if err != nil {
		return err
	}
	if p.Kind != tokenUser {
		return fault.New(fault.PermissionDenied, "user_token_required", "this socket is for agents; customers use /api/v1/customer/ws")
	}
	g.serveSocket(w, r, p, true)
	return nil
}
