package gateway

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/helmdesk/helmdesk/pkg/auth"
	"github.com/helmdesk/helmdesk/pkg/fault"
	"github.com/helmdesk/helmdesk/pkg/store"
	sessionv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/session/v1"
)

// Permission is a named right. Roles are sets of permissions; every route names the
// permission it needs (authorisation lives in the route table and in the object
// checks below, nowhere else).
type Permission string

// The permissions. docs/permissions.md is the matrix.
const (
	PermAgentsRead       Permission = "agents.read"          // list agents and their state
	PermAgentsManage     Permission = "agents.manage"        // create, edit, import, disable agents
	PermAgentsStatus     Permission = "agents.status"        // set another agent's presence
	PermGroupsRead       Permission = "groups.read"          // list groups
	PermGroupsManage     Permission = "groups.manage"        // create groups
	PermRoutingRead      Permission = "routing.read"         // read routing rules, test them
	PermRoutingManage    Permission = "routing.manage"       // change routing rules
	PermQueuesRead       Permission = "queues.read"          // see queues
	PermSessionsReadAll  Permission = "sessions.read_all"    // read every conversation
	PermSessionsReadTeam Permission = "sessions.read_team"   // read the conversations of one's groups
	PermSessionsReply    Permission = "sessions.reply"       // write in, transfer and close conversations assigned to oneself
	PermSessionsManage   Permission = "sessions.manage"      // transfer and close conversations one may read
	PermReviewsWrite     Permission = "reviews.write"        // score conversations (quality review)
	PermReviewsRead      Permission = "reviews.read"         // read quality reviews
	PermChannelsRead     Permission = "channels.read"        // read channels
	PermChannelsManage   Permission = "channels.manage"      // create and edit channels
	PermAPIKeysManage    Permission = "api_keys.manage"      // create, list, revoke API keys
	PermRolesManage      Permission = "roles.manage"         // define custom roles
	PermAuditRead        Permission = "audit.read"           // read the audit log
	PermAuditExport      Permission = "audit.export"         // export the audit log
	PermAuthSessions     Permission = "auth_sessions.manage" // list and revoke sign-ins
	PermCustomersRead    Permission = "customers.read"       // look customers up
	PermCustomersErase   Permission = "customers.erase"      // erase a customer (GDPR)
	PermDebugLogs        Permission = "debug.logs"           // read /debug/logs
)

// AllPermissions lists every permission.
var AllPermissions = []Permission{
	PermAgentsRead, PermAgentsManage, PermAgentsStatus, PermGroupsRead, PermGroupsManage, PermRoutingRead, PermRoutingManage,
	PermQueuesRead, PermSessionsReadAll, PermSessionsReadTeam, PermSessionsReply, PermSessionsManage, PermReviewsWrite,
	PermReviewsRead, PermChannelsRead, PermChannelsManage, PermAPIKeysManage, PermRolesManage, PermAuditRead, PermAuditExport,
	PermAuthSessions, PermCustomersRead, PermCustomersErase, PermDebugLogs,
}

// builtinRoles are the roles every installation has.
func builtinRoles() map[auth.Role][]Permission {
	return map[auth.Role][]Permission{
		auth.RoleAdmin: AllPermissions,
		auth.RoleSupervisor: {PermAgentsRead, PermAgentsStatus, PermGroupsRead, PermRoutingRead, PermQueuesRead, PermSessionsReadTeam,
			PermSessionsReply, PermSessionsManage, PermReviewsRead, PermChannelsRead, PermCustomersRead},
		auth.RoleAgent: {PermGroupsRead, PermSessionsReply, PermChannelsRead},
		auth.RoleQA:    {PermAgentsRead, PermGroupsRead, PermSessionsReadAll, PermReviewsWrite, PermReviewsRead, PermChannelsRead},
	}
}

// access is what a route requires: one of the modes below, or the name of a
// permission a signed-in user (or API key) must hold.
type access string

const (
	public       access = "public"                // anyone
	anyUser      access = "signed_in"             // any signed-in user or API key
	userOrClient access = "signed_in_or_customer" // any user, or the customer of the session in the path
	customerOnly access = "customer"              // the customer of the session in the path
	adminOnly           = access(PermRolesManage)
)

func need(p Permission) access { return access(p) }

var errForbidden = fault.New(fault.PermissionDenied, "forbidden", "your role does not allow this")

// authorize checks a principal against a route's requirement.
func authorize(a access, p Principal, r *http.Request) error {
	switch a {
	case public:
		return nil
	case userOrClient, customerOnly:
		if p.Kind == tokenCustomer {
			if p.SessionID != r.PathValue("id") {
				return fault.New(fault.NotFound, "session_not_found", "session %s does not exist", r.PathValue("id"))
			}
			return nil
		}
		if a == customerOnly {
			return fault.New(fault.PermissionDenied, "customer_token_required", "only the customer of the conversation can do this")
		}
		return nil
	case anyUser:
		if p.Kind == tokenCustomer {
			return errForbidden
		}
		return nil
	default:
		if p.Kind == tokenCustomer || !p.Has(Permission(a)) {
			return errForbidden
		}
		return nil
	}
}

// Has reports whether the principal holds the permission.
func (p Principal) Has(perm Permission) bool { return p.perms[perm] }

// canReadSession applies object-level access: customers their own session; agents the
// sessions assigned to them now or before; team readers the sessions of their groups;
// full readers every session.
func canReadSession(p Principal, s *sessionv1.Session) bool {
	switch {
	case p.Kind == tokenCustomer:
		return p.SessionID == s.GetId()
	case p.Has(PermSessionsReadAll):
		return true
	case s.GetAgentId() == p.UserID || slices.Contains(s.GetAgents(), p.UserID):
		return p.Has(PermSessionsReply) || p.Has(PermSessionsReadTeam)
	case p.Has(PermSessionsReadTeam):
		return s.GetGroup() != "" && slices.Contains(p.Groups, s.GetGroup())
	default:
		return false
	}
}

