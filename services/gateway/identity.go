package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/helmdesk/helmdesk/pkg/auth"
	"github.com/helmdesk/helmdesk/pkg/fault"
	"github.com/helmdesk/helmdesk/pkg/groupcommit"
	"github.com/helmdesk/helmdesk/pkg/logkey"
	"github.com/helmdesk/helmdesk/pkg/store"
)

// Collections owned by the gateway.
const (
	collOrganizations = "organizations"
	collUsers         = "users"
	collTokens        = "tokens"
)

// orgID is the id of the single organisation of an installation.
const orgID = "default"

// Organization is the installation's tenant.
type Organization struct {
	ID        string    `bson:"_id" json:"id"`
	Name      string    `bson:"name" json:"name"`
	CreatedAt time.Time `bson:"created_at" json:"created_at"`
}

// User is a person who signs in to the console.
type User struct {
	ID           string    `bson:"_id" json:"id"`
	Email        string    `bson:"email" json:"email"`
	Name         string    `bson:"name" json:"name"`
	Role         auth.Role `bson:"role" json:"role"`
	PasswordHash string    `bson:"password_hash" json:"-"`
	MaxSessions  int       `bson:"max_sessions" json:"max_sessions"`
	Groups       []string  `bson:"groups" json:"groups"`
	Disabled     bool      `bson:"disabled" json:"disabled"`
	CreatedAt    time.Time `bson:"created_at" json:"created_at"`
}

// tokenKind tells user tokens from customer tokens.
type tokenKind string

const (
	tokenUser     tokenKind = "user"
	tokenCustomer tokenKind = "customer"
	tokenAPIKey   tokenKind = "api_key"
)

// tokenDoc is a bearer token's stored form: only its digest is kept.
type tokenDoc struct {
	Digest     string    `bson:"_id"`
	ID         string    `bson:"id"` // public id, for listing and revoking sign-ins
	Kind       tokenKind `bson:"kind"`
	Subject    string    `bson:"subject"` // user id, or session id for a customer
	Role       auth.Role `bson:"role,omitempty"`
	CreatedAt  time.Time `bson:"created_at"`
	ExpiresAt  time.Time `bson:"expires_at"`
	LastUsedAt time.Time `bson:"last_used_at"`
	IP         string    `bson:"ip,omitempty"`
	UserAgent  string    `bson:"user_agent,omitempty"`
}

// Principal is who is making a request.
type Principal struct {
	Kind      tokenKind
	UserID    string // the user, or the API key's id
	Name      string // for the audit log
	Role      auth.Role
	Groups    []string
	SessionID string // customers: the one session the token opens
	Digest    string // of the bearer token, to match revocations
	perms     map[Permission]bool
	expires   time.Time // of this cache entry
	// tokenExpires is when the token itself ends, and lastUsed its recorded last use
	// (for caching in Redis).
	tokenExpires time.Time
	lastUsed     time.Time
}

type identity struct {
	orgs    *mongo.Collection
	users   *mongo.Collection
	tokens  *mongo.Collection
	apiKeys *mongo.Collection
	roles   *roleStore
	idleTTL time.Duration

	mu    sync.Mutex
	cache map[string]Principal // token digest → principal, for cacheTTL

	// rdb caches customer tokens across gateways and restarts (nil: not cached).
	rdb *redis.Client
	// customerTokens groups the lookups of customer tokens in rdb that arrive while
	// one is under way into one pipeline: after a restart every customer reconnects
	// within a second or so.
	customerTokens *groupcommit.Group[string, cachedCustomerToken]
	// userTokens does the same for sign-ins: every agent's console reconnects too.
	userTokens *groupcommit.Group[string, userTokenLookup]

	// touches are the sign-ins' last-used times waiting to be written (see
	// writeTouches): digest → time of use.
	touchMu   sync.Mutex
	touches   map[string]time.Time
	touchWake chan struct{}

	// userIDs remembers which user id an e-mail address belonged to, so that a sign-in
	// loads the user by _id (FerretDB answers only _id lookups from an index). The
	// loaded user's address is checked, so a stale entry only costs the slower lookup.
	userIDs sync.Map // e-mail → user id
}

// cacheTTL bounds how long a token stays usable in one gateway after it is revoked.
const cacheTTL = 5 * time.Second

// customerTokenTTL bounds how long a customer token's session stays cached in Redis
// (never beyond the token's expiry). Customer tokens are not revoked: they end when
// they expire.
const customerTokenTTL = time.Hour

