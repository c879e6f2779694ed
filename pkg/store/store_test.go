package store_test

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/helmdesk/helmdesk/pkg/devstack"
	"github.com/helmdesk/helmdesk/pkg/observability"
	"github.com/helmdesk/helmdesk/pkg/store"
)

// Every command is measured by command, collection and outcome, whatever the
// slow-command log settings.
func TestCommandsAreMeasured(t *testing.T) {
	ctx := context.Background()
	mongo, err := devstack.StartMongo(ctx, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mongo.Close() })
	m := observability.NewMetrics()
	client, db, err := store.Connect(ctx, store.Config{URI: mongo.URI(), Database: "measured"}, m, noop.NewTracerProvider())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
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
