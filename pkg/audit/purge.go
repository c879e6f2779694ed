package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// PurgeAction is the action of the entry a purge appends.
const PurgeAction = "audit.purge"

// PurgeResult says what a Purge did.
type PurgeResult struct {
	// Cutoff is the time before which entries were due for deletion.
	Cutoff time.Time
	// Through is the last purged sequence number: the new checkpoint (0 when nothing
	// was due).
	Through int64
	// Deleted counts the documents deleted by this call.
	Deleted int64
	// Entry is the audit.purge entry appended, when entries were purged.
	Entry *Entry
}

// Purge deletes the entries older than the retention from the start of the chain.
//
// Steps, each safe to repeat after a crash: verify the entries to delete (a broken
// chain is not purged: the error wraps ErrChainBroken and the *Break); append an
// audit.purge entry naming the new checkpoint; move the checkpoint; delete the entries
// up to it.
func (l *Log) Purge(ctx context.Context) (PurgeResult, error) {
	res := PurgeResult{Cutoff: l.cfg.Now().UTC().Add(-l.cfg.Retention).Truncate(time.Millisecond)}
	cp, _, err := l.readAnchor(ctx, checkpointID)
	if err != nil {
		return res, err
	}

	through, err := l.purgeBoundary(ctx, cp.Seq, res.Cutoff)
	if err != nil {
		return res, err
	}
	if through > cp.Seq {
		rep, err := l.Verify(ctx, cp.Seq+1, through)
		if err != nil {
			return res, err
		}
		if rep.Break != nil {
			return res, fmt.Errorf("purge audit entries through %d: %w: %w", through, ErrChainBroken, rep.Break)
		}
		var last entryDoc
		if err := l.entries.FindOne(ctx, bson.D{{Key: "_id", Value: seqKey(through)}}).Decode(&last); err != nil {
			return res, fmt.Errorf("read audit entry %d: %w", through, err)
		}
		e, err := l.Append(ctx, Event{
			Actor:  Actor{Type: ActorSystem, ID: "audit-retention", Name: "audit retention"},
			Action: PurgeAction,
			Target: Target{Type: "audit_log", ID: l.cfg.Collection},
			Summary: map[string]any{
				"through_seq":  through,
				"through_hash": last.Hash,
				"entries":      through - cp.Seq,
				"cutoff":       res.Cutoff,
				"retention":    l.cfg.Retention.String(),
			},
		})
		if err != nil {
			return res, fmt.Errorf("record audit purge: %w", err)
		}
		res.Entry = &e
		if err := l.advanceAnchor(ctx, checkpointID, anchor{Seq: through, Hash: last.Hash}, true); err != nil {
			return res, err
		}
		res.Through = through
	}

	// Delete up to the checkpoint as it is now: this also finishes a purge that
	// stopped after moving the checkpoint.
	cp, ok, err := l.readAnchor(ctx, checkpointID)
	if err != nil || !ok {
		return res, err
	}
	if !l.anchorValid(checkpointID, cp) {
		return res, fmt.Errorf("purge audit entries: %w: the checkpoint's MAC does not verify", ErrChainBroken)
	}
	dr, err := l.entries.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$lte", Value: seqKey(cp.Seq)}}}})
	if err != nil {
		return res, fmt.Errorf("delete audit entries through %d: %w", cp.Seq, err)
	}
	res.Deleted = dr.DeletedCount
	return res, nil
}

// purgeBoundary returns the last sequence number of the run of entries, from the start
// of the chain, that are older than cutoff.
func (l *Log) purgeBoundary(ctx context.Context, after int64, cutoff time.Time) (int64, error) {
	var first struct {
		Key string `bson:"_id"`
	}
	err := l.entries.FindOne(ctx,
		bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: seqKey(after)}}}, {Key: "time", Value: bson.D{{Key: "$gte", Value: cutoff}}}},
		options.FindOne().SetSort(bson.D{{Key: "_id", Value: 1}}).SetProjection(bson.D{{Key: "_id", Value: 1}})).Decode(&first)
	switch {
	case err == nil:
		seq, err := parseSeqKey(first.Key)
		if err != nil {
			return 0, fmt.Errorf("find first audit entry to keep: %w", err)
		}
		return seq - 1, nil
	case !errors.Is(err, mongo.ErrNoDocuments):
		return 0, fmt.Errorf("find first audit entry to keep: %w", err)
	}
	// Every entry is older than the cutoff: purge through the last one (the purge
	// entry itself comes after it).
	last, ok, err := l.lastEntry(ctx)
	switch {
	case err != nil:
		return 0, err
	case ok:
		return last.Seq, nil
	default:
		return after, nil
	}
}