func customerTokenKey(digest string) string { return "hd:auth:ctok:" + digest }

func newIdentity(ctx context.Context, db *mongo.Database, rdb *redis.Client, idleTTL time.Duration) (*identity, error) {
	err := store.EnsureIndexes(ctx, db,
		store.Index{Collection: collUsers, Keys: bson.D{{Key: "email", Value: 1}}, Unique: true},
		store.Index{Collection: collTokens, Keys: bson.D{{Key: "subject", Value: 1}}, QueryOnly: true},
		store.Index{Collection: collTokens, Keys: bson.D{{Key: "id", Value: 1}}, QueryOnly: true},
		store.Index{Collection: collAPIKeys, Keys: bson.D{{Key: "digest", Value: 1}}, Unique: true},
	)
	if err != nil {
		return nil, fmt.Errorf("prepare identity storage: %w", err)
	}
	id := &identity{orgs: db.Collection(collOrganizations), users: db.Collection(collUsers), tokens: db.Collection(collTokens),
		apiKeys: db.Collection(collAPIKeys), roles: newRoleStore(db), idleTTL: idleTTL, cache: map[string]Principal{}, rdb: rdb,
		touches: map[string]time.Time{}, touchWake: make(chan struct{}, 1)}
	id.customerTokens = &groupcommit.Group[string, cachedCustomerToken]{Write: id.readCustomerTokens, Max: 1000}
	id.userTokens = &groupcommit.Group[string, userTokenLookup]{Write: id.readUserTokens, Max: 1000}
	if rdb != nil {
		if err := seedAuthEpoch(ctx, rdb).Err(); err != nil {
			return nil, fmt.Errorf("prepare sign-in cache: %w", err)
		}
	}
	return id, nil
}

// normalizeEmail validates and lower-cases an address.
func normalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || len(s) > 254 {
		return "", fault.Invalid("email", "invalid_email", "%q is not a valid email address", s)
	}
	return strings.ToLower(s), nil
}

func validateName(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" || len([]rune(s)) > 100 {
		return "", fault.Invalid(field, "invalid_name", "%s must be 1-100 characters", field)
	}
	if strings.ContainsAny(s, "\x00\r\n<>") {
		return "", fault.Invalid(field, "invalid_name", "%s must not contain control characters or < >", field)
	}
	return s, nil
}

// setup creates the organisation and its first admin; it fails with Conflict once done.
func (id *identity) setup(ctx context.Context, orgName string, admin User, password string) (Organization, User, error) {
	org := Organization{ID: orgID, Name: orgName, CreatedAt: time.Now().UTC()}
	if n, err := id.orgs.CountDocuments(ctx, bson.M{"_id": orgID}); err != nil {
		return Organization{}, User{}, fmt.Errorf("check setup state: %w", err)
	} else if n > 0 {
		return Organization{}, User{}, errSetupDone
	}
	user, err := id.createUser(ctx, admin, password)
	if err != nil {
		return Organization{}, User{}, err
	}
	if _, err := id.orgs.InsertOne(ctx, org); err != nil {
		// A concurrent setup won the race: undo our admin.
		_, _ = id.users.DeleteOne(context.WithoutCancel(ctx), bson.M{"_id": user.ID})
		if store.IsDuplicateKey(err) {
			return Organization{}, User{}, errSetupDone
		}
		return Organization{}, User{}, fmt.Errorf("create organization: %w", err)
	}
	return org, user, nil
}

var errSetupDone = fault.New(fault.Conflict, "setup_already_done", "this installation is already set up; sign in instead")

func (id *identity) organization(ctx context.Context) (Organization, bool, error) {
	var org Organization
	err := id.orgs.FindOne(ctx, bson.M{"_id": orgID}).Decode(&org)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Organization{}, false, nil
	}
	if err != nil {
		return Organization{}, false, fmt.Errorf("load organization: %w", err)
	}
	return org, true, nil
}

func (id *identity) createUser(ctx context.Context, u User, password string) (User, error) {
	if msg := auth.CheckPasswordPolicy(password); msg != "" {
		return User{}, fault.Invalid("password", "weak_password", "%s", msg)
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		return User{}, err
	}
	uid, err := uuid.NewV7()
	if err != nil {
		return User{}, fmt.Errorf("generate user id: %w", err)
	}
	u.ID, u.PasswordHash, u.CreatedAt = uid.String(), hash, time.Now().UTC()
	if u.Groups == nil {
		u.Groups = []string{}
	}
	if _, err := id.users.InsertOne(ctx, u); err != nil {
		if store.IsDuplicateKey(err) {
			return User{}, &fault.Error{Kind: fault.Conflict, Code: "email_taken", Field: "email", Message: "a user with email " + u.Email + " already exists"}
		}
		return User{}, fmt.Errorf("insert user: %w", err)
	}
	return u, nil
}

