package testdeps

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func TestMongo(t *testing.T) {
	uri, db := Mongo(t)
	_, db2 := Mongo(t)
	if db == db2 {
		t.Errorf("two calls returned the same database name %q", db)
	}

	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetTimeout(10 * time.Second))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })

	coll := client.Database(db).Collection("tickets")
	if _, err := coll.InsertOne(t.Context(), bson.D{{Key: "_id", Value: 1}, {Key: "subject", Value: "hi"}}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	var got bson.M
	if err := coll.FindOne(t.Context(), bson.D{{Key: "_id", Value: 1}}).Decode(&got); err != nil {
		t.Fatalf("find: %v", err)
	}
	if got["subject"] != "hi" {
		t.Errorf("subject = %v, want hi", got["subject"])
	}
}

func TestMongoStopsAtCleanup(t *testing.T) {
	var uri string
	t.Run("inner", func(t *testing.T) { uri, _ = Mongo(t) })
	assertClosed(t, strings.TrimSuffix(strings.TrimPrefix(uri, "mongodb://"), "/"))
}

func TestMongoParallel(t *testing.T) {
	// Parallel starts must not race inside FerretDB (run with -race).
	for i := range 4 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			Mongo(t)
		})
	}
}

func TestDatabaseName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-zA-Z0-9_-]{1,63}$`)
	tests := []struct {
		name     string
		testName string
		prefix   string
	}{
		{name: "plain", testName: "TestStore", prefix: "TestStore_"},
		// subtest separators and spaces are replaced
		{name: "subtest", testName: "TestStore/find by id", prefix: "TestStore_find_by_id_"},
		// long names are cut to fit FerretDB's 63-character limit
		{name: "long", testName: strings.Repeat("x", 100), prefix: strings.Repeat("x", 54) + "_"},
		{name: "unicode", testName: "TestÜ", prefix: "Test__"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := databaseName(tt.testName)
			if !valid.MatchString(got) {
				t.Errorf("databaseName(%q) = %q, not a valid FerretDB name", tt.testName, got)
			}
			if !strings.HasPrefix(got, tt.prefix) {
				t.Errorf("databaseName(%q) = %q, want prefix %q", tt.testName, got, tt.prefix)
			}
		})
	}
}

func TestKafka(t *testing.T) {
	brokers := Kafka(t)
	if other := Kafka(t); other[0] == brokers[0] {
		t.Errorf("two calls returned the same broker %s", other[0])
	}

	conn, err := kafka.DialContext(t.Context(), "tcp", brokers[0])
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	controller, err := conn.Controller()
	if err != nil {
		t.Fatalf("controller: %v", err)
	}
	cc, err := kafka.DialContext(t.Context(), "tcp", net.JoinHostPort(controller.Host, strconv.Itoa(controller.Port)))
	if err != nil {
		t.Fatalf("dial controller: %v", err)
	}
	defer cc.Close()
	if err := cc.CreateTopics(kafka.TopicConfig{Topic: "t", NumPartitions: 2, ReplicationFactor: 1}); err != nil {
		t.Fatalf("create topic: %v", err)
	}

	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        "t",
		Balancer:     kafka.BalancerFunc(func(kafka.Message, ...int) int { return 1 }),
		BatchTimeout: 5 * time.Millisecond,
		RequiredAcks: kafka.RequireAll,
	}
	defer w.Close()
	if err := w.WriteMessages(t.Context(), kafka.Message{Value: []byte("hello")}); err != nil {
		t.Fatalf("write: %v", err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: "t", Partition: 1, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	m, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(m.Value) != "hello" {
		t.Errorf("read %q, want hello", m.Value)
	}
}

func TestKafkaStopsAtCleanup(t *testing.T) {
	var brokers []string
	t.Run("inner", func(t *testing.T) { brokers = Kafka(t) })
	assertClosed(t, brokers[0])
}

// TestRedisHelpers runs the same checks against both Redis helpers.
func TestRedisHelpers(t *testing.T) {
	tests := []struct {
		name   string
		start  func(testing.TB) string
		server string // expected INFO server field
	}{
		{name: "redis-server", start: Redis, server: "redis_mode:standalone"},
		{name: "miniredis", start: MiniRedis, server: "miniredis"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := tt.start(t)
			c := redis.NewClient(&redis.Options{Addr: addr})
			t.Cleanup(func() { _ = c.Close() })
			ctx := t.Context()

			if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
				t.Fatalf("set: %v", err)
			}
			if got := c.Get(ctx, "k").Val(); got != "v" {
				t.Errorf("get = %q, want v", got)
			}
			// TTLs expire on the wall clock, as in Redis.
			if err := c.Set(ctx, "short", "v", 50*time.Millisecond).Err(); err != nil {
				t.Fatalf("set with ttl: %v", err)
			}
			time.Sleep(120 * time.Millisecond)
			if n := c.Exists(ctx, "short").Val(); n != 0 {
				t.Errorf("key with 50ms TTL still exists after 120ms")
			}
			if tt.name == "redis-server" {
				info := c.Info(ctx, "server").Val()
				if !strings.Contains(info, tt.server) {
					t.Errorf("INFO server = %q, want it to contain %q", info, tt.server)
				}
				// No persistence configured.
				if got := c.ConfigGet(ctx, "save").Val()["save"]; got != "" {
					t.Errorf("CONFIG GET save = %q, want empty", got)
				}
			}
		})
	}
}

func TestRedisHelpersStopAtCleanup(t *testing.T) {
	for _, start := range []func(testing.TB) string{Redis, MiniRedis} {
		var addr string
		t.Run("inner", func(t *testing.T) { addr = start(t) })
		assertClosed(t, addr)
	}
}

func TestRedisFailsWithoutBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Redis(rec)
		t.Error("Redis returned without failing the test")
	}()
	<-done
	for _, want := range []string{"redis-server not found", "make test", "apt-get install redis-server"} {
		if !strings.Contains(rec.msg, want) {
			t.Errorf("fatal message %q does not mention %q", rec.msg, want)
		}
	}
}

// fatalRecorder records a Fatal call instead of failing the real test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *fatalRecorder) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

// assertClosed checks that nothing accepts connections on addr any more.
func assertClosed(t *testing.T, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		_ = conn.Close()
		t.Errorf("%s still accepts connections after cleanup", addr)
	}
}
