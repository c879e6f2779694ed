package audit

import (
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// tamperer edits a log's collections directly, as someone with database access would.
type tamperer struct {
	t       *testing.T
	entries *mongo.Collection
	state   *mongo.Collection
}

func (tp tamperer) set(seq int64, field string, v any) {
	tp.t.Helper()
	r, err := tp.entries.UpdateOne(tp.t.Context(), bson.D{{Key: "_id", Value: seqKey(seq)}}, bson.D{{Key: "$set", Value: bson.D{{Key: field, Value: v}}}})
	if err != nil || r.MatchedCount != 1 {
		tp.t.Fatalf("tamper: set %s on %d: %v", field, seq, err)
	}
}

func (tp tamperer) raw(seq int64) bson.D {
	tp.t.Helper()
	var d bson.D
	if err := tp.entries.FindOne(tp.t.Context(), bson.D{{Key: "_id", Value: seqKey(seq)}}).Decode(&d); err != nil {
		tp.t.Fatalf("tamper: read %d: %v", seq, err)
	}
	return d
}

func (tp tamperer) delete(seqs ...int64) {
	tp.t.Helper()
	for _, seq := range seqs {
		if _, err := tp.entries.DeleteOne(tp.t.Context(), bson.D{{Key: "_id", Value: seqKey(seq)}}); err != nil {
			tp.t.Fatalf("tamper: delete %d: %v", seq, err)
		}
	}
}

// put replaces the document with the given _id by d's other fields.
func (tp tamperer) put(seq int64, d bson.D) {
	tp.t.Helper()
	var body bson.D
	for _, e := range d {
		if e.Key != "_id" {
			body = append(body, e)
		}
	}
	body = append(bson.D{{Key: "_id", Value: seqKey(seq)}}, body...)
	tp.delete(seq)
	if _, err := tp.entries.InsertOne(tp.t.Context(), body); err != nil {
		tp.t.Fatalf("tamper: insert %d: %v", seq, err)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		tamper func(tp tamperer, chain []Entry)
		seq    int64  // where the break is reported
		reason Reason // "" means the chain must still verify
	}{
		{"untouched", func(tamperer, []Entry) {}, 0, ""},
		{"edit the action", func(tp tamperer, _ []Entry) { tp.set(3, "action", "agent.delete") }, 3, ReasonHashMismatch},
		{"edit the actor", func(tp tamperer, _ []Entry) { tp.set(3, "actor.id", "someone-else") }, 3, ReasonHashMismatch},
		{"edit a value in after", func(tp tamperer, _ []Entry) { tp.set(3, "after.max_sessions", int64(99)) }, 3, ReasonHashMismatch},
		{"add a field to after", func(tp tamperer, _ []Entry) { tp.set(3, "after.admin", true) }, 3, ReasonHashMismatch},
		{"edit the result", func(tp tamperer, _ []Entry) { tp.set(2, "result", "failure") }, 2, ReasonHashMismatch},
		{"edit the time", func(tp tamperer, c []Entry) { tp.set(4, "time", c[3].Time.Add(-time.Hour)) }, 4, ReasonHashMismatch},
		{"replace the hash with the next one's", func(tp tamperer, c []Entry) { tp.set(3, "hash", c[3].Hash) }, 3, ReasonHashMismatch},
		// The same number stored as a double instead of an integer is the same value.
		{"retype a number", func(tp tamperer, _ []Entry) { tp.set(3, "after.max_sessions", 8.0) }, 0, ""},
		{"delete an entry in the middle", func(tp tamperer, _ []Entry) { tp.delete(3) }, 3, ReasonSeqGap},
		{"delete the first entry", func(tp tamperer, _ []Entry) { tp.delete(1) }, 1, ReasonSeqGap},
		{"delete the newest entry", func(tp tamperer, _ []Entry) { tp.delete(5) }, 5, ReasonTruncated},
		{"delete the two newest entries", func(tp tamperer, _ []Entry) { tp.delete(4, 5) }, 4, ReasonTruncated},
		{"swap two entries", func(tp tamperer, _ []Entry) {
			a, b := tp.raw(2), tp.raw(3)
			tp.put(2, b)
			tp.put(3, a)
		}, 2, ReasonHashMismatch},
		{"delete one and renumber the rest", func(tp tamperer, _ []Entry) {
			four, five := tp.raw(4), tp.raw(5)
			tp.put(3, four)
			tp.put(4, five)
			tp.delete(5)
		}, 3, ReasonHashMismatch},
		{"splice in a validly signed entry of another log", func(tp tamperer, _ []Entry) {
			other := testLog(tp.t, tp.entries.Database(), Config{Collection: "other_log"})
			appendN(tp.t, other, 3, event("agent.create"))
			var d bson.D
			if err := tp.entries.Database().Collection("other_log").FindOne(tp.t.Context(), bson.D{{Key: "_id", Value: seqKey(3)}}).Decode(&d); err != nil {
				tp.t.Fatal(err)
			}
			tp.put(3, d)
		}, 3, ReasonPrevHashMismatch},
		{"unknown chain key", func(tp tamperer, _ []Entry) { tp.set(3, "key_id", "zz") }, 3, ReasonUnknownKey},
		{"undecodable entry", func(tp tamperer, _ []Entry) { tp.set(3, "action", bson.D{{Key: "x", Value: 1}}) }, 3, ReasonMalformed},
		{"delete the head", func(tp tamperer, _ []Entry) {
			if _, err := tp.state.DeleteOne(tp.t.Context(), bson.D{{Key: "_id", Value: headID}}); err != nil {
				tp.t.Fatal(err)
			}
		}, 5, ReasonHeadMissing},
		{"roll the head back with the tail", func(tp tamperer, c []Entry) {
			tp.delete(5)
			_, err := tp.state.UpdateOne(tp.t.Context(), bson.D{{Key: "_id", Value: headID}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "seq", Value: int64(4)}, {Key: "hash", Value: c[3].Hash}}}})
			if err != nil {
				tp.t.Fatal(err)
			}
		}, 4, ReasonAnchorInvalid},
		{"forge a checkpoint to hide deleted entries", func(tp tamperer, c []Entry) {
			tp.delete(1, 2)
			_, err := tp.state.InsertOne(tp.t.Context(), bson.D{{Key: "_id", Value: checkpointID}, {Key: "seq", Value: int64(2)},
				{Key: "hash", Value: c[1].Hash}, {Key: "key_id", Value: "a1"}, {Key: "mac", Value: c[1].Hash}})
			if err != nil {
				tp.t.Fatal(err)
			}
		}, 2, ReasonAnchorInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := testDB(t)
			l := testLog(t, db, Config{})
			ev := event("agent.update")
			ev.Before = map[string]any{"max_sessions": 5}
			ev.After = map[string]any{"max_sessions": 8, "groups": []string{"sales"}}
			chain := appendN(t, l, 5, ev)
			tt.tamper(tamperer{t: t, entries: db.Collection(DefaultCollection), state: db.Collection(DefaultCollection + "_state")}, chain)

			rep, err := l.Verify(t.Context(), 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if tt.reason == "" {
				if rep.Break != nil {
					t.Fatalf("unexpected break: %v", rep.Break)
				}
				return
			}
			if rep.Break == nil || rep.Break.Reason != tt.reason || rep.Break.Seq != tt.seq {
				t.Fatalf("break = %+v, want %s at %d", rep.Break, tt.reason, tt.seq)
			}
		})
	}
}