// rehash replaces u's password hash (known to match pw) with one made with the current
// parameters. The update is conditional on the old hash, so a password changed in the
// meantime is never overwritten.
func (id *identity) rehash(ctx context.Context, u User, pw string) error {
	hash, err := auth.HashPassword(pw)
	if err != nil {
		return err
	}
	if _, err := id.users.UpdateOne(ctx, bson.D{{Key: "_id", Value: u.ID}, {Key: "password_hash", Value: u.PasswordHash}},
		bson.M{"$set": bson.M{"password_hash": hash}}); err != nil {
		return fmt.Errorf("store upgraded password hash: %w", err)
	}
	return nil
}

func (id *identity) deleteUser(ctx context.Context, userID string) error {
	_, err := id.users.DeleteOne(ctx, bson.M{"_id": userID})
	return err
}

func (id *identity) userByEmail(ctx context.Context, email string) (User, error) {
	var u User
	if uid, ok := id.userIDs.Load(email); ok {
		err := id.users.FindOne(ctx, bson.D{{Key: "_id", Value: uid}}).Decode(&u)
		if err == nil && u.Email == email {
			return u, nil
		}
		if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return User{}, fmt.Errorf("load user by email: %w", err)
		}
		id.userIDs.Delete(email)
		u = User{}
	}
	if err := id.users.FindOne(ctx, bson.M{"email": email}).Decode(&u); err != nil {
		return User{}, fmt.Errorf("load user by email: %w", store.NotFound(err))
	}
	id.userIDs.Store(email, u.ID)
	return u, nil
}

func (id *identity) userByID(ctx context.Context, userID string) (User, error) {
	var u User
	if err := id.users.FindOne(ctx, bson.M{"_id": userID}).Decode(&u); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return User{}, fault.New(fault.NotFound, "user_not_found", "user %s does not exist", userID)
		}
		return User{}, fmt.Errorf("load user %s: %w", userID, err)
	}
	return u, nil
}

func (id *identity) listUsers(ctx context.Context, role auth.Role) ([]User, error) {
	q := bson.M{}
	if role != "" {
		q["role"] = role
	}
	cur, err := id.users.Find(ctx, q, options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}}).SetLimit(5000))
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	var out []User
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// issue creates a token for subject and returns its plain form (shown once).
func (id *identity) issue(ctx context.Context, kind tokenKind, subject string, role auth.Role, ttl time.Duration, r *http.Request) (string, time.Time, error) {
	prefix := auth.PrefixUserToken
	if kind == tokenCustomer {
		prefix = auth.PrefixCustomerToken
	}
	plain, digest, err := auth.NewToken(prefix)
	if err != nil {
		return "", time.Time{}, err
	}
	now := time.Now().UTC()
	tid, err := uuid.NewV7()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("generate token id: %w", err)
	}
	doc := tokenDoc{Digest: digest, ID: tid.String(), Kind: kind, Subject: subject, Role: role, CreatedAt: now, ExpiresAt: now.Add(ttl), LastUsedAt: now}
	if r != nil {
		doc.IP, doc.UserAgent = clientIP(r), truncate(r.UserAgent(), 200)
	}
	if _, err := id.tokens.InsertOne(ctx, doc); err != nil {
		return "", time.Time{}, fmt.Errorf("store token: %w", err)
	}
	return plain, doc.ExpiresAt, nil
}

var errBadToken = fault.New(fault.Unauthenticated, "invalid_token", "the bearer token is missing, malformed, expired or revoked")

