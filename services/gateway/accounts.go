package gateway

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/helmdesk/helmdesk/pkg/audit"
	"github.com/helmdesk/helmdesk/pkg/auth"
	"github.com/helmdesk/helmdesk/pkg/fault"
	"github.com/helmdesk/helmdesk/pkg/logkey"
	"github.com/helmdesk/helmdesk/pkg/store"
	routingv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/routing/v1"
)

// --- sign-in with attempt limits ---

// dummyHash is verified against when the account does not exist, so that timing does
// not reveal which e-mail addresses have accounts.
const dummyHash = "$argon2id$v=19$m=7168,t=5,p=1$c29tZXNhbHRzb21lc2FsdA$QLETTMNErZfnHJi02s/SNdtD9hK7UJn9kMCfnrAIT/g"

func lockKey(email string) string       { return "hd:auth:lock:" + email }
func failKey(email string) string       { return "hd:auth:fail:" + email }
func ipFailKey(ip string) string        { return "hd:auth:ipfail:" + ip }
func retryAfter(d time.Duration) string { return strconv.Itoa(int(d.Seconds()) + 1) }

func (g *Gateway) handleLogin(w http.ResponseWriter, r *http.Request, _ Principal) error {
	var req loginRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Email == "" || req.Password == "" {
		return fault.New(fault.InvalidArgument, "missing_credentials", "email and password are required")
	}
	ctx := r.Context()
	email := strings.ToLower(strings.TrimSpace(req.Email))
	if len(email) > 254 {
		return errBadCredentials
	}
	ip := clientIP(r)
	rdb := g.hub.rdb
	// Locked accounts and noisy addresses are refused before any password work.
	if ttl, err := rdb.PTTL(ctx, lockKey(email)).Result(); err == nil && ttl > 0 {
		w.Header().Set("Retry-After", retryAfter(ttl))
		return fault.New(fault.RateLimited, "account_locked", "too many failed sign-ins: this account is locked for %s", ttl.Round(time.Second))
	}
	if n, err := rdb.Get(ctx, ipFailKey(ip)).Int(); err == nil && n >= g.cfg.LoginMaxFailuresPerIP {
		ttl, _ := rdb.PTTL(ctx, ipFailKey(ip)).Result()
		w.Header().Set("Retry-After", retryAfter(ttl))
		return fault.New(fault.RateLimited, "too_many_attempts", "too many failed sign-ins from your address; try again later")
	}
	fail := func(reason string, userID string) error {
		pipe := rdb.TxPipeline()
		n := pipe.Incr(ctx, failKey(email))
		pipe.Expire(ctx, failKey(email), g.cfg.LoginLockout)
		pipe.Incr(ctx, ipFailKey(ip))
		pipe.Expire(ctx, ipFailKey(ip), g.cfg.LoginLockout)
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		locked := n.Val() >= int64(g.cfg.LoginMaxFailures)
		if locked {
			rdb.Set(ctx, lockKey(email), 1, g.cfg.LoginLockout)
			rdb.Del(ctx, failKey(email))
		}
		g.appendAudit(r, audit.Event{Actor: audit.Actor{Type: audit.ActorUser, ID: userID, Email: email}, Action: "auth.login_failed",
			Target: audit.Target{Type: "user", ID: userID}, Summary: map[string]any{"reason": reason, "locked": locked}, Result: audit.ResultFailure})
		return errBadCredentials
	}
	if len(req.Password) > 4*auth.MaxPasswordLen {
		return fail("password_too_long", "")
	}
	u, err := g.identity.userByEmail(ctx, email)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			_ = auth.VerifyPassword(dummyHash, req.Password)
			return fail("unknown_email", "")
		}
		return err
	}
	if err := auth.VerifyPassword(u.PasswordHash, req.Password); err != nil {
		return fail("wrong_password", u.ID)
	}
	if u.Disabled {
		return fail("account_disabled", u.ID)
	}
	rdb.Del(ctx, failKey(email))
	if auth.NeedsRehash(u.PasswordHash) {
		// Made with older hashing parameters: store a hash with the current ones while
		// the password is at hand. A failure here does not fail the sign-in.
		if err := g.identity.rehash(ctx, u, req.Password); err != nil {
			g.log.WarnContext(ctx, "upgrade password hash", slog.String(logkey.UserID, u.ID), slog.Any(logkey.Error, err))
		}
	}
	token, exp, err := g.identity.issue(ctx, tokenUser, u.ID, u.Role, g.cfg.UserTokenTTL, r)
	if err != nil {
		return err
	}
	g.appendAudit(r, audit.Event{Actor: audit.Actor{Type: audit.ActorUser, ID: u.ID, Email: u.Email}, Action: "auth.login", Target: audit.Target{Type: "user", ID: u.ID}})
	writeJSON(w, http.StatusOK, map[string]any{"token": token, "expires_at": exp, "user": u})
	return nil
}

