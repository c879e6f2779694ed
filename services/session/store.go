package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/helmdesk/helmdesk/pkg/fault"
	"github.com/helmdesk/helmdesk/pkg/store"
)

// Collections owned by the session service.
const (
	collCustomers = "customers"
	collSessions  = "sessions"
	collMessages  = "messages"
)

type repo struct {
	customers *mongo.Collection
	sessions  *mongo.Collection
	messages  *mongo.Collection
	reviews   *mongo.Collection
}

func newRepo(ctx context.Context, db *mongo.Database) (*repo, error) {
	err := store.EnsureIndexes(ctx, db,
		store.Index{Collection: collCustomers, Keys: bson.D{{Key: "user_id", Value: 1}}, Unique: true},
		store.Index{Collection: collSessions, Keys: bson.D{{Key: "agent_id", Value: 1}, {Key: "status", Value: 1}}, QueryOnly: true},
		store.Index{Collection: collSessions, Keys: bson.D{{Key: "customer_id", Value: 1}, {Key: "created_at", Value: -1}}, QueryOnly: true},
		store.Index{Collection: collMessages, Keys: bson.D{{Key: "session_id", Value: 1}, {Key: "client_msg_id", Value: 1}}, Unique: true},
		// Unique as _id is: messageID(session_id, seq).
		store.Index{Collection: collMessages, Keys: bson.D{{Key: "session_id", Value: 1}, {Key: "seq", Value: 1}}, Unique: true, QueryOnly: true},
		store.Index{Collection: collReviews, Keys: bson.D{{Key: "session_id", Value: 1}}, QueryOnly: true},
		store.Index{Collection: collSessions, Keys: bson.D{{Key: "agents", Value: 1}}, QueryOnly: true},
	)
	if err != nil {
		return nil, err
	}
	return &repo{customers: db.Collection(collCustomers), sessions: db.Collection(collSessions), messages: db.Collection(collMessages), reviews: db.Collection(collReviews)}, nil
}

func messageID(sessionID string, seq int64) string { return fmt.Sprintf("%s:%012d", sessionID, seq) }

// customerID is the id of the customer with a site user id. It is derived from the
// user id so that finding a customer is a lookup by _id, which every MongoDB
// implementation serves from the primary key.
func customerID(userID string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("helmdesk:customer:"+userID)).String()
}

// upsertCustomer finds or creates the customer with userID, merging profile into the
// stored one, and returns the customer as it was before this call (zero LastAgentID
// for a new customer).
func (r *repo) upsertCustomer(ctx context.Context, userID string, profile map[string]any, now time.Time) (Customer, error) {
	set := bson.M{"last_seen_at": now}
	for k, v := range profile {
		set["profile."+k] = v
	}
	id := customerID(userID)
	for attempt := 0; ; attempt++ {
		var before Customer
		err := r.customers.FindOneAndUpdate(ctx, bson.M{"_id": id}, bson.M{
			"$set":         set,
			"$inc":         bson.M{"session_count": 1},
			"$setOnInsert": bson.M{"user_id": userID, "created_at": now, "last_agent_id": ""},
		}, options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.Before)).Decode(&before)
		switch {
		case err == nil:
			return before, nil
		case errors.Is(err, mongo.ErrNoDocuments):
			return Customer{ID: id, UserID: userID, Profile: profile, CreatedAt: now, LastSeenAt: now}, nil
		case store.IsDuplicateKey(err) && attempt == 0:
			continue // a concurrent first visit created it; update that one
		default:
			return Customer{}, fmt.Errorf("upsert customer %s: %w", userID, err)
		}
	}
}

func (r *repo) setCustomerLastAgent(ctx context.Context, customerID, agentID string) error {
	if _, err := r.customers.UpdateByID(ctx, customerID, bson.M{"$set": bson.M{"last_agent_id": agentID}}); err != nil {
		return fmt.Errorf("record last agent of customer %s: %w", customerID, err)
	}
	return nil
}

func (r *repo) insertSession(ctx context.Context, s Session) error {
	if _, err := r.sessions.InsertOne(ctx, s); err != nil {
		return fmt.Errorf("insert session %s: %w", s.ID, err)
	}
	return nil
}

func (r *repo) deleteSession(ctx context.Context, id string) error {
	if _, err := r.sessions.DeleteOne(ctx, bson.M{"_id": id}); err != nil {
		return fmt.Errorf("delete session %s: %w", id, err)
	}
	return nil
}

func (r *repo) getSession(ctx context.Context, id string) (Session, error) {
	var s Session
	if err := r.sessions.FindOne(ctx, bson.M{"_id": id}).Decode(&s); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return Session{}, fault.New(fault.NotFound, "session_not_found", "session %s does not exist", id)
		}
		return Session{}, fmt.Errorf("load session %s: %w", id, err)
	}
	return s, nil
}

// Every update below selects by _id alone. MongoDB serves any filter from its indexes,
// but FerretDB only pushes a filter that is exactly {_id} down to its primary key and
// scans the collection otherwise; the conditions an update depends on are checked by
// the caller (and made atomic across replicas with Redis claims where two writers
// could race), so the same code is fast on both.

// setAssigned records that agentID serves the session now.
func (r *repo) setAssigned(ctx context.Context, id, agentID, group string, at time.Time) error {
	_, err := r.sessions.UpdateOne(ctx, bson.M{"_id": id},
		bson.M{"$set": bson.M{"status": string(StatusAssigned), "agent_id": agentID, "group": group, "assigned_at": at}, "$addToSet": bson.M{"agents": agentID}})
	if err != nil {
		return fmt.Errorf("assign session %s to %s: %w", id, agentID, err)
	}
	return nil
}

