package audit

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Reason says how the chain is broken.
type Reason string

// The reasons Verify reports.
const (
	// ReasonHashMismatch: the entry's content does not match its hash (edited, or
	// moved to another sequence number).
	ReasonHashMismatch Reason = "hash_mismatch"
	// ReasonSeqGap: entries are missing before this sequence number (deleted).
	ReasonSeqGap Reason = "seq_gap"
	// ReasonPrevHashMismatch: the entry does not link to the one before it (an entry
	// was replaced by a validly signed one from elsewhere, e.g. another log).
	ReasonPrevHashMismatch Reason = "prev_hash_mismatch"
	// ReasonUnknownKey: the entry names a chain key that is not configured.
	ReasonUnknownKey Reason = "unknown_key"
	// ReasonMalformed: the stored document cannot be read as an entry.
	ReasonMalformed Reason = "malformed"
	// ReasonTruncated: the head anchor is past the last entry (newest entries deleted).
	ReasonTruncated Reason = "truncated"
	// ReasonHeadMismatch: the head anchor's hash differs from the entry it names.
	ReasonHeadMismatch Reason = "head_mismatch"
	// ReasonHeadMissing: entries exist but the head anchor does not.
	ReasonHeadMissing Reason = "head_missing"
	// ReasonAnchorInvalid: the head or checkpoint anchor's MAC does not verify (forged).
	ReasonAnchorInvalid Reason = "anchor_invalid"
)

// Break is the first broken link found.
type Break struct {
	Seq    int64  `json:"seq"`
	Reason Reason `json:"reason"`
	Detail string `json:"detail"`
}

func (b *Break) Error() string {
	return fmt.Sprintf("audit chain broken at seq %d: %s: %s", b.Seq, b.Reason, b.Detail)
}

// Report is the outcome of Verify.
type Report struct {
	// From and To are the sequence numbers of the first and last entries checked
	// (0 when none were).
	From, To int64
	// Checked counts the entries whose hash and link were verified.
	Checked int64
	// Checkpoint is the purge checkpoint (Seq 0 when nothing was ever purged).
	Checkpoint Anchor
	// Head is the head anchor as read when verification started.
	Head Anchor
	// Break is the first broken link, nil when the chain verified.
	Break *Break
}

// OK reports whether the verified range is intact.
func (r Report) OK() bool { return r.Break == nil }

// Verify checks the chain from sequence number from to to (0 for either means the
// start of the retained chain and its end) and reports the first broken link. Entries
// up to the purge checkpoint are skipped: they are gone or about to be. When the range
// reaches the end, the head anchor is checked too. An error is returned only when the
// database could not be read; a broken chain is a Report with a Break.
func (l *Log) Verify(ctx context.Context, from, to int64) (Report, error) {
	var rep Report
	brk := func(seq int64, reason Reason, format string, args ...any) (Report, error) {
		rep.Break = &Break{Seq: seq, Reason: reason, Detail: fmt.Sprintf(format, args...)}
		return rep, nil
	}

	// Read the anchors before the entries: entries appended meanwhile are then
	// after the head and cannot make it look wrong.
	head, hasHead, err := l.readAnchor(ctx, headID)
	if err != nil {
		return rep, err
	}
	cp, hasCP, err := l.readAnchor(ctx, checkpointID)
	if err != nil {
		return rep, err
	}
	rep.Head = Anchor{Seq: head.Seq, Hash: head.Hash}
	rep.Checkpoint = Anchor{Seq: cp.Seq, Hash: cp.Hash}
	if hasCP && !l.anchorValid(checkpointID, cp) {
		return brk(cp.Seq, ReasonAnchorInvalid, "the purge checkpoint's MAC does not verify")
	}
	if hasHead && !l.anchorValid(headID, head) {
		return brk(head.Seq, ReasonAnchorInvalid, "the head's MAC does not verify")
	}

	// Where to start, and the hash the first entry must link to.
	start := max(from, cp.Seq+1, 1)
	prev := cp.anchor
	if start > cp.Seq+1 {
		var d entryDoc
		err := l.entries.FindOne(ctx, bson.D{{Key: "_id", Value: seqKey(start - 1)}}).Decode(&d)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments) && start-1 > head.Seq:
			return rep, nil // the range begins after the end of the chain
		case errors.Is(err, mongo.ErrNoDocuments):
			return brk(start-1, ReasonSeqGap, "entry %d, before the range, is missing", start-1)
		case err != nil:
			return rep, fmt.Errorf("read audit entry %d: %w", start-1, err)
		}
		prev = anchor{Seq: start - 1, Hash: d.Hash}
	}

	filter := bson.D{{Key: "$gte", Value: seqKey(start)}}
	if to > 0 {
		filter = append(filter, bson.E{Key: "$lte", Value: seqKey(to)})
	}
	cur, err := l.entries.Find(ctx, bson.D{{Key: "_id", Value: filter}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(500))
	if err != nil {
		return rep, fmt.Errorf("read audit entries from %d: %w", start, err)
	}
	defer func() { _ = cur.Close(context.WithoutCancel(ctx)) }()

	headHash := ""
	for cur.Next(ctx) {
		var d entryDoc
		if err := cur.Decode(&d); err != nil {
			key, _ := cur.Current.Lookup("_id").StringValueOK()
			seq, _ := parseSeqKey(key)
			return brk(seq, ReasonMalformed, "decode: %v", err)
		}
		e, err := fromDoc(&d)
		if err != nil {
			seq, _ := parseSeqKey(d.Key)
			return brk(seq, ReasonMalformed, "%v", err)
		}
		if e.Seq != prev.Seq+1 {
			return brk(prev.Seq+1, ReasonSeqGap, "entries %d to %d are missing", prev.Seq+1, e.Seq-1)
		}
		key, ok := l.keys[e.KeyID]
		if !ok {
			return brk(e.Seq, ReasonUnknownKey, "chain key %q is not configured", e.KeyID)
		}
		if !hmac.Equal([]byte(entryHash(key, &e)), []byte(e.Hash)) {
			return brk(e.Seq, ReasonHashMismatch, "the entry's content does not match its hash")
		}
		if e.PrevHash != prev.Hash {
			return brk(e.Seq, ReasonPrevHashMismatch, "prev_hash does not match the hash of entry %d", prev.Seq)
		}
		if rep.From == 0 {
			rep.From = e.Seq
		}
		rep.To = e.Seq
		rep.Checked++
		if e.Seq == head.Seq {
			headHash = e.Hash
		}
		prev = anchor{Seq: e.Seq, Hash: e.Hash}
	}
	if err := cur.Err(); err != nil {
		return rep, fmt.Errorf("read audit entries: %w", err)
	}

	// The head, when the range reaches it.
	if to != 0 && to < head.Seq {
		return rep, nil
	}
	switch {
	case !hasHead && (prev.Seq > 0 || hasCP):
		return brk(prev.Seq, ReasonHeadMissing, "entries exist but the head anchor is missing")
	case head.Seq > prev.Seq:
		return brk(prev.Seq+1, ReasonTruncated, "the head is at %d but the last entry is %d", head.Seq, prev.Seq)
	case head.Seq > 0 && head.Seq >= start && headHash != head.Hash:
		return brk(head.Seq, ReasonHeadMismatch, "the head's hash differs from entry %d's", head.Seq)
	}
	return rep, nil
}