func (g *Gateway) handleLogout(w http.ResponseWriter, r *http.Request, p Principal) error {
	if p.Kind != tokenUser {
		return fault.New(fault.InvalidArgument, "not_a_sign_in", "only sign-in tokens can be signed out; revoke API keys instead")
	}
	if _, err := g.identity.tokens.DeleteOne(r.Context(), bson.M{"_id": p.Digest}); err != nil {
		return fmt.Errorf("sign out: %w", err)
	}
	g.broadcastRevocation(r.Context(), revocation{Digest: p.Digest})
	g.audit(r, p, "auth.logout", "user", p.UserID, nil, nil)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// signIn is a listed sign-in (never its token).
type signIn struct {
	ID         string    `json:"id"`
	UserID     string    `json:"user_id"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	IP         string    `json:"ip"`
	UserAgent  string    `json:"user_agent"`
}

func (g *Gateway) handleListSignIns(w http.ResponseWriter, r *http.Request, _ Principal) error {
	q := bson.M{"kind": tokenUser}
	if uid := r.URL.Query().Get("user_id"); uid != "" {
		q["subject"] = uid
	}
	cur, err := g.identity.tokens.Find(r.Context(), q, options.Find().SetSort(bson.D{{Key: "created_at", Value: -1}}).SetLimit(500))
	if err != nil {
		return fmt.Errorf("list sign-ins: %w", err)
	}
	var docs []tokenDoc
	if err := cur.All(r.Context(), &docs); err != nil {
		return fmt.Errorf("list sign-ins: %w", err)
	}
	out := make([]signIn, 0, len(docs))
	now := time.Now()
	for _, d := range docs {
		if now.After(d.ExpiresAt) {
			continue
		}
		out = append(out, signIn{ID: d.ID, UserID: d.Subject, CreatedAt: d.CreatedAt, LastUsedAt: d.LastUsedAt, ExpiresAt: d.ExpiresAt, IP: d.IP, UserAgent: d.UserAgent})
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out})
	return nil
}

func (g *Gateway) handleRevokeSignIn(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var d tokenDoc
	if err := g.identity.tokens.FindOneAndDelete(r.Context(), bson.M{"id": id, "kind": tokenUser}).Decode(&d); err != nil {
		if errors.Is(store.NotFound(err), store.ErrNotFound) {
			return fault.New(fault.NotFound, "sign_in_not_found", "sign-in %s does not exist", id)
		}
		return fmt.Errorf("revoke sign-in: %w", err)
	}
	g.broadcastRevocation(r.Context(), revocation{Digest: d.Digest})
	g.audit(r, p, "auth.session_revoke", "user", d.Subject, nil, map[string]any{"sign_in": id})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- roles ---

func (g *Gateway) handleListRoles(w http.ResponseWriter, r *http.Request, _ Principal) error {
	roles, err := g.identity.roles.list(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"roles": roles})
	return nil
}

func (g *Gateway) handleCreateRole(w http.ResponseWriter, r *http.Request, p Principal) error {
	var req struct {
		Name        string       `json:"name"`
		Permissions []Permission `json:"permissions"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	role, err := g.identity.roles.create(r.Context(), req.Name, req.Permissions)
	if err != nil {
		return err
	}
	perms := make([]any, len(role.Permissions))
	for i, x := range role.Permissions {
		perms[i] = string(x)
	}
	g.audit(r, p, "role.create", "role", role.Name, nil, map[string]any{"permissions": perms})
	writeJSON(w, http.StatusCreated, role)
	return nil
}

func (g *Gateway) handleListPermissions(w http.ResponseWriter, _ *http.Request, p Principal) error {
	mine := []Permission{}
	for _, x := range AllPermissions {
		if p.Has(x) {
			mine = append(mine, x)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"permissions": AllPermissions, "mine": mine})
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

// agentInput validates a create request into a user; the password is checked too.
func (g *Gateway) agentInput(ctx context.Context, req createAgentRequest) (User, error) {
	email, err := normalizeEmail(req.Email)
	if err != nil {
		return User{}, err
	}
	name, err := validateName("name", req.Name)
	if err != nil {
		return User{}, err
	}
	role := auth.RoleAgent
	if req.Role != "" {
		role = auth.Role(req.Role)
		if ok, err := g.identity.roles.exists(ctx, role); err != nil {
			return User{}, err
		} else if !ok {
			return User{}, fault.Invalid("role", "invalid_role", "role must be admin, supervisor, agent, qa or a custom role")
		}
	}
	maxSessions := 5
	if req.MaxSessions != nil {
		maxSessions = *req.MaxSessions
	}
	if maxSessions < 1 || maxSessions > 100 {
		return User{}, fault.Invalid("max_sessions", "invalid_max_sessions", "max_sessions must be between 1 and 100")
	}
	if msg := auth.CheckPasswordPolicy(req.Password); msg != "" {
		return User{}, fault.Invalid("password", "weak_password", "%s", msg)
	}
	groups := slices.Clone(req.Groups)
	if groups == nil {
		groups = []string{}
	}
	return User{Email: email, Name: name, Role: role, MaxSessions: maxSessions, Groups: groups}, nil
}

// createAgent creates the account and its routing profile, or neither.
func (g *Gateway) createAgent(ctx context.Context, u User, password string) (User, error) {
	u, err := g.identity.createUser(ctx, u, password)
	if err != nil {
		return User{}, err
	}
	if _, err := g.routing.UpsertAgent(ctx, &routingv1.UpsertAgentRequest{AgentId: u.ID, MaxSessions: int32(u.MaxSessions), Groups: u.Groups}); err != nil {
		_ = g.identity.deleteUser(context.WithoutCancel(ctx), u.ID)
		return User{}, err
	}
	return u, nil
}

func userSummary(u User) map[string]any {
	groups := make([]any, len(u.Groups))
	for i, x := range u.Groups {
		groups[i] = x
	}
	return map[string]any{"email": u.Email, "name": u.Name, "role": string(u.Role), "max_sessions": u.MaxSessions, "groups": groups, "disabled": u.Disabled}
}

func (g *Gateway) handleCreateAgent(w http.ResponseWriter, r *http.Request, p Principal) error {
	var req createAgentRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	u, err := g.agentInput(r.Context(), req)
	if err != nil {
		return err
	}
	if u, err = g.createAgent(r.Context(), u, req.Password); err != nil {
		return err
	}
	g.audit(r, p, "agent.create", "user", u.ID, nil, userSummary(u))
	writeJSON(w, http.StatusCreated, u)
	return nil
}

// maxImportRows bounds one import.
const maxImportRows = 1000

type importResult struct {
	Row   int    `json:"row"`
	Email string `json:"email"`
	ID    string `json:"id,omitempty"`
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`
}

// handleImportAgents creates agents in bulk from CSV (header
// email,name,password,role,max_sessions,groups; groups separated by ';') or a JSON
// array of create bodies. Every row is validated first; if any row is bad nothing is
// created and the per-row results say why.
func (g *Gateway) handleImportAgents(w http.ResponseWriter, r *http.Request, p Principal) error {
	var rows []createAgentRequest
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	switch {
	case strings.HasPrefix(ct, "text/csv"):
		var err error
		if rows, err = parseAgentCSV(http.MaxBytesReader(w, r.Body, maxBodyBytes)); err != nil {
			return err
		}
	case ct == "" || strings.HasPrefix(ct, "application/json"):
		if err := decodeJSON(w, r, &rows); err != nil {
			return err
		}
	default:
		return fault.New(fault.InvalidArgument, "unsupported_content_type", "send text/csv or application/json")
	}
	if len(rows) == 0 {
		return fault.New(fault.InvalidArgument, "empty_import", "the import has no rows")
	}
	if len(rows) > maxImportRows {
		return fault.New(fault.TooLarge, "import_too_large", "an import has at most %d rows", maxImportRows)
	}
	ctx := r.Context()
	results := make([]importResult, len(rows))
	users := make([]User, len(rows))
	bad := false
	seen := map[string]int{}
	for i, row := range rows {
		results[i] = importResult{Row: i + 1, Email: row.Email}
		u, err := g.agentInput(ctx, row)
		if err == nil {
			if first, dup := seen[u.Email]; dup {
				err = fault.Invalid("email", "duplicate_email", "row %d has the same email", first)
			} else if _, lerr := g.identity.userByEmail(ctx, u.Email); lerr == nil {
				err = fault.New(fault.Conflict, "email_taken", "a user with email %s already exists", u.Email)
			} else if !errors.Is(lerr, store.ErrNotFound) {
				return lerr
			}
			seen[u.Email] = i + 1
		}
		if err != nil {
			fe := fault.As(err)
			results[i].Error, results[i].Code, bad = fe.Message, fe.Code, true
			continue
		}
		users[i] = u
	}
	if bad {
		writeJSON(w, http.StatusBadRequest, map[string]any{"code": "invalid_import", "message": "some rows are invalid; nothing was created", "created": 0, "results": results})
		return nil
	}
	var created []string
	for i, u := range users {
		nu, err := g.createAgent(ctx, u, rows[i].Password)
		if err != nil {
			// Undo the rows already created: an import is all or nothing.
			for _, id := range created {
				_ = g.identity.deleteUser(context.WithoutCancel(ctx), id)
			}
			return fmt.Errorf("import row %d: %w", i+1, err)
		}
		created = append(created, nu.ID)
		results[i].ID = nu.ID
	}
	g.audit(r, p, "agent.import", "user", "", nil, map[string]any{"created": len(created)})
	writeJSON(w, http.StatusCreated, map[string]any{"created": len(created), "results": results})
	return nil
}

func parseAgentCSV(body io.Reader) ([]createAgentRequest, error) {
	cr := csv.NewReader(body)
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, fault.New(fault.InvalidArgument, "invalid_csv", "the CSV has no header row")
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
	}
	for _, need := range []string{"email", "name", "password"} {
		if _, ok := col[need]; !ok {
			return nil, fault.New(fault.InvalidArgument, "invalid_csv", "the CSV header lacks the %q column (columns: email,name,password,role,max_sessions,groups)", need)
		}
	}
	var rows []createAgentRequest
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, fault.New(fault.TooLarge, "body_too_large", "the CSV is larger than %d bytes", maxBodyBytes)
			}
			return nil, fault.New(fault.InvalidArgument, "invalid_csv", "CSV line %d: %v", line, err)
		}
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		row := createAgentRequest{Email: get("email"), Name: get("name"), Password: get("password"), Role: get("role")}
		if v := get("max_sessions"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				n = -1 // reported by validation with the row number
			}
			row.MaxSessions = &n
		}
		if v := get("groups"); v != "" {
			for _, grp := range strings.Split(v, ";") {
				if grp = strings.TrimSpace(grp); grp != "" {
					row.Groups = append(row.Groups, grp)
				}
			}
		}
		rows = append(rows, row)
		if len(rows) > maxImportRows {
			return nil, fault.New(fault.TooLarge, "import_too_large", "an import has at most %d rows", maxImportRows)
		}
	}
}

// agentJSON is a user with their routing state.
type agentJSON struct {
	User
	Status              string `json:"status"`
	CurrentSessionCount int64  `json:"current_session_count"`
}

func (g *Gateway) handleListAgents(w http.ResponseWriter, r *http.Request, _ Principal) error {
	users, err := g.identity.listUsers(r.Context(), auth.Role(r.URL.Query().Get("role")))
	if err != nil {
		return err
	}
	states := map[string]*routingv1.AgentState{}
	if res, err := g.routing.ListAgents(r.Context(), &routingv1.ListAgentsRequest{Group: r.URL.Query().Get("group")}); err == nil {
		for _, s := range res.GetAgents() {
			states[s.GetAgentId()] = s
		}
	} else {
		return err
	}
	out := make([]agentJSON, 0, len(users))
	group := r.URL.Query().Get("group")
	for _, u := range users {
		if group != "" && !slices.Contains(u.Groups, group) {
			continue
		}
		a := agentJSON{User: u, Status: "offline"}
		if s, ok := states[u.ID]; ok {
			a.Status, a.CurrentSessionCount = statusName(s.GetStatus()), s.GetCurrentSessionCount()
		}
		out = append(out, a)
	}
	writeJSON(w, http.StatusOK, map[string]any{"agents": out})
	return nil
}

func (g *Gateway) handleGetAgent(w http.ResponseWriter, r *http.Request, _ Principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	u, err := g.identity.userByID(r.Context(), id)
	if err != nil {
		return err
	}
	a := agentJSON{User: u, Status: "offline"}
	if res, err := g.routing.GetAgentStatus(r.Context(), &routingv1.GetAgentStatusRequest{AgentId: id}); err == nil {
		a.Status, a.CurrentSessionCount = statusName(res.GetState().GetStatus()), res.GetState().GetCurrentSessionCount()
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

// handlePatchAgent edits an agent. Users may change their own name; everything else
// (role, capacity, groups, disabling) needs agents.manage. Changing someone's role or
// disabling them signs them out everywhere at once.
func (g *Gateway) handlePatchAgent(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var raw map[string]json.RawMessage
	if err := decodeJSON(w, r, &raw); err != nil {
		return err
	}
	var req struct {
		Name        *string   `json:"name"`
		Role        *string   `json:"role"`
		MaxSessions *int      `json:"max_sessions"`
		Groups      *[]string `json:"groups"`
		Disabled    *bool     `json:"disabled"`
		Password    *string   `json:"password"`
	}
	b, _ := json.Marshal(raw)
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return fault.New(fault.InvalidArgument, "invalid_field", "%v", strings.TrimPrefix(err.Error(), "json: "))
	}
	self := p.Kind == tokenUser && p.UserID == id
	manager := p.Has(PermAgentsManage)
	for field := range raw {
		allowedSelf := field == "name" || field == "password"
		if !manager && !(self && allowedSelf) {
			return fault.New(fault.PermissionDenied, "forbidden_field", "you may not change %s", field)
		}
	}
	if manager && self && (req.Role != nil || req.Disabled != nil) {
		return fault.New(fault.PermissionDenied, "forbidden_field", "you may not change your own role or disable yourself")
	}
	u, err := g.identity.userByID(r.Context(), id)
	if err != nil {
		return err
	}
	before := userSummary(u)
	set := bson.M{}
	if req.Name != nil {
		name, err := validateName("name", *req.Name)
		if err != nil {
			return err
		}
		set["name"], u.Name = name, name
	}
	if req.Password != nil {
		if msg := auth.CheckPasswordPolicy(*req.Password); msg != "" {
			return fault.Invalid("password", "weak_password", "%s", msg)
		}
		hash, err := auth.HashPassword(*req.Password)
		if err != nil {
			return err
		}
		set["password_hash"] = hash
	}
	if req.Role != nil {
		role := auth.Role(*req.Role)
		if ok, err := g.identity.roles.exists(r.Context(), role); err != nil {
			return err
		} else if !ok {
			return fault.Invalid("role", "invalid_role", "role must be admin, supervisor, agent, qa or a custom role")
		}
		set["role"], u.Role = role, role
	}
	if req.MaxSessions != nil {
		if *req.MaxSessions < 1 || *req.MaxSessions > 100 {
			return fault.Invalid("max_sessions", "invalid_max_sessions", "max_sessions must be between 1 and 100")
		}
		set["max_sessions"], u.MaxSessions = *req.MaxSessions, *req.MaxSessions
	}
	if req.Groups != nil {
		groups := slices.Clone(*req.Groups)
		if groups == nil {
			groups = []string{}
		}
		set["groups"], u.Groups = groups, groups
	}
	if req.Disabled != nil {
		set["disabled"], u.Disabled = *req.Disabled, *req.Disabled
	}
	if len(set) == 0 {
		return fault.New(fault.InvalidArgument, "empty_patch", "nothing to change")
	}
	if req.MaxSessions != nil || req.Groups != nil {
		// Routing validates groups; change it first so a bad group changes nothing.
		if _, err := g.routing.UpsertAgent(r.Context(), &routingv1.UpsertAgentRequest{AgentId: id, MaxSessions: int32(u.MaxSessions), Groups: u.Groups}); err != nil {
			return err
		}
	}
	if _, err := g.identity.users.UpdateByID(r.Context(), id, bson.M{"$set": set}); err != nil {
		return fmt.Errorf("update user %s: %w", id, err)
	}
	if req.Role != nil || (req.Disabled != nil && *req.Disabled) || req.Password != nil {
		if err := g.revokeUser(r.Context(), id); err != nil {
			return fmt.Errorf("sign out user %s: %w", id, err)
		}
		if req.Disabled != nil && *req.Disabled {
			if _, err := g.routing.SetAgentStatus(r.Context(), &routingv1.SetAgentStatusRequest{AgentId: id, Status: routingv1.AgentStatus_AGENT_STATUS_OFFLINE}); err != nil {
				return err
			}
		}
	} else {
		g.broadcastRevocation(r.Context(), revocation{UserID: id, Refresh: true})
	}
	after := userSummary(u)
	if req.Password != nil {
		after["password"] = "changed"
	}
	action := "agent.update"
	if req.Role != nil {
		action = "agent.role_change"
	}
	g.audit(r, p, action, "user", id, before, after)
	writeJSON(w, http.StatusOK, u)
	return nil
}