func TestAppendAfterTailDeletionKeepsTheGap(t *testing.T) {
	t.Parallel()
	db := testDB(t)
	appendN(t, testLog(t, db, Config{}), 5, event("agent.create"))
	if _, err := db.Collection(DefaultCollection).DeleteOne(t.Context(), bson.D{{Key: "_id", Value: seqKey(5)}}); err != nil {
		t.Fatal(err)
	}
	// A replica starting now must not reuse seq 5 and hide the deletion.
	fresh := testLog(t, db, Config{})
	e := appendN(t, fresh, 1, event("agent.create"))[0]
	if e.Seq != 6 {
		t.Fatalf("appended seq %d after deleting the tail, want 6", e.Seq)
	}
	rep, err := fresh.Verify(t.Context(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Break == nil || rep.Break.Reason != ReasonSeqGap || rep.Break.Seq != 5 {
		t.Fatalf("break = %+v, want seq_gap at 5", rep.Break)
	}
}

func TestVerifyRange(t *testing.T) {
	t.Parallel()
	db := testDB(t)
	l := testLog(t, db, Config{})
	appendN(t, l, 6, event("agent.create"))
	tests := []struct {
		name           string
		from, to       int64
		wantFrom, want int64 // first seq and count checked
	}{
		{"all", 0, 0, 1, 6},
		{"middle", 2, 4, 2, 3},
		{"from only", 5, 0, 5, 2},
		{"to only", 0, 3, 1, 3},
		{"past the end", 10, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := l.Verify(t.Context(), tt.from, tt.to)
			if err != nil || rep.Break != nil {
				t.Fatalf("verify: %v %v", err, rep.Break)
			}
			if rep.From != tt.wantFrom || rep.Checked != tt.want {
				t.Fatalf("checked %d from %d, want %d from %d", rep.Checked, rep.From, tt.want, tt.wantFrom)
			}
		})
	}
	// A range after an edited entry does not see it; one including it does.
	if _, err := db.Collection(DefaultCollection).UpdateOne(t.Context(), bson.D{{Key: "_id", Value: seqKey(2)}}, bson.D{{Key: "$set", Value: bson.D{{Key: "action", Value: "x.y"}}}}); err != nil {
		t.Fatal(err)
	}
	if rep, _ := l.Verify(t.Context(), 4, 0); rep.Break != nil {
		t.Fatalf("range 4.. saw %v", rep.Break)
	}
	if rep, _ := l.Verify(t.Context(), 1, 3); rep.Break == nil || rep.Break.Seq != 2 {
		t.Fatalf("range 1..3 break %+v, want at 2", rep.Break)
	}
}
