package routing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/helmdesk/helmdesk/pkg/store"
	"github.com/helmdesk/helmdesk/services/routing/internal/rules"
)

// MongoDB collections owned by the routing service.
const (
	collAgents = "routing_agents"
	collGroups = "routing_groups"
	collRules  = "routing_rules"
)

// profile is an agent's routing profile as stored.
type profile struct {
	AgentID     string    `bson:"_id"`
	MaxSessions int       `bson:"max_sessions"`
	Groups      []string  `bson:"groups"`
	CreatedAt   time.Time `bson:"created_at"`
	UpdatedAt   time.Time `bson:"updated_at"`
}

// group is a group of agents (a skill group).
type group struct {
	Name      string    `bson:"_id"`
	CreatedAt time.Time `bson:"created_at"`
}

type ruleDoc struct {
	Condition string `bson:"condition"`
	Action    string `bson:"action"`
}

// ruleVersion is one stored version of the routing rules; every PutRules adds one.
type ruleVersion struct {
	Version   int64     `bson:"_id"`
	Rules     []ruleDoc `bson:"rules"`
	UpdatedAt time.Time `bson:"updated_at"`
	UpdatedBy string    `bson:"updated_by"`
}

func (v ruleVersion) rules() []rules.Rule {
	out := make([]rules.Rule, len(v.Rules))
	for i, r := range v.Rules {
		out[i] = rules.Rule{Condition: r.Condition, Action: r.Action}
	}
	return out
}

// repo is the MongoDB side of the service: profiles, groups and rule versions.
type repo struct {
	agents, groups, rules *mongo.Collection
}

func newRepo(ctx context.Context, db *mongo.Database) (*repo, error) {
	if err := store.EnsureIndexes(ctx, db,
		store.Index{Collection: collAgents, Keys: bson.D{{Key: "groups", Value: 1}}, Name: "groups", QueryOnly: true},
		store.Index{Collection: collRules, Keys: bson.D{{Key: "updated_at", Value: -1}}, Name: "updated_at", QueryOnly: true},
	); err != nil {
		return nil, err
	}
	return &repo{agents: db.Collection(collAgents), groups: db.Collection(collGroups), rules: db.Collection(collRules)}, nil
}

func (r *repo) upsertProfile(ctx context.Context, p profile) error {
	_, err := r.agents.UpdateOne(ctx, bson.M{"_id": p.AgentID},
		bson.M{"$set": bson.M{"max_sessions": p.MaxSessions, "groups": p.Groups, "updated_at": p.UpdatedAt},
			"$setOnInsert": bson.M{"created_at": p.UpdatedAt}},
		options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("store routing profile of agent %s: %w", p.AgentID, err)
	}
	return nil
}

func (r *repo) getProfile(ctx context.Context, agentID string) (profile, error) {
	var p profile
	if err := r.agents.FindOne(ctx, bson.M{"_id": agentID}).Decode(&p); err != nil {
		return profile{}, fmt.Errorf("load routing profile of agent %s: %w", agentID, store.NotFound(err))
	}
	return p, nil
}

func (r *repo) listProfiles(ctx context.Context, group string) ([]profile, error) {
	filter := bson.M{}
	if group != "" {
		filter["groups"] = group
	}
	cur, err := r.agents.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("list routing profiles: %w", err)
	}
	var out []profile
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("list routing profiles: %w", err)
	}
	return out, nil
}

func (r *repo) insertGroup(ctx context.Context, g group) error {
	if _, err := r.groups.InsertOne(ctx, g); err != nil {
		if store.IsDuplicateKey(err) {
			return errGroupExists
		}
		return fmt.Errorf("store group %s: %w", g.Name, err)
	}
	return nil
}

var errGroupExists = errors.New("group exists")

func (r *repo) listGroups(ctx context.Context) ([]group, error) {
	cur, err := r.groups.Find(ctx, bson.M{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	var out []group
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	return out, nil
}

// missingGroups returns the names that are not groups.
func (r *repo) missingGroups(ctx context.Context, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	cur, err := r.groups.Find(ctx, bson.M{"_id": bson.M{"$in": names}}, options.Find().SetProjection(bson.M{"_id": 1}))
	if err != nil {
		return nil, fmt.Errorf("look up groups: %w", err)
	}
	var found []group
	if err := cur.All(ctx, &found); err != nil {
		return nil, fmt.Errorf("look up groups: %w", err)
	}
	have := make(map[string]bool, len(found))
	for _, g := range found {
		have[g.Name] = true
	}
	var missing []string
	for _, n := range names {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	return missing, nil
}

// latestRules returns the newest rule version, or version 0 when none was stored.
func (r *repo) latestRules(ctx context.Context) (ruleVersion, error) {
	var v ruleVersion
	err := r.rules.FindOne(ctx, bson.M{}, options.FindOne().SetSort(bson.D{{Key: "_id", Value: -1}})).Decode(&v)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return ruleVersion{}, nil
	}
	if err != nil {
		return ruleVersion{}, fmt.Errorf("load routing rules: %w", err)
	}
	return v, nil
}

func (r *repo) getRules(ctx context.Context, version int64) (ruleVersion, error) {
	var v ruleVersion
	if err := r.rules.FindOne(ctx, bson.M{"_id": version}).Decode(&v); err != nil {
		return ruleVersion{}, fmt.Errorf("load routing rules version %d: %w", version, store.NotFound(err))
	}
	return v, nil
}

// appendRules stores rs as the version after the newest one and returns it. Two
// concurrent writers cannot take the same version: the loser retries on the next.
func (r *repo) appendRules(ctx context.Context, rs []rules.Rule, by string, at time.Time) (ruleVersion, error) {
	docs := make([]ruleDoc, len(rs))
	for i, rule := range rs {
		docs[i] = ruleDoc{Condition: rule.Condition, Action: rule.Action}
	}
	for range 10 {
		latest, err := r.latestRules(ctx)
		if err != nil {
			return ruleVersion{}, err
		}
		v := ruleVersion{Version: latest.Version + 1, Rules: docs, UpdatedAt: at, UpdatedBy: by}
		if _, err := r.rules.InsertOne(ctx, v); err != nil {
			if store.IsDuplicateKey(err) {
				continue
			}
			return ruleVersion{}, fmt.Errorf("store routing rules version %d: %w", v.Version, err)
		}
		return v, nil
	}
	return ruleVersion{}, errors.New("store routing rules: too many concurrent changes")
}

func (r *repo) listRuleVersions(ctx context.Context, limit int) ([]ruleVersion, error) {
	cur, err := r.rules.Find(ctx, bson.M{}, options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("list routing rule versions: %w", err)
	}
	var out []ruleVersion
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("list routing rule versions: %w", err)
	}
	return out, nil
}
