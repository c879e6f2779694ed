package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/helmdesk/helmdesk/pkg/auth"
	"github.com/helmdesk/helmdesk/pkg/testdeps"
)

// Customer tokens are cached in Redis for a restarted or another gateway, never
// beyond the token's own expiry.
func TestCustomerTokensCachedNoLongerThanTheyLive(t *testing.T) {
	ctx := context.Background()
	uri, dbName := testdeps.Mongo(t)
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	rdb := redis.NewClient(&redis.Options{Addr: testdeps.Redis(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	db := client.Database(dbName)
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
