package audit

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/helmdesk/helmdesk/pkg/crypto"
	"github.com/helmdesk/helmdesk/pkg/logkey"
	"github.com/helmdesk/helmdesk/pkg/store"
)

// Defaults and limits of a Config.
const (
	DefaultCollection  = "audit_log"
	MinRetention       = 180 * 24 * time.Hour
	DefaultRetention   = MinRetention
	DefaultMaxAttempts = 100
	minKeySize         = 32
)

// EnvKeys is the environment variable holding the chain keys, in the format of
// crypto.ParseKeyList: "a2:<base64>,a1:<base64>", 32-byte keys, the first active.
const EnvKeys = "HELMDESK_AUDIT_KEYS"

// KeysFromEnv reads the chain keys from HELMDESK_AUDIT_KEYS (getenv is os.Getenv in
// production).
func KeysFromEnv(getenv func(string) string) ([]crypto.Key, error) {
	v := getenv(EnvKeys)
	if v == "" {
		return nil, fmt.Errorf("%s is not set (generate a key with `helmdesk keys generate`)", EnvKeys)
	}
	keys, err := crypto.ParseKeyList(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvKeys, err)
	}
	return keys, nil
}

// Config configures a Log. Only Keys is required.
type Config struct {
	// Collection holds the entries; its anchors live in Collection+"_state".
	Collection string
	// Keys are the chain keys (at least 32 bytes each): the first signs new entries,
	// all of them verify. Parse them with crypto.ParseKeyList.
	Keys []crypto.Key
	// Retention is how long entries are kept before Purge deletes them: at least
	// MinRetention (180 days) unless AllowShortRetention is set, which only tests do.
	Retention           time.Duration
	AllowShortRetention bool
	// MaxAttempts bounds the inserts one Append tries while other replicas win the
	// race for the next sequence number.
	MaxAttempts int
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Logger receives warnings (discarded when nil).
	Logger *slog.Logger
}

// Log is an audit log. It is safe for concurrent use; several Logs (one per gateway
// replica) may share a collection.
type Log struct {
	entries *mongo.Collection
	state   *mongo.Collection
	keys    map[string][]byte
	active  string
	cfg     Config

	conflicts atomic.Int64 // inserts lost to another replica
	inserts   atomic.Int64 // insert commands sent (one per batch and attempt)

	turn chan struct{} // a one-slot semaphore: serialises commits and guards tip
	tip  *anchor       // last entry this Log knows of; nil until loaded

	mu    sync.Mutex   // guards queue
	queue []*appendReq // events waiting for the next batch

	beforeInsert func(ctx context.Context, entries []Entry) // a test hook
}

// anchor is a (seq, hash) point of the chain: the tip, the head or the checkpoint.
type anchor struct {
	Seq  int64
	Hash string
}

// Anchor is a point of the chain, for recording it outside MongoDB.
type Anchor struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// ErrChainBroken is returned by Purge when the part it would delete does not verify.
var ErrChainBroken = errors.New("audit chain is broken")

