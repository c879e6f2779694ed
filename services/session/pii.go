package session

import (
	"context"
	"fmt"
	"maps"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/helmdesk/helmdesk/pkg/crypto"
	"github.com/helmdesk/helmdesk/pkg/fault"
	"github.com/helmdesk/helmdesk/pkg/frames"
	sessionv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/session/v1"
)

// Sensitive profile attributes are never stored in clear: they are kept encrypted
// (AES-256-GCM, bound to their record and field) beside the profile, and customers
// carry a keyed blind index of each so they can still be found by phone or e-mail.
var sensitiveFields = map[string]crypto.Field{
	"phone": crypto.PhoneField("customers.phone"),
	"email": crypto.EmailField("customers.email"),
}

// splitProfile separates the sensitive attributes from the rest.
func splitProfile(profile map[string]any) (plain map[string]any, secret map[string]string) {
	plain = maps.Clone(profile)
	if plain == nil {
		plain = map[string]any{}
	}
	for name := range sensitiveFields {
		v, ok := plain[name]
		if !ok {
			continue
		}
		delete(plain, name)
		if s, ok := v.(string); ok && s != "" {
			if secret == nil {
				secret = map[string]string{}
			}
			secret[name] = s
		}
	}
	return plain, secret
}

// seal encrypts each secret attribute for one record.
func (s *Service) seal(coll, id string, secret map[string]string) (map[string]string, error) {
	if len(secret) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(secret))
	for name, v := range secret {
		c, err := s.deps.Keyring.EncryptString(v, crypto.FieldAAD(coll, id, name))
		if err != nil {
			return nil, fmt.Errorf("encrypt %s of %s/%s: %w", name, coll, id, err)
		}
		out[name] = c
	}
	return out, nil
}

// unseal decrypts a record's sensitive attributes into profile. A ciphertext that
// fails to decrypt is an error, never garbage.
func (s *Service) unseal(coll, id string, sealed map[string]string, profile map[string]any) error {
	for name, c := range sealed {
		v, err := s.deps.Keyring.DecryptString(c, crypto.FieldAAD(coll, id, name))
		if err != nil {
			return fmt.Errorf("decrypt %s of %s/%s: %w", name, coll, id, err)
		}
		profile[name] = v
	}
	return nil
}

// sealCustomer stores a customer's sensitive attributes and their blind indexes.
func (s *Service) sealCustomer(ctx context.Context, customerID string, secret map[string]string) error {
	if len(secret) == 0 {
		return nil
	}
	sealed, err := s.seal(collCustomers, customerID, secret)
	if err != nil {
		return err
	}
	set := bson.M{}
	for name, c := range sealed {
		set["sensitive."+name] = c
		set[name+"_idx"] = s.deps.Keyring.BlindIndex(sensitiveFields[name], secret[name])
	}
	if _, err := s.repo.customers.UpdateByID(ctx, customerID, bson.M{"$set": set}); err != nil {
		return fmt.Errorf("store sensitive attributes of customer %s: %w", customerID, err)
	}
	return nil
}

// CustomerRecord is a customer with their attributes decrypted.
type CustomerRecord struct {
	ID           string
	UserID       string
	Profile      map[string]any
	SessionCount int64
	CreatedAt    time.Time
	LastSeenAt   time.Time
}

type customerDoc struct {
	Customer  `bson:",inline"`
	Sensitive map[string]string `bson:"sensitive,omitempty"`
}

// FindCustomers looks customers up by phone or e-mail (exact, after normalisation),
// through the blind index: under every index key, so lookups keep working while
// index keys rotate.
func (s *Service) FindCustomers(ctx context.Context, field, value string) ([]CustomerRecord, error) {
	f, ok := sensitiveFields[field]
	if !ok {
		return nil, fault.Invalid("field", "invalid_lookup_field", "customers can be looked up by phone or email")
	}
	idx := s.deps.Keyring.BlindIndexes(f, value)
	if len(idx) == 0 {
		return nil, fault.Invalid(field, "invalid_"+field, "%s is empty or not a valid %s", field, field)
	}
	cur, err := s.repo.customers.Find(ctx, bson.M{field + "_idx": bson.M{"$in": idx}})
	if err != nil {
		return nil, fmt.Errorf("look up customers by %s: %w", field, err)
	}
	var docs []customerDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("look up customers by %s: %w", field, err)
	}
	out := make([]CustomerRecord, 0, len(docs))
	for _, d := range docs {
		profile := plainMap(d.Profile)
		if err := s.unseal(collCustomers, d.ID, d.Sensitive, profile); err != nil {
			return nil, err
		}
		out = append(out, CustomerRecord{ID: d.ID, UserID: d.UserID, Profile: profile, SessionCount: d.SessionCount, CreatedAt: d.CreatedAt, LastSeenAt: d.LastSeenAt})
	}
	return out, nil
}

