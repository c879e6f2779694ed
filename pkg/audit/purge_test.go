package audit

import (
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

const day = 24 * time.Hour

func TestPurge(t *testing.T) {
	t.Parallel()
	// Entry ages in days, oldest first, and how many a purge at "now" deletes: the run
	// of entries older than 180 days from the start of the chain.
	tests := []struct {
		name      string
		ages      []int
		wantPurge int64
	}{
		{"old then young", []int{400, 300, 200, 181, 179, 10, 0}, 4},
		// an old entry after a young one (clock skew between replicas) is kept
		{"skewed clocks", []int{200, 190, 100, 200, 5}, 2},
		{"nothing old", []int{179, 100, 1}, 0},
		{"everything old", []int{365, 200}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := testDB(t)
			clk := newClock()
			now := clk.Now()
			l := testLog(t, db, Config{Now: clk.Now})
			for _, age := range tt.ages {
				clk.Set(now.Add(-time.Duration(age) * day))
				appendN(t, l, 1, event("agent.create"))
			}
			clk.Set(now)
			total := int64(len(tt.ages))

			res, err := l.Purge(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if res.Through != tt.wantPurge || res.Deleted != tt.wantPurge || !res.Cutoff.Equal(now.Add(-MinRetention)) {
				t.Fatalf("purge result %+v, want %d purged", res, tt.wantPurge)
			}
			rep := mustVerify(t, l)
			if tt.wantPurge == 0 {
				if res.Entry != nil || rep.Checked != total {
					t.Fatalf("nothing due but entry %v, %d checked", res.Entry, rep.Checked)
				}
				return
			}
			// The purge is itself in the log, after the entries it kept.
			if res.Entry == nil || res.Entry.Action != PurgeAction || res.Entry.Seq != total+1 ||
				res.Entry.Summary["through_seq"] != tt.wantPurge || res.Entry.Actor.Type != ActorSystem {
				t.Fatalf("purge entry %+v", res.Entry)
			}
			if rep.Checkpoint.Seq != tt.wantPurge || rep.From != tt.wantPurge+1 || rep.Checked != total+1-tt.wantPurge {
				t.Fatalf("report after purge %+v", rep)
			}
			page, err := l.List(t.Context(), Filter{}, "", MaxLimit)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(page.Entries)) != total+1-tt.wantPurge {
				t.Fatalf("%d entries left", len(page.Entries))
			}
			for _, e := range page.Entries {
				if e.Seq <= tt.wantPurge {
					t.Fatalf("entry %d survived the purge", e.Seq)
				}
			}

			// Purging again deletes nothing and records nothing.
			again, err := l.Purge(t.Context())
			if err != nil || again.Deleted != 0 || again.Entry != nil {
				t.Fatalf("second purge %+v, %v", again, err)
			}
			// Appends go on, also from a replica that starts now.
			appendN(t, testLog(t, db, Config{Now: clk.Now}), 1, event("agent.create"))
			appendN(t, l, 1, event("agent.create"))
			mustVerify(t, l)
		})
	}
}

func TestPurgeTwiceOverTime(t *testing.T) {
	t.Parallel()
	db := testDB(t)
	clk := newClock()
	l := testLog(t, db, Config{Now: clk.Now})
	appendN(t, l, 3, event("agent.create"))
	clk.Set(clk.Now().Add(200 * day))
	if res, err := l.Purge(t.Context()); err != nil || res.Through != 3 {
		t.Fatalf("first purge %+v %v", res, err)
	}
	appendN(t, l, 2, event("agent.create")) // seq 5, 6
	clk.Set(clk.Now().Add(200 * day))
	// The first purge's own entry (seq 4) ages out too.
	res, err := l.Purge(t.Context())
	if err != nil || res.Through != 6 || res.Deleted != 3 || res.Entry.Seq != 7 {
		t.Fatalf("second purge %+v %v", res, err)
	}
	rep := mustVerify(t, l)
	if rep.Checkpoint.Seq != 6 || rep.Checked != 1 {
		t.Fatalf("report %+v", rep)
	}
}

func TestPurgeRefusesABrokenChain(t *testing.T) {
	t.Parallel()
	db := testDB(t)
	clk := newClock()
	l := testLog(t, db, Config{Now: clk.Now})
	appendN(t, l, 4, event("agent.create"))
	clk.Set(clk.Now().Add(200 * day))
	coll := db.Collection(DefaultCollection)
	if _, err := coll.UpdateOne(t.Context(), bson.D{{Key: "_id", Value: seqKey(2)}}, bson.D{{Key: "$set", Value: bson.D{{Key: "actor.id", Value: "x"}}}}); err != nil {
		t.Fatal(err)
	}
	_, err := l.Purge(t.Context())
	var brk *Break
	if !errors.Is(err, ErrChainBroken) || !errors.As(err, &brk) || brk.Seq != 2 {
		t.Fatalf("purge of a tampered chain: %v", err)
	}
	// The evidence is kept.
	if n, _ := coll.CountDocuments(t.Context(), bson.D{}); n != 4 {
		t.Fatalf("%d entries left, want 4", n)
	}
}

func TestPurgeFinishesAnInterruptedPurge(t *testing.T) {
	t.Parallel()
	db := testDB(t)
	clk := newClock()
	l := testLog(t, db, Config{Now: clk.Now})
	appendN(t, l, 3, event("agent.create"))
	coll := db.Collection(DefaultCollection)
	var first bson.D
	if err := coll.FindOne(t.Context(), bson.D{{Key: "_id", Value: seqKey(1)}}).Decode(&first); err != nil {
		t.Fatal(err)
	}
	clk.Set(clk.Now().Add(200 * day))
	if _, err := l.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	// As if the delete had not happened after the checkpoint moved.
	if _, err := coll.InsertOne(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, l) // entries behind the checkpoint are not part of the chain
	res, err := l.Purge(t.Context())
	if err != nil || res.Deleted != 1 || res.Entry != nil {
		t.Fatalf("purge of leftovers %+v %v", res, err)
	}
}