// authenticate resolves a bearer token to its principal: who, with which
// permissions. Results are cached for cacheTTL; revocations clear the cache at once
// on every gateway (see revocations.go).
func (id *identity) authenticate(ctx context.Context, token string) (Principal, error) {
	var kind tokenKind
	switch {
	case auth.WellFormed(token, auth.PrefixUserToken):
		kind = tokenUser
	case auth.WellFormed(token, auth.PrefixCustomerToken):
		kind = tokenCustomer
	case auth.WellFormed(token, auth.PrefixAPIKey):
		kind = tokenAPIKey
	default:
		return Principal{}, errBadToken
	}
	digest := auth.Digest(token)
	now := time.Now()
	id.mu.Lock()
	p, ok := id.cache[digest]
	id.mu.Unlock()
	if ok && now.Before(p.expires) {
		return p, nil
	}
	var err error
	switch kind {
	case tokenAPIKey:
		p, err = id.resolveAPIKey(ctx, digest, now)
	case tokenCustomer:
		p, err = id.resolveCustomerToken(ctx, digest, now)
	default:
		p, err = id.resolveUserToken(ctx, digest, now)
	}
	if err != nil {
		return Principal{}, err
	}
	p.Digest = digest
	id.mu.Lock()
	if len(id.cache) > 100_000 {
		for k, v := range id.cache {
			if now.After(v.expires) {
				delete(id.cache, k)
			}
		}
	}
	id.cache[digest] = p
	id.mu.Unlock()
	return p, nil
}

// resolveCustomerToken serves customer tokens from Redis when it can: after a gateway
// restart thousands of customers reconnect within a second, and looking each token up
// in MongoDB would make them wait. The cached entry lives no longer than the token.
func (id *identity) resolveCustomerToken(ctx context.Context, digest string, now time.Time) (Principal, error) {
	if id.rdb != nil {
		got, err := id.customerTokens.Do(ctx, []string{digest})
		if c, ok := got[0]; err == nil && ok {
			return Principal{Kind: tokenCustomer, SessionID: c.sessionID, expires: now.Add(min(cacheTTL, c.ttl))}, nil
		}
	}
	p, err := id.resolveToken(ctx, digest, now)
	if err != nil || p.Kind != tokenCustomer {
		return p, err
	}
	if id.rdb != nil {
		if ttl := min(customerTokenTTL, p.tokenExpires.Sub(now)); ttl > 0 {
			_ = id.rdb.Set(ctx, customerTokenKey(digest), p.SessionID, ttl).Err()
		}
	}
	return p, nil
}

// cachedCustomerToken is a customer token's entry in Redis: its session, and how long
// the entry has left.
type cachedCustomerToken struct {
	sessionID string
	ttl       time.Duration
}

// readCustomerTokens looks the digests up in Redis in one round trip; digests without
// a usable entry get no result.
func (id *identity) readCustomerTokens(ctx context.Context, digests []string) (map[int]cachedCustomerToken, error) {
	pipe := id.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(digests))
	ttls := make([]*redis.DurationCmd, len(digests))
	for i, d := range digests {
		gets[i] = pipe.Get(ctx, customerTokenKey(d))
		ttls[i] = pipe.PTTL(ctx, customerTokenKey(d))
	}
	// A missing key fails its own GET (redis.Nil) and is told apart below.
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make(map[int]cachedCustomerToken, len(digests))
	for i := range digests {
		if gets[i].Err() == nil && gets[i].Val() != "" && ttls[i].Err() == nil && ttls[i].Val() > 0 {
			out[i] = cachedCustomerToken{sessionID: gets[i].Val(), ttl: ttls[i].Val()}
		}
	}
	return out, nil
}

// Sign-ins (user tokens) are cached in Redis too, so that a restarted gateway does not
// read every reconnecting agent's token and user from MongoDB at once. Unlike customer
// tokens, sign-ins are revoked: sign-out, revoking a sign-in, and disabling, editing or
// deleting a user. Every revocation, after changing MongoDB, increments one epoch in
// Redis (see broadcastRevocation), and an entry counts only while the epoch is the one
// read before the MongoDB lookup that produced it. A lookup racing a revocation thus
// either read MongoDB after the change, or wrote an entry of an epoch that is already
// gone. An entry also lasts at most userTokenCacheTTL and never past the token's
// expiry, and the idle timeout is checked against the last use it records.
const (
	authEpochKey      = "hd:auth:epoch"
	userTokenCacheTTL = 10 * time.Minute
)

func userTokenKey(digest string) string { return "hd:auth:utok:" + digest }

// seedAuthEpoch gives the epoch a random value if it has none: an epoch lost with
// Redis's memory never comes back with a value that entries written before the loss
// carry.
func seedAuthEpoch(ctx context.Context, c redis.Cmdable) *redis.BoolCmd {
	return c.SetNX(ctx, authEpochKey, rand.Int64N(1<<62), 0)
}

// cachedUserToken is a sign-in's entry in Redis.
type cachedUserToken struct {
	Epoch     int64     `json:"e"`
	UserID    string    `json:"u"`
	Email     string    `json:"n"`
	Role      auth.Role `json:"r"`
	Groups    []string  `json:"g"`
	ExpiresAt time.Time `json:"x"`
	LastUsed  time.Time `json:"l"`
}

