package gateway

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/helmdesk/helmdesk/pkg/auth"
	"github.com/helmdesk/helmdesk/pkg/testdeps"
)

// identityStores connects to a fresh database and a redis-server of the tests.
func identityStores(t *testing.T) (*mongo.Database, *redis.Client) {
	t.Helper()
	uri, dbName := testdeps.Mongo(t)
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	rdb := redis.NewClient(&redis.Options{Addr: testdeps.Redis(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	return client.Database(dbName), rdb
}

// signedIn creates a user of role and signs them in for ttl: the user and the token.
func signedIn(t *testing.T, id *identity, email string, role auth.Role, groups []string, ttl time.Duration) (User, string) {
	t.Helper()
	ctx := context.Background()
	u, err := id.createUser(ctx, User{Email: email, Name: "Someone", Role: role, Groups: groups}, "a-long-passw0rd")
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := id.issue(ctx, tokenUser, u.ID, role, ttl, nil)
	if err != nil {
		t.Fatal(err)
	}
	return u, token
}

// Customer tokens are cached in Redis for a restarted or another gateway, never
// beyond the token's own expiry.
func TestCustomerTokensCachedNoLongerThanTheyLive(t *testing.T) {
	ctx := context.Background()
	db, rdb := identityStores(t)
	newGateway := func() *identity {
		id, err := newIdentity(ctx, db, rdb, 0)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	first := newGateway()
	token, _, err := first.issue(ctx, tokenCustomer, "session-1", "", 2*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := first.authenticate(ctx, token)
	if err != nil || p.Kind != tokenCustomer || p.SessionID != "session-1" {
		t.Fatalf("authenticate = %+v, %v", p, err)
	}
	key := customerTokenKey(auth.Digest(token))
	if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > 2*time.Second {
		t.Fatalf("cached for %v, want (0, 2s]: no longer than the token lives", ttl)
	}

	// A restarted gateway (empty memory) answers from Redis, without MongoDB.
	if _, err := db.Collection(collTokens).DeleteOne(ctx, bson.M{"_id": auth.Digest(token)}); err != nil {
		t.Fatal(err)
	}
	p, err = newGateway().authenticate(ctx, token)
	if err != nil || p.SessionID != "session-1" {
		t.Fatalf("restarted gateway: authenticate = %+v, %v", p, err)
	}
	if !p.expires.After(time.Now()) || time.Until(p.expires) > cacheTTL {
		t.Fatalf("in-memory entry expires in %v, want within %v", time.Until(p.expires), cacheTTL)
	}

	// Once the token has expired, nothing serves it.
	time.Sleep(2100 * time.Millisecond)
	if _, err := newGateway().authenticate(ctx, token); err == nil {
		t.Fatal("an expired customer token was accepted")
	}

	// Tokens that are not customer tokens are never cached in Redis.
	user, _, err := first.issue(ctx, tokenUser, "user-1", "agent", time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = first.authenticate(ctx, user)
	if n := rdb.Exists(ctx, customerTokenKey(auth.Digest(user))).Val(); n != 0 {
		t.Fatal("a user token was cached as a customer token")
	}
}

// The lookups grouped into one pipeline are answered each on its own: a token missing
// from Redis fails only its own lookup, which then goes to MongoDB.
func TestCustomerTokenLookupsShareAPipeline(t *testing.T) {
	ctx := context.Background()
	db, rdb := identityStores(t)
	id, err := newIdentity(ctx, db, rdb, 0)
	if err != nil {
		t.Fatal(err)
	}
	var tokens []string
	for i := range 3 {
		tok, _, err := id.issue(ctx, tokenCustomer, "session-"+strconv.Itoa(i), "", time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, tok)
	}
	// Cache the first and the last only.
	for _, i := range []int{0, 2} {
		if err := rdb.Set(ctx, customerTokenKey(auth.Digest(tokens[i])), "session-"+strconv.Itoa(i), time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	got, err := id.readCustomerTokens(ctx, []string{auth.Digest(tokens[0]), auth.Digest(tokens[1]), auth.Digest(tokens[2])})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].sessionID != "session-0" || got[2].sessionID != "session-2" || got[0].ttl <= 0 {
		t.Fatalf("lookups = %+v, want session-0 and session-2 (with their TTLs) and nothing for the uncached token", got)
	}

	// Many at once, as after a restart: each gets its own session.
	var wg sync.WaitGroup
	for round := range 20 {
		for i, tok := range tokens {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p, err := id.resolveCustomerToken(ctx, auth.Digest(tok), time.Now())
				if err != nil || p.SessionID != "session-"+strconv.Itoa(i) {
					t.Errorf("round %d, token %d: %+v, %v", round, i, p, err)
				}
			}()
		}
	}
	wg.Wait()
}

// A sign-in's last use is written after the request that made it, not before it is
// answered, and what is pending when the gateway stops is still written.
func TestSignInUseIsWrittenBehindTheRequest(t *testing.T) {
	ctx := context.Background()
	db, _ := identityStores(t)
	// Idle timeout 4 s: uses are recorded when the last one is over 1 s old, and
	// written 250 ms after the first pending one. No Redis: every lookup reads MongoDB.
	id, err := newIdentity(ctx, db, nil, 4*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	u, token := signedIn(t, id, "touch@example.com", auth.RoleAgent, nil, time.Hour)
	digest := auth.Digest(token)
	lastUsed := func() time.Time {
		t.Helper()
		var doc tokenDoc
		if err := id.tokens.FindOne(ctx, bson.M{"_id": digest}).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		return doc.LastUsedAt
	}
	stale := func() time.Time {
		t.Helper()
		old := time.Now().Add(-2 * time.Second).UTC().Truncate(time.Millisecond)
		if _, err := id.tokens.UpdateOne(ctx, bson.M{"_id": digest}, bson.M{"$set": bson.M{"last_used_at": old}}); err != nil {
			t.Fatal(err)
		}
		id.forget(func(string, Principal) bool { return true })
		return old
	}

	old := stale()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- id.writeTouches(runCtx, nil) }()
	before := time.Now()
	if p, err := id.authenticate(ctx, token); err != nil || p.UserID != u.ID {
		t.Fatalf("authenticate = %+v, %v", p, err)
	}
	if got := lastUsed(); !got.Equal(old) {
		t.Fatalf("last use written before the request was answered: %v, want still %v", got, old)
	}
	deadline := time.Now().Add(5 * time.Second)
	for lastUsed().Before(before.Add(-time.Millisecond)) {
		if time.Now().After(deadline) {
			t.Fatalf("last use never written: still %v", lastUsed())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Stopping writes what is pending at once.
	old = stale()
	before = time.Now()
	if _, err := id.authenticate(ctx, token); err != nil {
		t.Fatal(err)
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("writeTouches did not stop")
	}
	if got := lastUsed(); got.Before(before.Add(-time.Millisecond)) {
		t.Fatalf("pending last use lost at stop: %v (set stale to %v)", got, old)
	}

	// The idle timeout still ends a sign-in whose last use is too old.
	if _, err := id.tokens.UpdateOne(ctx, bson.M{"_id": digest}, bson.M{"$set": bson.M{"last_used_at": time.Now().Add(-5 * time.Second).UTC()}}); err != nil {
		t.Fatal(err)
	}
	id.forget(func(string, Principal) bool { return true })
	if _, err := id.authenticate(ctx, token); err == nil || !strings.Contains(err.Error(), "inactivity") {
		t.Fatalf("idle sign-in authenticated: %v", err)
	}
}

// Sign-ins are cached in Redis for a restarted or another gateway, and every
// revocation (a new epoch) voids what was cached before it.
func TestSignInsCachedUntilTheEpochMoves(t *testing.T) {
	ctx := context.Background()
	db, rdb := identityStores(t)
	newGateway := func() *identity {
		id, err := newIdentity(ctx, db, rdb, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	first := newGateway()
	u, token := signedIn(t, first, "cached@example.com", auth.RoleSupervisor, []string{"billing"}, 30*time.Second)
	digest := auth.Digest(token)
	if _, err := first.authenticate(ctx, token); err != nil {
		t.Fatal(err)
	}
	key := userTokenKey(digest)
	if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > 30*time.Second {
		t.Fatalf("cached for %v, want (0, 30s]: no longer than the token lives", ttl)
	}

	// Another gateway answers from Redis: the token is gone from MongoDB behind the
	// cache's back (no revocation), and the cached principal is whole.
	if _, err := db.Collection(collTokens).DeleteOne(ctx, bson.M{"_id": digest}); err != nil {
		t.Fatal(err)
	}
	second := newGateway()
	p, err := second.authenticate(ctx, token)
	if err != nil || p.UserID != u.ID || p.Role != auth.RoleSupervisor || len(p.Groups) != 1 || p.Groups[0] != "billing" || p.Name != "cached@example.com" || !p.perms[PermSessionsReadTeam] {
		t.Fatalf("from the cache: %+v, %v", p, err)
	}

	// A revocation moves the epoch: the entry no longer counts and MongoDB decides.
	if err := rdb.Incr(ctx, authEpochKey).Err(); err != nil {
		t.Fatal(err)
	}
	third := newGateway()
	if _, err := third.authenticate(ctx, token); err == nil {
		t.Fatal("a sign-in cached before a revocation still authenticates")
	}

	// Garbage in the cache, or a cache that lost its epoch, is not trusted.
	token2, _, err := first.issue(ctx, tokenUser, u.ID, auth.RoleSupervisor, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	d2 := auth.Digest(token2)
	if err := rdb.Set(ctx, userTokenKey(d2), `{"e":`+rdb.Get(ctx, authEpochKey).Val()+`,"u":`, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if p, err := newGateway().authenticate(ctx, token2); err != nil || p.UserID != u.ID {
		t.Fatalf("with a garbled entry: %+v, %v", p, err)
	}
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	lost := newGateway()
	if err := rdb.Del(ctx, authEpochKey).Err(); err != nil { // as if evicted after start
		t.Fatal(err)
	}
	if _, err := lost.authenticate(ctx, token2); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, userTokenKey(d2)).Val(); n != 0 {
		t.Fatal("cached a sign-in without an epoch to check it against")
	}
}

// putCachedSignIn caches u's sign-in (of the current epoch, an hour left) as last
// used at lastUsed, for ttl.
func putCachedSignIn(t *testing.T, rdb *redis.Client, u User, digest string, lastUsed time.Time, ttl time.Duration) {
	t.Helper()
	ctx := context.Background()
	epoch, err := rdb.Get(ctx, authEpochKey).Int64()
	if err != nil {
		t.Fatal(err)
	}
	entry, _ := json.Marshal(cachedUserToken{Epoch: epoch, UserID: u.ID, Email: u.Email, Role: u.Role, ExpiresAt: time.Now().Add(time.Hour), LastUsed: lastUsed})
	if err := rdb.Set(ctx, userTokenKey(digest), entry, ttl).Err(); err != nil {
		t.Fatal(err)
	}
}

// cachedSignIn sets up an identity with the idle timeout idle and an agent signed in
// for an hour whose sign-in is cached as last used at lastUsed, for ttl.
func cachedSignIn(t *testing.T, idle time.Duration, email string, lastUsed time.Time, ttl time.Duration) (id *identity, rdb *redis.Client, u User, token, digest string) {
	t.Helper()
	db, rdb := identityStores(t)
	id, err := newIdentity(context.Background(), db, rdb, idle)
	if err != nil {
		t.Fatal(err)
	}
	u, token = signedIn(t, id, email, auth.RoleAgent, nil, time.Hour)
	digest = auth.Digest(token)
	putCachedSignIn(t, rdb, u, digest, lastUsed, ttl)
	return id, rdb, u, token, digest
}

// An entry whose recorded last use is past the idle timeout is not trusted: MongoDB,
// which has the latest use of every gateway, decides.
func TestCachedSignInsHonourTheIdleTimeout(t *testing.T) {
	ctx := context.Background()
	old := time.Now().Add(-2 * time.Minute)
	id, _, _, token, digest := cachedSignIn(t, time.Minute, "idle@example.com", old, time.Minute)
	if _, err := id.tokens.UpdateOne(ctx, bson.M{"_id": digest}, bson.M{"$set": bson.M{"last_used_at": old.UTC()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := id.authenticate(ctx, token); err == nil || !strings.Contains(err.Error(), "inactivity") {
		t.Fatalf("idle sign-in authenticated from the cache: %v", err)
	}
}

// A cached sign-in used after a while records the use but keeps the life its MongoDB
// lookup gave it, so that MongoDB is asked again within userTokenCacheTTL.
func TestCachedSignInsKeepTheirLife(t *testing.T) {
	ctx := context.Background()
	id, rdb, u, token, digest := cachedSignIn(t, time.Hour, "life@example.com", time.Now().Add(-2*time.Minute), 30*time.Second)
	before := time.Now()
	if p, err := id.authenticate(ctx, token); err != nil || p.UserID != u.ID {
		t.Fatalf("authenticate = %+v, %v", p, err)
	}
	var got cachedUserToken
	if err := json.Unmarshal([]byte(rdb.Get(ctx, userTokenKey(digest)).Val()), &got); err != nil || got.LastUsed.Before(before.Add(-time.Millisecond)) {
		t.Fatalf("entry after a use = %+v (%v), want the use recorded", got, err)
	}
	if ttl := rdb.PTTL(ctx, userTokenKey(digest)).Val(); ttl <= 0 || ttl > 30*time.Second {
		t.Fatalf("entry lives %v more, want at most the 30 s it had", ttl)
	}
	id.touchMu.Lock()
	_, pending := id.touches[digest]
	id.touchMu.Unlock()
	if !pending {
		t.Fatal("the use was not queued for MongoDB")
	}
}
