package devstack

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// BenchmarkInsertMessages measures what the session service's group commit asks of
// the embedded MongoDB under chat load: unordered batches of 48 chat messages spread
// over 5,000 conversations, into a collection that already holds 50,000. It runs with
// both unique indexes of the messages collection (as before query-only indexes were
// left out on FerretDB) and with the one FerretDB keeps.
func BenchmarkInsertMessages(b *testing.B) {
	both := []mongo.IndexModel{
		{Keys: bson.D{{Key: "session_id", Value: 1}, {Key: "client_msg_id", Value: 1}}, Options: options.Index().SetUnique(true)},
		{Keys: bson.D{{Key: "session_id", Value: 1}, {Key: "seq", Value: 1}}, Options: options.Index().SetUnique(true)},
	}
	b.Run("indexes=2", func(b *testing.B) { benchmarkInsertMessages(b, both) })
	b.Run("indexes=1", func(b *testing.B) { benchmarkInsertMessages(b, both[:1]) })
}

func benchmarkInsertMessages(b *testing.B, indexes []mongo.IndexModel) {
	ctx := context.Background()
	m, err := StartMongo(ctx, b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = m.Close() })
	withMongo(b, m.URI(), func(c *mongo.Client) {
		coll := c.Database("bench").Collection("messages")
		_, err := coll.Indexes().CreateMany(ctx, indexes)
		if err != nil {
			b.Fatal(err)
		}
		const sessions, batch = 5000, 48
		seqs := make([]int64, sessions)
		next := 0
		docs := func(n int) []any {
			out := make([]any, n)
			for i := range out {
				s := (next * 7919) % sessions // spread like interleaved conversations
				next++
				seqs[s]++
				sid := fmt.Sprintf("s-%08d", s)
				out[i] = bson.D{
					{Key: "_id", Value: fmt.Sprintf("%s:%012d", sid, seqs[s])},
					{Key: "session_id", Value: sid}, {Key: "seq", Value: seqs[s]},
					{Key: "client_msg_id", Value: fmt.Sprintf("c-%d", next)},
					{Key: "sender", Value: bson.D{{Key: "type", Value: "customer"}, {Key: "id", Value: sid}}},
					{Key: "text", Value: "Hello, my order has not arrived yet and the tracking page shows nothing."},
					{Key: "created_at", Value: time.Now()},
				}
			}
			return out
		}
		for range 100 {
			if _, err := coll.InsertMany(ctx, docs(500), options.InsertMany().SetOrdered(false)); err != nil {
				b.Fatal(err)
			}
		}
		time.Sleep(1500 * time.Millisecond) // let the _id lookup indexer pass
		b.ResetTimer()
		start := time.Now()
		for b.Loop() {
			if _, err := coll.InsertMany(ctx, docs(batch), options.InsertMany().SetOrdered(false)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "docs/s")
	})
}