// userTokenLookup is what one read of the cache found for a digest: the current
// epoch (if Redis has one) and the digest's entry, if it is of that epoch.
type userTokenLookup struct {
	epoch      int64
	epochKnown bool
	entry      *cachedUserToken
}

// readUserTokens reads the epoch and the digests' entries in one round trip.
func (id *identity) readUserTokens(ctx context.Context, digests []string) (map[int]userTokenLookup, error) {
	pipe := id.rdb.Pipeline()
	epochCmd := pipe.Get(ctx, authEpochKey)
	gets := make([]*redis.StringCmd, len(digests))
	for i, d := range digests {
		gets[i] = pipe.Get(ctx, userTokenKey(d))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	var base userTokenLookup
	if e, err := epochCmd.Int64(); err == nil {
		base.epoch, base.epochKnown = e, true
	}
	out := make(map[int]userTokenLookup, len(digests))
	for i := range digests {
		l := base
		var c cachedUserToken
		if base.epochKnown && gets[i].Err() == nil && json.Unmarshal([]byte(gets[i].Val()), &c) == nil && c.Epoch == base.epoch {
			l.entry = &c
		}
		out[i] = l
	}
	return out, nil
}

// resolveUserToken serves a sign-in from Redis when it has a current entry, else from
// MongoDB, caching what it found.
func (id *identity) resolveUserToken(ctx context.Context, digest string, now time.Time) (Principal, error) {
	if id.rdb == nil {
		return id.resolveToken(ctx, digest, now)
	}
	got, err := id.userTokens.Do(ctx, []string{digest})
	l := got[0]
	if err != nil {
		l = userTokenLookup{} // Redis is away: MongoDB decides, and nothing is cached
	}
	if c := l.entry; c != nil && now.Before(c.ExpiresAt) && (id.idleTTL <= 0 || now.Sub(c.LastUsed) <= id.idleTTL) {
		perms, err := id.roles.permissions(ctx, c.Role)
		if err != nil {
			return Principal{}, err
		}
		if now.Sub(c.LastUsed) > id.touchInterval() {
			id.touchLater(digest, now)
			c.LastUsed = now
			// The entry keeps the life its MongoDB lookup gave it: however often it
			// is used, MongoDB is asked again within userTokenCacheTTL.
			id.cacheUserToken(ctx, digest, *c, redis.KeepTTL)
		}
		return Principal{Kind: tokenUser, UserID: c.UserID, Name: c.Email, Role: c.Role, Groups: c.Groups, perms: perms,
			expires: minTime(now.Add(cacheTTL), c.ExpiresAt)}, nil
	}
	p, err := id.resolveToken(ctx, digest, now)
	if err != nil || p.Kind != tokenUser || !l.epochKnown {
		return p, err
	}
	if ttl := min(userTokenCacheTTL, p.tokenExpires.Sub(now)); ttl > 0 {
		id.cacheUserToken(ctx, digest, cachedUserToken{Epoch: l.epoch, UserID: p.UserID, Email: p.Name, Role: p.Role, Groups: p.Groups,
			ExpiresAt: p.tokenExpires, LastUsed: p.lastUsed}, ttl)
	}
	return p, nil
}

// cacheUserToken writes a sign-in's entry for ttl (or redis.KeepTTL); a failure only
// costs a later lookup.
func (id *identity) cacheUserToken(ctx context.Context, digest string, c cachedUserToken, ttl time.Duration) {
	b, err := json.Marshal(c)
	if err != nil {
		return
	}
	_ = id.rdb.Set(ctx, userTokenKey(digest), b, ttl).Err()
}

// touchEvery bounds how often last-used times are written.
const touchEvery = time.Minute

func (id *identity) resolveToken(ctx context.Context, digest string, now time.Time) (Principal, error) {
	var doc tokenDoc
	if err := id.tokens.FindOne(ctx, bson.M{"_id": digest}).Decode(&doc); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return Principal{}, errBadToken
		}
		return Principal{}, fmt.Errorf("look up token: %w", err)
	}
	if !now.Before(doc.ExpiresAt) {
		return Principal{}, errBadToken
	}
	if doc.Kind == tokenCustomer {
		return Principal{Kind: tokenCustomer, SessionID: doc.Subject, expires: minTime(now.Add(cacheTTL), doc.ExpiresAt), tokenExpires: doc.ExpiresAt}, nil
	}
	if id.idleTTL > 0 && now.Sub(doc.LastUsedAt) > id.idleTTL {
		_, _ = id.tokens.DeleteOne(ctx, bson.M{"_id": digest})
		return Principal{}, fault.New(fault.Unauthenticated, "session_expired", "you were signed out after a period of inactivity; sign in again")
	}
	lastUsed := doc.LastUsedAt
	if now.Sub(lastUsed) > id.touchInterval() {
		id.touchLater(digest, now)
		lastUsed = now
	}
	u, err := id.userByID(ctx, doc.Subject)
	if err != nil {
		if fault.Is(err, fault.NotFound) {
			return Principal{}, errBadToken
		}
		return Principal{}, err
	}
	if u.Disabled {
		return Principal{}, fault.New(fault.Unauthenticated, "account_disabled", "this account is disabled")
	}
	perms, err := id.roles.permissions(ctx, u.Role)
	if err != nil {
		return Principal{}, err
	}
	return Principal{Kind: tokenUser, UserID: u.ID, Name: u.Email, Role: u.Role, Groups: u.Groups, perms: perms,
		expires: minTime(now.Add(cacheTTL), doc.ExpiresAt), tokenExpires: doc.ExpiresAt, lastUsed: lastUsed}, nil
}