// EraseCustomer forgets a customer (GDPR erasure): the customer record goes, their
// sessions lose profile and identity, and what they wrote is replaced. Sessions and
// message seqs stay, so agents' transcripts keep their shape and metrics stay whole.
// It returns how many sessions and messages were scrubbed.
func (s *Service) EraseCustomer(ctx context.Context, customerID string) (sessions, messages int64, err error) {
	var c Customer
	if err := s.repo.customers.FindOne(ctx, bson.M{"_id": customerID}).Decode(&c); err != nil {
		return 0, 0, fault.New(fault.NotFound, "customer_not_found", "customer %s does not exist", customerID)
	}
	cur, err := s.repo.sessions.Find(ctx, bson.M{"customer_id": customerID})
	if err != nil {
		return 0, 0, fmt.Errorf("find sessions of customer %s: %w", customerID, err)
	}
	var list []Session
	if err := cur.All(ctx, &list); err != nil {
		return 0, 0, fmt.Errorf("find sessions of customer %s: %w", customerID, err)
	}
	erasedID := "erased-" + customerID
	for _, sess := range list {
		if _, err := s.repo.sessions.UpdateByID(ctx, sess.ID, bson.M{"$set": bson.M{"profile": bson.M{}, "user_id": erasedID, "page_url": ""}, "$unset": bson.M{"sensitive": "", "csat.comment": ""}}); err != nil {
			return sessions, messages, fmt.Errorf("scrub session %s: %w", sess.ID, err)
		}
		res, err := s.repo.messages.UpdateMany(ctx, bson.M{"session_id": sess.ID, "sender.type": frames.SenderCustomer}, bson.M{"$set": bson.M{"text": "[erased]", "event": "erased"}})
		if err != nil {
			return sessions, messages, fmt.Errorf("scrub messages of %s: %w", sess.ID, err)
		}
		_ = s.deps.Redis.Del(ctx, recentKey(sess.ID)).Err()
		sessions++
		messages += res.ModifiedCount
	}
	if _, err := s.repo.customers.DeleteOne(ctx, bson.M{"_id": customerID}); err != nil {
		return sessions, messages, fmt.Errorf("delete customer %s: %w", customerID, err)
	}
	return sessions, messages, nil
}

func (p *grpcPort) FindCustomers(ctx context.Context, req *sessionv1.FindCustomersRequest) (*sessionv1.FindCustomersResponse, error) {
	list, err := p.svc.FindCustomers(ctx, req.GetField(), req.GetValue())
	if err != nil {
		return nil, err
	}
	out := &sessionv1.FindCustomersResponse{Customers: make([]*sessionv1.Customer, 0, len(list))}
	for _, c := range list {
		profile, err := structpb.NewStruct(c.Profile)
		if err != nil {
			return nil, fault.New(fault.Internal, "internal", "stored profile of customer %s is not JSON", c.ID)
		}
		out.Customers = append(out.Customers, &sessionv1.Customer{Id: c.ID, UserId: c.UserID, Profile: profile, SessionCount: c.SessionCount,
			CreatedAt: timestamppb.New(c.CreatedAt), LastSeenAt: timestamppb.New(c.LastSeenAt)})
	}
	return out, nil
}

func (p *grpcPort) EraseCustomer(ctx context.Context, req *sessionv1.EraseCustomerRequest) (*sessionv1.EraseCustomerResponse, error) {
	sessions, messages, err := p.svc.EraseCustomer(ctx, req.GetCustomerId())
	if err != nil {
		return nil, err
	}
	return &sessionv1.EraseCustomerResponse{SessionsScrubbed: sessions, MessagesScrubbed: messages}, nil
}

// ReencryptResult counts what Reencrypt rewrote.
type ReencryptResult struct {
	Documents int64 // documents updated
	Fields    int64 // ciphertexts rewritten under the active key
	Indexes   int64 // blind indexes recomputed under the active index key
}

// Reencrypt rewrites every sensitive field stored under a key other than the active
// one, and every blind index computed under an old index key, so that old keys can
// be retired after a rotation. It is safe to run while the service runs and to run
// again after an interruption.
func Reencrypt(ctx context.Context, db *mongo.Database, kr *crypto.Keyring) (ReencryptResult, error) {
	var res ReencryptResult
	for _, coll := range []string{collCustomers, collSessions} {
		cur, err := db.Collection(coll).Find(ctx, bson.M{"sensitive": bson.M{"$exists": true}})
		if err != nil {
			return res, fmt.Errorf("scan %s: %w", coll, err)
		}
		for cur.Next(ctx) {
			var doc struct {
				ID        string            `bson:"_id"`
				Sensitive map[string]string `bson:"sensitive"`
				PhoneIdx  string            `bson:"phone_idx"`
				EmailIdx  string            `bson:"email_idx"`
			}
			if err := cur.Decode(&doc); err != nil {
				return res, fmt.Errorf("decode %s document: %w", coll, err)
			}
			set := bson.M{}
			for name, ct := range doc.Sensitive {
				aad := crypto.FieldAAD(coll, doc.ID, name)
				if kr.NeedsReencrypt(ct) {
					fresh, err := kr.Reencrypt(ct, aad)
					if err != nil {
						return res, fmt.Errorf("re-encrypt %s of %s/%s: %w", name, coll, doc.ID, err)
					}
					set["sensitive."+name] = fresh
					res.Fields++
				}
				idx := map[string]string{"phone": doc.PhoneIdx, "email": doc.EmailIdx}[name]
				if coll == collCustomers && idx != "" && kr.NeedsReindex(idx) {
					plain, err := kr.DecryptString(ct, aad)
					if err != nil {
						return res, fmt.Errorf("decrypt %s of %s/%s: %w", name, coll, doc.ID, err)
					}
					set[name+"_idx"] = kr.BlindIndex(sensitiveFields[name], plain)
					res.Indexes++
				}
			}
			if len(set) == 0 {
				continue
			}
			if _, err := db.Collection(coll).UpdateByID(ctx, doc.ID, bson.M{"$set": set}); err != nil {
				return res, fmt.Errorf("rewrite %s/%s: %w", coll, doc.ID, err)
			}
			res.Documents++
		}
		if err := cur.Err(); err != nil {
			return res, fmt.Errorf("scan %s: %w", coll, err)
		}
		cur.Close(ctx)
	}
	return res, nil
}