func (r *repo) markFirstResponse(ctx context.Context, id string, at time.Time) error {
	_, err := r.sessions.UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$set": bson.M{"first_response_at": at}})
	if err != nil {
		return fmt.Errorf("record first response of session %s: %w", id, err)
	}
	return nil
}

type sessionFilter struct {
	AgentID           string
	IncludePastAgents bool
	Status            Status
	Group             string
	Channel           string
	CustomerID        string
	UserID            string
	From, To          time.Time
	Before            string // session id cursor: only sessions created before it
	Limit             int
	// Summary allows sessions as SessionSummary has them (where that is cheaper).
	Summary bool
}

// assignedToOnly reports whether f asks for exactly the sessions an agent serves now
// (an agent console's list), which the agent index answers.
func (f sessionFilter) assignedToOnly() bool {
	return f.AgentID != "" && !f.IncludePastAgents && f.Status == StatusAssigned && f.Group == "" && f.Channel == "" &&
		f.CustomerID == "" && f.UserID == "" && f.From.IsZero() && f.To.IsZero() && f.Before == ""
}

// listSessions lists sessions newest first. Session ids are UUIDv7, so their order is
// creation order and the last id of a page is the cursor of the next.
func (r *repo) listSessions(ctx context.Context, f sessionFilter) ([]Session, error) {
	q := bson.M{}
	if f.AgentID != "" {
		if f.IncludePastAgents {
			q["agents"] = f.AgentID
		} else {
			q["agent_id"] = f.AgentID
		}
	}
	for k, v := range map[string]string{"status": string(f.Status), "group": f.Group, "channel": f.Channel, "customer_id": f.CustomerID, "user_id": f.UserID} {
		if v != "" {
			q[k] = v
		}
	}
	created := bson.M{}
	if !f.From.IsZero() {
		created["$gte"] = f.From
	}
	if !f.To.IsZero() {
		created["$lt"] = f.To
	}
	if len(created) > 0 {
		q["created_at"] = created
	}
	if f.Before != "" {
		q["_id"] = bson.M{"$lt": f.Before}
	}
	cur, err := r.sessions.Find(ctx, q, options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(int64(f.Limit)))
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	var out []Session
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return out, nil
}

// close marks the session closed.
func (r *repo) close(ctx context.Context, id, by, reason string, at time.Time) error {
	_, err := r.sessions.UpdateOne(ctx, bson.M{"_id": id},
		bson.M{"$set": bson.M{"status": string(StatusClosed), "closed_at": at, "closed_by": by, "close_reason": reason}})
	if err != nil {
		return fmt.Errorf("close session %s: %w", id, err)
	}
	return nil
}

// setQueued records that the session waits in group's queue.
func (r *repo) setQueued(ctx context.Context, id, group string) error {
	_, err := r.sessions.UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$set": bson.M{"status": string(StatusQueued), "agent_id": "", "group": group}})
	if err != nil {
		return fmt.Errorf("queue session %s: %w", id, err)
	}
	return nil
}

// setCSAT stores the rating.
func (r *repo) setCSAT(ctx context.Context, id string, c CSAT) error {
	if _, err := r.sessions.UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$set": bson.M{"csat": c}}); err != nil {
		return fmt.Errorf("store csat of session %s: %w", id, err)
	}
	return nil
}

// insertMessages persists a batch. A message whose (session, seq) or
// (session, client_msg_id) already exists is reported in dups by index, not as an
// error: the caller decides whether that is an expected replay.
func (r *repo) insertMessages(ctx context.Context, msgs []Message) (dups map[int]bool, err error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	docs := make([]any, len(msgs))
	for i := range msgs {
		docs[i] = msgs[i]
	}
	_, err = r.messages.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil {
		return nil, nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return nil, fmt.Errorf("insert %d messages: %w", len(msgs), err)
	}
	dups = map[int]bool{}
	for _, we := range bwe.WriteErrors {
		if !mongo.IsDuplicateKeyError(we) {
			return nil, fmt.Errorf("insert %d messages: %w", len(msgs), err)
		}
		dups[we.Index] = true
	}
	return dups, nil
}

func (r *repo) messagesAfter(ctx context.Context, sessionID string, afterSeq int64, limit int) ([]Message, error) {
	cur, err := r.messages.Find(ctx,
		bson.M{"session_id": sessionID, "seq": bson.M{"$gt": afterSeq}},
		options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("read messages of %s after %d: %w", sessionID, afterSeq, err)
	}
	var out []Message
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("read messages of %s after %d: %w", sessionID, afterSeq, err)
	}
	return out, nil
}

// lastMessages returns up to n of the session's newest messages, newest first.
func (r *repo) lastMessages(ctx context.Context, sessionID string, n int) ([]Message, error) {
	cur, err := r.messages.Find(ctx, bson.M{"session_id": sessionID},
		options.Find().SetSort(bson.D{{Key: "seq", Value: -1}}).SetLimit(int64(n)))
	if err != nil {
		return nil, fmt.Errorf("read last messages of %s: %w", sessionID, err)
	}
	var out []Message
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("read last messages of %s: %w", sessionID, err)
	}
	return out, nil
}