// New returns a Log on db and creates its indexes.
func New(ctx context.Context, db *mongo.Database, cfg Config) (*Log, error) {
	if cfg.Collection == "" {
		cfg.Collection = DefaultCollection
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Retention < 0 || (cfg.Retention < MinRetention && !cfg.AllowShortRetention) {
		return nil, fmt.Errorf("audit retention %v is shorter than the minimum %v", cfg.Retention, MinRetention)
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Keys) == 0 {
		return nil, errors.New("audit: no chain key")
	}
	l := &Log{
		entries: db.Collection(cfg.Collection),
		state:   db.Collection(cfg.Collection + "_state"),
		keys:    make(map[string][]byte, len(cfg.Keys)),
		active:  cfg.Keys[0].ID,
		cfg:     cfg,
		turn:    make(chan struct{}, 1),
	}
	for _, k := range cfg.Keys {
		if k.ID == "" {
			return nil, errors.New("audit: chain key with an empty id")
		}
		if len(k.Secret) < minKeySize {
			return nil, fmt.Errorf("audit: chain key %s is %d bytes, want at least %d", k.ID, len(k.Secret), minKeySize)
		}
		if _, dup := l.keys[k.ID]; dup {
			return nil, fmt.Errorf("audit: duplicate chain key id %q", k.ID)
		}
		l.keys[k.ID] = append([]byte(nil), k.Secret...)
	}
	err := store.EnsureIndexes(ctx, db,
		store.Index{Collection: cfg.Collection, Keys: bson.D{{Key: "time", Value: -1}}, Name: "time"},
		store.Index{Collection: cfg.Collection, Keys: bson.D{{Key: "actor.id", Value: 1}, {Key: "_id", Value: -1}}, Name: "actor"},
		store.Index{Collection: cfg.Collection, Keys: bson.D{{Key: "action", Value: 1}, {Key: "_id", Value: -1}}, Name: "action"},
		store.Index{Collection: cfg.Collection, Keys: bson.D{{Key: "target.type", Value: 1}, {Key: "target.id", Value: 1}, {Key: "_id", Value: -1}}, Name: "target"},
	)
	if err != nil {
		return nil, fmt.Errorf("create audit indexes: %w", err)
	}
	return l, nil
}

// entryDoc is an entry as stored. The sequence number is the _id (see seqKey), so
// MongoDB's unique _id is what keeps the chain free of forks.
type entryDoc struct {
	Key       string         `bson:"_id"`
	ID        string         `bson:"id"`
	Time      time.Time      `bson:"time"`
	KeyID     string         `bson:"key_id"`
	Actor     actorDoc       `bson:"actor"`
	Action    string         `bson:"action"`
	Target    targetDoc      `bson:"target"`
	Summary   map[string]any `bson:"summary,omitempty"`
	Before    map[string]any `bson:"before,omitempty"`
	After     map[string]any `bson:"after,omitempty"`
	SourceIP  string         `bson:"source_ip,omitempty"`
	UserAgent string         `bson:"user_agent,omitempty"`
	Result    string         `bson:"result"`
	PrevHash  string         `bson:"prev_hash"`
	Hash      string         `bson:"hash"`
}

type actorDoc struct {
	Type  string `bson:"type"`
	ID    string `bson:"id,omitempty"`
	Name  string `bson:"name,omitempty"`
	Email string `bson:"email,omitempty"`
}

type targetDoc struct {
	Type string `bson:"type,omitempty"`
	ID   string `bson:"id,omitempty"`
}

// seqKey is the _id of entry seq: the number as 20 zero-padded decimal digits, so that
// string order is numeric order, and so that FerretDB answers lookups by _id from its
// primary key (it does for string and ObjectID _ids only; an integer _id is a scan).
func seqKey(seq int64) string { return fmt.Sprintf("%020d", seq) }

// parseSeqKey is the inverse of seqKey.
func parseSeqKey(k string) (int64, error) {
	seq, err := strconv.ParseInt(k, 10, 64)
	if err != nil || len(k) != 20 || seq < 1 {
		return 0, fmt.Errorf("_id %.40q is not a sequence number", k)
	}
	return seq, nil
}

func toDoc(e *Entry) entryDoc {
	return entryDoc{
		Key: seqKey(e.Seq), ID: e.ID, Time: e.Time, KeyID: e.KeyID,
		Actor:   actorDoc{Type: string(e.Actor.Type), ID: e.Actor.ID, Name: e.Actor.Name, Email: e.Actor.Email},
		Action:  e.Action,
		Target:  targetDoc{Type: e.Target.Type, ID: e.Target.ID},
		Summary: e.Summary, Before: e.Before, After: e.After,
		SourceIP: e.SourceIP, UserAgent: e.UserAgent, Result: string(e.Result),
		PrevHash: e.PrevHash, Hash: e.Hash,
	}
}

// fromDoc converts a stored entry back, making its maps plain again.
func fromDoc(d *entryDoc) (Entry, error) {
	seq, err := parseSeqKey(d.Key)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{
		Seq: seq, ID: d.ID, Time: d.Time.UTC(), KeyID: d.KeyID,
		Event: Event{
			Actor:    Actor{Type: ActorType(d.Actor.Type), ID: d.Actor.ID, Name: d.Actor.Name, Email: d.Actor.Email},
			Action:   d.Action,
			Target:   Target{Type: d.Target.Type, ID: d.Target.ID},
			SourceIP: d.SourceIP, UserAgent: d.UserAgent, Result: Result(d.Result),
		},
		PrevHash: d.PrevHash, Hash: d.Hash,
	}
	if e.Summary, err = plainMap(d.Summary); err != nil {
		return Entry{}, fmt.Errorf("summary: %w", err)
	}
	if e.Before, err = plainMap(d.Before); err != nil {
		return Entry{}, fmt.Errorf("before: %w", err)
	}
	if e.After, err = plainMap(d.After); err != nil {
		return Entry{}, fmt.Errorf("after: %w", err)
	}
	return e, nil
}

// Append records an event at the end of the chain and returns the entry.
//
// It fails with a fault.InvalidArgument (or TooLarge) error when the event is invalid.
// The entry is committed once Append returns it, even if the head anchor could not be
// moved (that is logged; the next append or Verify copes).
//
// Concurrent appends are committed together (group commit): while one batch is being
// written, the events that arrive queue up, and the next caller to take the turn
// writes all of them with one insert and moves the head once. A burst of N appends
// thus costs a few round trips instead of 2N serialised ones, and each caller still
// returns only after its own entry is stored.
func (l *Log) Append(ctx context.Context, ev Event) (Entry, error) {
	ev, err := prepare(ev)
	if err != nil {
		return Entry{}, err
	}
	if err := ctx.Err(); err != nil {
		return Entry{}, fmt.Errorf("wait to append audit entry: %w", err)
	}
	req := &appendReq{ev: ev, done: make(chan struct{})}
	l.mu.Lock()
	l.queue = append(l.queue, req)
	l.mu.Unlock()
	for {
		select {
		case <-req.done:
			return req.entry, req.err
		case l.turn <- struct{}{}:
			l.commitQueued(ctx, req)
			<-l.turn
		case <-ctx.Done():
			if l.withdraw(req) {
				return Entry{}, fmt.Errorf("wait to append audit entry: %w", ctx.Err())
			}
			// A batch has taken it: its outcome is the answer.
			<-req.done
			return req.entry, req.err
		}
	}
}

// appendReq is one caller's event waiting to be committed.
type appendReq struct {
	ev    Event
	entry Entry
	err   error
	done  chan struct{} // closed once entry or err is set
}

func (r *appendReq) finish(e Entry, err error) {
	r.entry, r.err = e, err
	close(r.done)
}

// maxBatch bounds the entries one insert carries.
const maxBatch = 256

// commitTimeout bounds one batch's writes. A batch carries other callers' events, so
// it does not stop when the context of the caller writing it ends.
const commitTimeout = 10 * time.Second

// withdraw removes req from the queue unless a batch has already taken it.
func (l *Log) withdraw(req *appendReq) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, q := range l.queue {
		if q == req {
			l.queue = append(l.queue[:i], l.queue[i+1:]...)
			return true
		}
	}
	return false
}

