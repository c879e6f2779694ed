package devstack

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// FerretDB's connections never checkpoint (wal_autocheckpoint(0)); without the
// checkpointer the write-ahead log would hold every write ever made.
func TestWriteAheadLogIsCheckpointed(t *testing.T) {
	m, dir := startMongo(t)
	ctx := testContext(t)

	const rounds, perRound = 24, 100
	text := strings.Repeat("x", 2000)
	// The checkpointer finds a new database file within walFileRescan; from then on
	// the log must stop growing.
	settled := int(walFileRescan/(2*walCheckpointInterval)) + 2
	var walAt []int64
	withMongo(t, m.URI(), func(c *mongo.Client) {
		coll := c.Database("devstack").Collection("docs")
		for r := range rounds {
			docs := make([]any, perRound)
			for i := range docs {
				docs[i] = bson.D{{Key: "_id", Value: r*perRound + i}, {Key: "text", Value: text}}
			}
			if _, err := coll.InsertMany(ctx, docs); err != nil {
				t.Fatalf("insert round %d: %v", r, err)
			}
			time.Sleep(2 * walCheckpointInterval)
			fi, err := os.Stat(filepath.Join(dir, "devstack.sqlite-wal"))
			if err != nil {
				t.Fatalf("no write-ahead log after round %d (is the database in WAL mode?): %v", r, err)
			}
			walAt = append(walAt, fi.Size())
		}
		// Everything written is still there.
		n, err := coll.CountDocuments(ctx, bson.D{})
		if err != nil || n != rounds*perRound {
			t.Fatalf("count = %d, %v; want %d", n, err, rounds*perRound)
		}
	})
	// Each round writes 200 KB of text, about 440 KB of log; a log that is checkpointed
	// is reused from its start and keeps its size.
	perRoundBytes := int64(perRound * len(text))
	if grew := walAt[rounds-1] - walAt[settled]; grew > 2*perRoundBytes {
		t.Errorf("write-ahead log grew by %d bytes over %d rounds of %d bytes (sizes %v): it is not being checkpointed",
			grew, rounds-1-settled, perRoundBytes, walAt)
	}
}

// A dropped database's file is let go, not held open (and its disk space with it).
func TestCheckpointerLetsDroppedDatabasesGo(t *testing.T) {
	m, dir := startMongo(t)
	ctx := testContext(t)
	c := newWALCheckpointer(dir, testLogger(t))
	defer c.files.close()
	file := filepath.Join(dir, "dropme.sqlite")
	withMongo(t, m.URI(), func(cl *mongo.Client) {
		if _, err := cl.Database("dropme").Collection("docs").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
			t.Fatal(err)
		}
		if err := c.pass(ctx); err != nil {
			t.Fatalf("checkpoint: %v", err)
		}
		if c.files.dbs[file] == nil {
			t.Fatalf("checkpointer did not pick up %s (has %v)", file, c.files.dbs)
		}
		if err := cl.Database("dropme").Drop(ctx); err != nil {
			t.Fatal(err)
		}
	})
	c.scanned = time.Time{} // rescan now
	if err := c.pass(ctx); err != nil {
		t.Fatalf("checkpoint after the drop: %v", err)
	}
	if c.files.dbs[file] != nil {
		t.Errorf("checkpointer still holds %s after its database was dropped", file)
	}
}
