package devstack

import (
	"context"
	"log/slog"
	"net"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// testLogger writes to the test's output, shown with -v or on failure.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startMongo starts FerretDB in a temporary folder, closed when the test ends.
func startMongo(t testing.TB) (m *Mongo, dir string) {
	t.Helper()
	dir = t.TempDir()
	m, err := StartMongo(testContext(t), dir, testLogger(t))
	if err != nil {
		t.Fatalf("start mongo: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m, dir
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// withMongo runs fn with a client that is disconnected when fn returns:
// FerretDB waits up to 3 s for connected clients when it is closed.
func withMongo(t testing.TB, uri string, fn func(*mongo.Client)) {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetTimeout(10 * time.Second))
	if err != nil {
		t.Fatalf("connect to mongo: %v", err)
	}
	defer func() { _ = c.Disconnect(context.Background()) }()
	fn(c)
}

func insertDoc(t testing.TB, uri string, doc bson.D) {
	t.Helper()
	withMongo(t, uri, func(c *mongo.Client) {
		if _, err := c.Database("devstack").Collection("docs").InsertOne(testContext(t), doc); err != nil {
			t.Fatalf("insert document: %v", err)
		}
	})
}

func findDoc(t testing.TB, uri string, id string) (got bson.M) {
	t.Helper()
	withMongo(t, uri, func(c *mongo.Client) {
		got = findDocWith(t, c, id)
	})
	return got
}

func findDocWith(t testing.TB, c *mongo.Client, id string) bson.M {
	t.Helper()
	coll := c.Database("devstack").Collection("docs")
	var got bson.M
	if err := coll.FindOne(testContext(t), bson.D{{Key: "_id", Value: id}}).Decode(&got); err != nil {
		t.Fatalf("find document %s: %v", id, err)
	}
	return got
}

// createTopic creates topic through the controller, as kafka-go requires.
func createTopic(t testing.TB, brokers []string, topic string, partitions int) {
	t.Helper()
	ctx := testContext(t)
	conn, err := kafka.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		t.Fatalf("dial kafka: %v", err)
	}
	defer conn.Close()
	controller, err := conn.Controller()
	if err != nil {
		t.Fatalf("find controller: %v", err)
	}
	cc, err := kafka.DialContext(ctx, "tcp", net.JoinHostPort(controller.Host, strconv.Itoa(controller.Port)))
	if err != nil {
		t.Fatalf("dial controller: %v", err)
	}
	defer cc.Close()
	err = cc.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1})
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

func partitionCount(t testing.TB, brokers []string, topic string) int {
	t.Helper()
	conn, err := kafka.DialContext(testContext(t), "tcp", brokers[0])
	if err != nil {
		t.Fatalf("dial kafka: %v", err)
	}
	defer conn.Close()
	ps, err := conn.ReadPartitions(topic)
	if err != nil {
		t.Fatalf("read partitions of %s: %v", topic, err)
	}
	return len(ps)
}

// writeMessages writes msgs synchronously, each to the partition in its
// Partition field.
func writeMessages(t testing.TB, brokers []string, topic string, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{
		Addr:                   kafka.TCP(brokers...),
		Topic:                  topic,
		Balancer:               kafka.BalancerFunc(func(m kafka.Message, _ ...int) int { return m.Partition }),
		BatchTimeout:           5 * time.Millisecond,
		RequiredAcks:           kafka.RequireAll,
		AllowAutoTopicCreation: true,
	}
	defer w.Close()
	if err := w.WriteMessages(testContext(t), msgs...); err != nil {
		t.Fatalf("write messages: %v", err)
	}
}

// readValues reads n messages from the start of one partition.
func readValues(t testing.TB, brokers []string, topic string, partition, n int) []string {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   brokers,
		Topic:     topic,
		Partition: partition,
		MaxWait:   50 * time.Millisecond,
	})
	defer r.Close()
	ctx := testContext(t)
	var out []string
	for range n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read message %d of %s/%d: %v", len(out), topic, partition, err)
		}
		out = append(out, string(m.Value))
	}
	return out
}

func redisClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func equal[T any](t testing.TB, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
}

// consumeGroup fetches n messages as a member of group, commits them and
// leaves the group.
func consumeGroup(t testing.TB, brokers []string, topic, group string, n int) []string {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     brokers,
		Topic:       topic,
		GroupID:     group,
		StartOffset: kafka.FirstOffset,
		MaxWait:     50 * time.Millisecond,
	})
	defer r.Close()
	ctx := testContext(t)
	var out []string
	for range n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("fetch from group %s: %v", group, err)
		}
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatalf("commit: %v", err)
		}
		out = append(out, string(m.Value))
	}
	return out
}