// commitQueued writes the queued events, in batches, until req's is written (so that
// a caller does not keep committing others' events under sustained load). The caller
// holds the turn.
func (l *Log) commitQueued(ctx context.Context, req *appendReq) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	for {
		select {
		case <-req.done:
			return
		default:
		}
		l.mu.Lock()
		n := min(len(l.queue), maxBatch)
		batch := make([]*appendReq, n)
		copy(batch, l.queue)
		l.queue = append(l.queue[:0], l.queue[n:]...)
		l.mu.Unlock()
		if n == 0 {
			return
		}
		l.commit(ctx, batch)
	}
}

// commit chains batch onto the tip and inserts it, retrying the entries that lose the
// race for their sequence numbers to another replica. Every request is finished.
func (l *Log) commit(ctx context.Context, batch []*appendReq) {
	fail := func(err error) {
		for _, r := range batch {
			r.finish(Entry{}, err)
		}
	}
	if l.tip == nil {
		if err := l.loadTip(ctx); err != nil {
			fail(err)
			return
		}
	}
	defer func() {
		if err := l.advanceHead(ctx, *l.tip); err != nil {
			l.cfg.Logger.Warn("move audit head", slog.Int64(logkey.Seq, l.tip.Seq), slog.Any(logkey.Error, err))
		}
	}()
	key := l.keys[l.active]
	for range l.cfg.MaxAttempts {
		entries := make([]Entry, len(batch))
		docs := make([]any, len(batch))
		prev := *l.tip
		for i, r := range batch {
			id, err := newID()
			if err != nil {
				fail(err)
				return
			}
			e := Entry{
				Seq:      prev.Seq + 1,
				ID:       id,
				Time:     l.cfg.Now().UTC().Truncate(time.Millisecond),
				KeyID:    l.active,
				Event:    r.ev,
				PrevHash: prev.Hash,
			}
			e.Hash = entryHash(key, &e)
			entries[i], docs[i] = e, toDoc(&e)
			prev = anchor{Seq: e.Seq, Hash: e.Hash}
		}
		if entries[0].Seq == 1 {
			// The first append creates the head anchor, so that from now on a
			// missing head means tampering.
			if err := l.createHead(ctx); err != nil {
				fail(err)
				return
			}
		}
		if l.beforeInsert != nil {
			l.beforeInsert(ctx, entries)
		}
		l.inserts.Add(1)
		_, err := l.entries.InsertMany(ctx, docs, options.InsertMany().SetOrdered(true))
		if err == nil {
			for i, r := range batch {
				r.finish(entries[i], nil)
			}
			l.tip = &prev
			return
		}
		if !store.IsDuplicateKey(err) {
			fail(fmt.Errorf("insert audit entries %d-%d: %w", entries[0].Seq, prev.Seq, err))
			return
		}
		// Another replica appended first. An ordered insert stops at the first
		// clash: the entries before it are ours and committed (their hashes say so).
		n, rerr := l.committedPrefix(ctx, entries)
		if rerr != nil {
			fail(rerr)
			return
		}
		for i := range n {
			batch[i].finish(entries[i], nil)
		}
		if n > 0 {
			l.tip = &anchor{Seq: entries[n-1].Seq, Hash: entries[n-1].Hash}
		}
		batch = batch[n:]
		if len(batch) == 0 {
			return
		}
		l.conflicts.Add(1)
		if err := l.refreshTip(ctx); err != nil {
			fail(err)
			return
		}
	}
	fail(fmt.Errorf("append audit entry: still contended after %d attempts", l.cfg.MaxAttempts))
}