// touchInterval is how stale a sign-in's recorded last use may get before a use
// records it again: often enough for the idle timeout to be exact to a quarter.
func (id *identity) touchInterval() time.Duration {
	if id.idleTTL > 0 {
		return min(touchEvery, id.idleTTL/4)
	}
	return touchEvery
}

// maxPendingTouches bounds the last-used times waiting to be written; past it a use
// is not recorded until the backlog is written (the next use after that records it).
const maxPendingTouches = 100_000

// touchLater records that a sign-in was used at t. The write happens a little later,
// off the request's path (see writeTouches): after a gateway restart every agent's
// console reconnects at once, and writing each last-used time before answering would
// make all of them wait for the database at the busiest moment.
func (id *identity) touchLater(digest string, t time.Time) {
	id.touchMu.Lock()
	if len(id.touches) < maxPendingTouches {
		id.touches[digest] = t
	}
	id.touchMu.Unlock()
	select {
	case id.touchWake <- struct{}{}:
	default:
	}
}

// writeTouches writes the pending last-used times until ctx ends, then what is left.
// It waits a short while after the first pending use (a quarter of the touch
// interval, at most 5 s) so that a burst of uses is written after the burst, one
// write at a time. A write that fails is not retried: the sign-in's next use finds
// its last-used time still stale and records it again. A gateway that dies loses its
// pending times the same way, so a recorded last use is at most the touch interval
// and this delay old, and the idle timeout ends a sign-in no earlier than that.
func (id *identity) writeTouches(ctx context.Context, log *slog.Logger) error {
	delay := min(5*time.Second, id.touchInterval()/4)
	t := time.NewTimer(delay)
	t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			id.flushTouches(fctx, log)
			cancel()
			return nil
		case <-id.touchWake:
			t.Reset(delay)
			select {
			case <-ctx.Done():
				continue // written above, with a context of its own
			case <-t.C:
			}
			id.flushTouches(ctx, log)
		}
	}
}

// flushTouches writes the pending last-used times, one at a time.
func (id *identity) flushTouches(ctx context.Context, log *slog.Logger) {
	id.touchMu.Lock()
	pending := id.touches
	id.touches = make(map[string]time.Time, len(pending))
	id.touchMu.Unlock()
	failed := 0
	var lastErr error
	for digest, t := range pending {
		if ctx.Err() != nil {
			failed++
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		// By _id alone, which every store answers from its index. Two gateways writing
		// the same sign-in's use differ by seconds; either write will do.
		_, err := id.tokens.UpdateOne(wctx, bson.M{"_id": digest}, bson.M{"$set": bson.M{"last_used_at": t.UTC()}})
		cancel()
		if err != nil {
			failed, lastErr = failed+1, err
		}
	}
	if failed > 0 && log != nil {
		log.WarnContext(ctx, "record sign-in use", slog.Int(logkey.Count, failed), slog.Any(logkey.Error, lastErr))
	}
}

// forget drops the cached principals that match, so their next request is checked
// against storage again.
func (id *identity) forget(match func(digest string, p Principal) bool) {
	id.mu.Lock()
	defer id.mu.Unlock()
	for digest, p := range id.cache {
		if match(digest, p) {
			delete(id.cache, digest)
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
