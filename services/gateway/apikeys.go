package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/helmdesk/helmdesk/pkg/auth"
	"github.com/helmdesk/helmdesk/pkg/fault"
)

const collAPIKeys = "api_keys"

// APIKey is an integration's credential. The key itself is shown once, at creation;
// only its SHA-256 digest is stored.
type APIKey struct {
	ID         string     `bson:"_id" json:"id"`
	Name       string     `bson:"name" json:"name"`
	Role       auth.Role  `bson:"role" json:"role"`
	Digest     string     `bson:"digest" json:"-"`
	Prefix     string     `bson:"prefix" json:"prefix"` // the first characters, to recognise a key
	CreatedBy  string     `bson:"created_by" json:"created_by"`
	CreatedAt  time.Time  `bson:"created_at" json:"created_at"`
	LastUsedAt *time.Time `bson:"last_used_at,omitempty" json:"last_used_at"`
	RevokedAt  *time.Time `bson:"revoked_at,omitempty" json:"revoked_at,omitempty"`
}

func (id *identity) resolveAPIKey(ctx context.Context, digest string, now time.Time) (Principal, error) {
	var k APIKey
	if err := id.apiKeys.FindOne(ctx, bson.M{"digest": digest}).Decode(&k); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return Principal{}, errBadToken
		}
		return Principal{}, fmt.Errorf("look up api key: %w", err)
	}
	if k.RevokedAt != nil {
		return Principal{}, errBadToken
	}
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) > touchEvery {
		if _, err := id.apiKeys.UpdateByID(ctx, k.ID, bson.M{"$set": bson.M{"last_used_at": now.UTC()}}); err != nil {
			return Principal{}, fmt.Errorf("record api key use: %w", err)
		}
	}
	perms, err := id.roles.permissions(ctx, k.Role)
	if err != nil {
		return Principal{}, err
	}
	return Principal{Kind: tokenAPIKey, UserID: k.ID, Name: "api_key:" + k.Name, Role: k.Role, perms: perms, expires: now.Add(cacheTTL)}, nil
}

func (g *Gateway) handleCreateAPIKey(w http.ResponseWriter, r *http.Request, p Principal) error {
	var req struct {
		Name string `json:"name"`
		Role string `json:"role"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	name, err := validateName("name", req.Name)
	if err != nil {
		return err
	}
	role := auth.Role(req.Role)
	if ok, err := g.identity.roles.exists(r.Context(), role); err != nil {
		return err
	} else if !ok || role == "" {
		return fault.Invalid("role", "invalid_role", "role must be a built-in role (admin, supervisor, agent, qa) or a custom one")
	}
	// Nobody hands out more than they have: a key's role must not exceed the creator's.
	perms, err := g.identity.roles.permissions(r.Context(), role)
	if err != nil {
		return err
	}
	for perm := range perms {
		if !p.Has(perm) {
			return fault.New(fault.PermissionDenied, "role_exceeds_yours", "the key's role has permission %s, which you do not have", perm)
		}
	}
	plain, digest, err := auth.NewToken(auth.PrefixAPIKey)
	if err != nil {
		return err
	}
	kid, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("generate key id: %w", err)
	}
	k := APIKey{ID: kid.String(), Name: name, Role: role, Digest: digest, Prefix: plain[:len(auth.PrefixAPIKey)+6], CreatedBy: p.UserID, CreatedAt: time.Now().UTC()}
	if _, err := g.identity.apiKeys.InsertOne(r.Context(), k); err != nil {
		return fmt.Errorf("store api key: %w", err)
	}
	g.audit(r, p, "api_key.create", "api_key", k.ID, nil, map[string]any{"name": k.Name, "role": k.Role})
	writeJSON(w, http.StatusCreated, map[string]any{"id": k.ID, "name": k.Name, "role": k.Role, "key": plain, "prefix": k.Prefix, "created_at": k.CreatedAt})
	return nil
}

func (g *Gateway) handleListAPIKeys(w http.ResponseWriter, r *http.Request, _ Principal) error {
	cur, err := g.identity.apiKeys.Find(r.Context(), bson.M{"revoked_at": bson.M{"$exists": false}}, options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(1000))
	if err != nil {
		return fmt.Errorf("list api keys: %w", err)
	}
	keys := []APIKey{}
	if err := cur.All(r.Context(), &keys); err != nil {
		return fmt.Errorf("list api keys: %w", err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"api_keys": keys})
	return nil
}

func (g *Gateway) handleRevokeAPIKey(w http.ResponseWriter, r *http.Request, p Principal) error {
	kid, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var k APIKey
	now := time.Now().UTC()
	err = g.identity.apiKeys.FindOneAndUpdate(r.Context(), bson.M{"_id": kid, "revoked_at": bson.M{"$exists": false}}, bson.M{"$set": bson.M{"revoked_at": now}}).Decode(&k)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return fault.New(fault.NotFound, "api_key_not_found", "API key %s does not exist or is already revoked", kid)
	}
	if err != nil {
		return fmt.Errorf("revoke api key: %w", err)
	}
	g.broadcastRevocation(r.Context(), revocation{Digest: k.Digest})
	g.audit(r, p, "api_key.revoke", "api_key", k.ID, map[string]any{"name": k.Name}, nil)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// clientIP is the caller's address: the first X-Forwarded-For hop when the request
// came through a proxy on the cluster network, the TCP peer otherwise.
func clientIP(r *http.Request) string {
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		ip, _, _ := strings.Cut(xff, ",")
		return truncate(strings.TrimSpace(ip), 64)
	}
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i > 0 {
		host = host[:i]
	}
	return strings.Trim(host, "[]")
}