// committedPrefix returns how many of entries, from the first, are stored as written.
func (l *Log) committedPrefix(ctx context.Context, entries []Entry) (int, error) {
	for i, e := range entries {
		var stored struct {
			Hash string `bson:"hash"`
		}
		err := l.entries.FindOne(ctx, bson.D{{Key: "_id", Value: seqKey(e.Seq)}},
			options.FindOne().SetProjection(bson.D{{Key: "hash", Value: 1}})).Decode(&stored)
		if errors.Is(err, mongo.ErrNoDocuments) || (err == nil && stored.Hash != e.Hash) {
			return i, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read audit entry %d: %w", e.Seq, err)
		}
	}
	return len(entries), nil
}

// loadTip finds the last entry. It starts from the checkpoint or the head anchor,
// whichever is further on, and reads forward entry by entry (lookups by _id: sorting
// the collection would cost a scan on FerretDB). Starting from the head keeps a gap
// visible when the newest entries were deleted, instead of silently reusing their
// sequence numbers. Only without a valid head (a new log, or tampering) is the last
// entry found by sorting.
func (l *Log) loadTip(ctx context.Context) error {
	tip := anchor{}
	cp, ok, err := l.readAnchor(ctx, checkpointID)
	if err != nil {
		return err
	}
	if ok {
		tip = cp.anchor
	}
	head, ok, err := l.readAnchor(ctx, headID)
	if err != nil {
		return err
	}
	if ok && l.anchorValid(headID, head) {
		if head.Seq > tip.Seq {
			tip = head.anchor
		}
	} else {
		last, found, err := l.lastEntry(ctx)
		if err != nil {
			return err
		}
		if found && last.Seq > tip.Seq {
			tip = last
		}
	}
	return l.readForward(ctx, tip)
}

// refreshTip catches up after another replica appended: from the head when it is
// ahead, then entry by entry.
func (l *Log) refreshTip(ctx context.Context) error {
	tip := *l.tip
	head, ok, err := l.readAnchor(ctx, headID)
	if err != nil {
		return err
	}
	if ok && head.Seq > tip.Seq && l.anchorValid(headID, head) {
		tip = head.anchor
	}
	return l.readForward(ctx, tip)
}

// readForward sets the tip to the last of the entries that follow tip without a gap.
func (l *Log) readForward(ctx context.Context, tip anchor) error {
	for {
		// A filter on _id alone, so that FerretDB uses the primary key.
		var next struct {
			Hash string `bson:"hash"`
		}
		err := l.entries.FindOne(ctx, bson.D{{Key: "_id", Value: seqKey(tip.Seq + 1)}},
			options.FindOne().SetProjection(bson.D{{Key: "hash", Value: 1}})).Decode(&next)
		if errors.Is(err, mongo.ErrNoDocuments) {
			l.tip = &tip
			return nil
		}
		if err != nil {
			return fmt.Errorf("read audit entry %d: %w", tip.Seq+1, err)
		}
		tip = anchor{Seq: tip.Seq + 1, Hash: next.Hash}
	}
}

