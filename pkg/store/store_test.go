package store_test

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodriver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/helmdesk/helmdesk/pkg/devstack"
	"github.com/helmdesk/helmdesk/pkg/observability"
	"github.com/helmdesk/helmdesk/pkg/store"
)

// connectFerretDB starts an embedded FerretDB and connects to database name on it.
func connectFerretDB(t *testing.T, name string, m *observability.Metrics) (*mongodriver.Client, *mongodriver.Database) {
	t.Helper()
	mongo, err := devstack.StartMongo(context.Background(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mongo.Close() })
	client, db, err := store.Connect(context.Background(), store.Config{URI: mongo.URI(), Database: name}, m, noop.NewTracerProvider())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client, db
}

// Every command is measured by command, collection and outcome, whatever the
// slow-command log settings.
func TestCommandsAreMeasured(t *testing.T) {
	ctx := context.Background()
	m := observability.NewMetrics()
	_, db := connectFerretDB(t, "measured", m)
	things := db.Collection("things")
	if _, err := things.InsertOne(ctx, bson.M{"_id": "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := things.InsertOne(ctx, bson.M{"_id": "b"}); err != nil {
		t.Fatal(err)
	}
	if err := things.FindOne(ctx, bson.M{"_id": "a"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := db.RunCommand(ctx, bson.D{{Key: "noSuchCommand", Value: 1}}).Err(); err == nil {
		t.Fatal("an unknown command succeeded")
	}
	for _, c := range []struct {
		command, collection, outcome string
		want                         uint64
	}{
		{"insert", "things", "ok", 2},
		{"find", "things", "ok", 1},
		{"noSuchCommand", "", "error", 1},
	} {
		if got := observations(t, m, c.command, c.collection, c.outcome); got != c.want {
			t.Errorf("%s on %q (%s): %d observations, want %d", c.command, c.collection, c.outcome, got, c.want)
		}
	}
}

func observations(t *testing.T, m *observability.Metrics, labels ...string) uint64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"command", "collection", "outcome"}
	for _, f := range families {
		if f.GetName() != "helmdesk_mongodb_command_duration_seconds" {
			continue
		}
	metric:
		for _, mt := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range mt.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i, n := range names {
				if have[n] != labels[i] {
					continue metric
				}
			}
			return mt.GetHistogram().GetSampleCount()
		}
	}
	return 0
}

// On FerretDB, indexes that only serve queries are not kept: it answers queries
// from _id's index alone, so they would only slow writes.
func TestQueryOnlyIndexesAreNotKeptOnFerretDB(t *testing.T) {
	ctx := context.Background()
	client, db := connectFerretDB(t, "indexed", observability.NewMetrics())
	if is, err := store.IsFerretDB(ctx, client); err != nil || !is {
		t.Fatalf("IsFerretDB = %v, %v on FerretDB", is, err)
	}
	things := db.Collection("things")
	// An index from before it was marked query-only.
	if err := store.EnsureIndexes(ctx, db, store.Index{Collection: "things", Keys: bson.D{{Key: "owner", Value: 1}, {Key: "at", Value: -1}}}); err != nil {
		t.Fatal(err)
	}
	if got := indexNames(t, things); !got["owner_1_at_-1"] {
		t.Fatalf("indexes %v, want owner_1_at_-1", got)
	}
	err := store.EnsureIndexes(ctx, db,
		store.Index{Collection: "things", Keys: bson.D{{Key: "owner", Value: 1}, {Key: "at", Value: -1}}, QueryOnly: true},
		store.Index{Collection: "things", Keys: bson.D{{Key: "seq", Value: 1}}, Unique: true, QueryOnly: true},
		store.Index{Collection: "things", Keys: bson.D{{Key: "key", Value: 1}}, Unique: true},
	)
	if err != nil {
		t.Fatal(err)
	}
	got := indexNames(t, things)
	if got["owner_1_at_-1"] || got["seq_1"] || !got["key_1"] {
		t.Fatalf("indexes %v, want _id_ and key_1 only", got)
	}
	// The unique index that stays is enforced.
	if _, err := things.InsertOne(ctx, bson.M{"_id": "a", "key": "k"}); err != nil {
		t.Fatal(err)
	}
	if _, err := things.InsertOne(ctx, bson.M{"_id": "b", "key": "k"}); !store.IsDuplicateKey(err) {
		t.Fatalf("a second document with key k: %v, want a duplicate key error", err)
	}
	// Running it again (every start does) changes nothing.
	if err := store.EnsureIndexes(ctx, db, store.Index{Collection: "things", Keys: bson.D{{Key: "seq", Value: 1}}, QueryOnly: true}); err != nil {
		t.Fatal(err)
	}
}

func indexNames(t *testing.T, c interface {
	Indexes() mongodriver.IndexView
}) map[string]bool {
	t.Helper()
	specs, err := c.Indexes().ListSpecifications(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, s := range specs {
		names[s.Name] = true
	}
	return names
}