// mayManageSession: transfer or close. The assigned agent, or a manager who may read it.
func mayManageSession(p Principal, s *sessionv1.Session) bool {
	if p.Kind == tokenCustomer {
		return false
	}
	if p.Has(PermSessionsReply) && s.GetAgentId() == p.UserID {
		return true
	}
	return p.Has(PermSessionsManage) && canReadSession(p, s)
}

// --- custom roles ---

const collRoles = "roles"

// Role is a custom role: a named set of permissions.
type Role struct {
	Name        string       `bson:"_id" json:"name"`
	Permissions []Permission `bson:"permissions" json:"permissions"`
	Builtin     bool         `bson:"-" json:"builtin"`
	CreatedAt   time.Time    `bson:"created_at" json:"created_at"`
}

type roleStore struct {
	coll *mongo.Collection

	mu     sync.Mutex
	cached map[string]cachedRole
}

type cachedRole struct {
	perms map[Permission]bool
	at    time.Time
}

func newRoleStore(db *mongo.Database) *roleStore {
	return &roleStore{coll: db.Collection(collRoles), cached: map[string]cachedRole{}}
}

var roleNamePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{1,31}$`)

// permissions resolves a role name (built-in or custom) to its permission set.
func (rs *roleStore) permissions(ctx context.Context, role auth.Role) (map[Permission]bool, error) {
	if perms, ok := builtinRoles()[role]; ok {
		return permSet(perms), nil
	}
	rs.mu.Lock()
	c, ok := rs.cached[string(role)]
	rs.mu.Unlock()
	if ok && time.Since(c.at) < cacheTTL {
		return c.perms, nil
	}
	var doc Role
	if err := rs.coll.FindOne(ctx, bson.M{"_id": string(role)}).Decode(&doc); err != nil {
		if store.NotFound(err) == store.ErrNotFound {
			return map[Permission]bool{}, nil // a deleted role grants nothing
		}
		return nil, fmt.Errorf("load role %s: %w", role, err)
	}
	set := permSet(doc.Permissions)
	rs.mu.Lock()
	rs.cached[string(role)] = cachedRole{perms: set, at: time.Now()}
	rs.mu.Unlock()
	return set, nil
}

func permSet(perms []Permission) map[Permission]bool {
	out := make(map[Permission]bool, len(perms))
	for _, p := range perms {
		out[p] = true
	}
	return out
}

func (rs *roleStore) exists(ctx context.Context, role auth.Role) (bool, error) {
	if role.Valid() {
		return true, nil
	}
	n, err := rs.coll.CountDocuments(ctx, bson.M{"_id": string(role)})
	if err != nil {
		return false, fmt.Errorf("look up role %s: %w", role, err)
	}
	return n > 0, nil
}

func validatePermissions(perms []Permission) error {
	if len(perms) == 0 {
		return fault.Invalid("permissions", "invalid_permissions", "a role needs at least one permission")
	}
	for _, p := range perms {
		if !slices.Contains(AllPermissions, p) {
			return fault.Invalid("permissions", "unknown_permission", "unknown permission %q", p)
		}
	}
	return nil
}

func (rs *roleStore) create(ctx context.Context, name string, perms []Permission) (Role, error) {
	if !roleNamePattern.MatchString(name) {
		return Role{}, fault.Invalid("name", "invalid_role_name", "role names are 2-32 lowercase letters, digits or _, starting with a letter")
	}
	if auth.Role(name).Valid() {
		return Role{}, fault.New(fault.Conflict, "role_exists", "%s is a built-in role", name)
	}
	if err := validatePermissions(perms); err != nil {
		return Role{}, err
	}
	perms = slices.Clone(perms)
	slices.Sort(perms)
	perms = slices.Compact(perms)
	r := Role{Name: name, Permissions: perms, CreatedAt: time.Now().UTC()}
	if _, err := rs.coll.InsertOne(ctx, r); err != nil {
		if store.IsDuplicateKey(err) {
			return Role{}, fault.New(fault.Conflict, "role_exists", "a role named %s already exists", name)
		}
		return Role{}, fmt.Errorf("create role: %w", err)
	}
	return r, nil
}

func (rs *roleStore) list(ctx context.Context) ([]Role, error) {
	var out []Role
	for name, perms := range builtinRoles() {
		ps := slices.Clone(perms)
		slices.Sort(ps)
		out = append(out, Role{Name: string(name), Permissions: ps, Builtin: true})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	cur, err := rs.coll.Find(ctx, bson.M{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	var custom []Role
	if err := cur.All(ctx, &custom); err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	return append(out, custom...), nil
}

// RouteRule is one API route and what it requires, for documentation and tests.
type RouteRule struct {
	Method   string
	Path     string
	Requires string // public, signed_in, signed_in_or_customer, customer, or a permission
}

// Routes lists the API's routes with their requirements, in table order.
func Routes() []RouteRule {
	var out []RouteRule
	for _, rt := range (&Gateway{}).routeTable() {
		method, path, _ := strings.Cut(rt.pattern, " ")
		out = append(out, RouteRule{Method: method, Path: path, Requires: string(rt.access)})
	}
	return out
}

// RolePermissions lists each built-in role's permissions.
func RolePermissions() map[string][]string {
	out := map[string][]string{}
	for role, perms := range builtinRoles() {
		for _, p := range perms {
			out[string(role)] = append(out[string(role)], string(p))
		}
		sort.Strings(out[string(role)])
	}
	return out
}