// lastEntry returns the entry with the highest sequence number.
func (l *Log) lastEntry(ctx context.Context) (anchor, bool, error) {
	var last struct {
		Key  string `bson:"_id"`
		Hash string `bson:"hash"`
	}
	err := l.entries.FindOne(ctx, bson.D{},
		options.FindOne().SetSort(bson.D{{Key: "_id", Value: -1}}).SetProjection(bson.D{{Key: "hash", Value: 1}})).Decode(&last)
	switch {
	case err == nil:
		seq, err := parseSeqKey(last.Key)
		if err != nil {
			return anchor{}, false, fmt.Errorf("read last audit entry: %w", err)
		}
		return anchor{Seq: seq, Hash: last.Hash}, true, nil
	case errors.Is(err, mongo.ErrNoDocuments):
		return anchor{}, false, nil
	default:
		return anchor{}, false, fmt.Errorf("read last audit entry: %w", err)
	}
}

func newID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random audit entry id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Anchors in the state collection.
const (
	headID       = "head"
	checkpointID = "checkpoint"
)

type anchorDoc struct {
	ID    string    `bson:"_id"`
	Seq   int64     `bson:"seq"`
	Hash  string    `bson:"hash"`
	KeyID string    `bson:"key_id"`
	MAC   string    `bson:"mac"`
	Time  time.Time `bson:"time"`
}

type storedAnchor struct {
	anchor
	KeyID string
	MAC   string
}

// anchorMAC authenticates an anchor, so that one cannot be moved without the chain key
// (copying an entry's hash into the checkpoint, say, to hide deleted entries).
func anchorMAC(key []byte, kind string, a anchor) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("helmdesk-audit-" + kind + "-v1\x00" + strconv.FormatInt(a.Seq, 10) + "\x00" + a.Hash))
	return hex.EncodeToString(mac.Sum(nil))
}

func (l *Log) anchorValid(kind string, a storedAnchor) bool {
	key, ok := l.keys[a.KeyID]
	return ok && hmac.Equal([]byte(a.MAC), []byte(anchorMAC(key, kind, a.anchor)))
}

func (l *Log) newAnchorDoc(kind string, a anchor) anchorDoc {
	return anchorDoc{ID: kind, Seq: a.Seq, Hash: a.Hash, KeyID: l.active, MAC: anchorMAC(l.keys[l.active], kind, a), Time: l.cfg.Now().UTC()}
}

func (l *Log) readAnchor(ctx context.Context, kind string) (storedAnchor, bool, error) {
	var d anchorDoc
	err := l.state.FindOne(ctx, bson.D{{Key: "_id", Value: kind}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return storedAnchor{}, false, nil
	}
	if err != nil {
		return storedAnchor{}, false, fmt.Errorf("read audit %s: %w", kind, err)
	}
	return storedAnchor{anchor: anchor{Seq: d.Seq, Hash: d.Hash}, KeyID: d.KeyID, MAC: d.MAC}, true, nil
}

// createHead inserts the head at seq 0 unless it exists.
func (l *Log) createHead(ctx context.Context) error {
	_, err := l.state.InsertOne(ctx, l.newAnchorDoc(headID, anchor{}))
	if err != nil && !store.IsDuplicateKey(err) {
		return fmt.Errorf("create audit head: %w", err)
	}
	return nil
}

// advanceHead moves the head forward to a; it never moves back.
func (l *Log) advanceHead(ctx context.Context, a anchor) error {
	return l.advanceAnchor(ctx, headID, a, false)
}

// advanceAnchor sets an anchor to a if it is behind a. With create, a missing anchor is
// inserted.
func (l *Log) advanceAnchor(ctx context.Context, kind string, a anchor, create bool) error {
	d := l.newAnchorDoc(kind, a)
	set := bson.D{{Key: "seq", Value: d.Seq}, {Key: "hash", Value: d.Hash}, {Key: "key_id", Value: d.KeyID}, {Key: "mac", Value: d.MAC}, {Key: "time", Value: d.Time}}
	_, err := l.state.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: kind}, {Key: "seq", Value: bson.D{{Key: "$lt", Value: a.Seq}}}},
		bson.D{{Key: "$set", Value: set}},
		options.UpdateOne().SetUpsert(create))
	if err != nil && !(create && store.IsDuplicateKey(err)) { // an upsert loses to a newer anchor
		return fmt.Errorf("move audit %s to %d: %w", kind, a.Seq, err)
	}
	return nil
}

// Head returns the head anchor: the newest sequence number appended and its hash. Record
// it outside MongoDB now and then; Verify against it later detects truncation even if
// the head in MongoDB was rolled back.
func (l *Log) Head(ctx context.Context) (Anchor, error) {
	h, ok, err := l.readAnchor(ctx, headID)
	if err != nil || !ok {
		return Anchor{}, err
	}
	return Anchor{Seq: h.Seq, Hash: h.Hash}, nil
}
