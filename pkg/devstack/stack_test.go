package devstack

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestStackDataSurvivesRestart writes to every dependency, restarts the
// stack on the same directory and reads everything back, with either Redis.
func TestStackDataSurvivesRestart(t *testing.T) {
	for _, tt := range []struct {
		mode, kind, redisEntry string
	}{
		{RedisServer, "redis-server", "redis"},
		{RedisEmbedded, "miniredis", "redis.json"},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			dir := t.TempDir()
			ctx := testContext(t)

			s, err := Start(ctx, Options{DataDir: dir, Logger: testLogger(t), Redis: tt.mode})
			if err != nil {
				t.Fatalf("start stack: %v", err)
			}
			if s.RedisKind != tt.kind {
				t.Fatalf("RedisKind = %q, want %q", s.RedisKind, tt.kind)
			}
			insertDoc(t, s.MongoURI, bson.D{{Key: "_id", Value: "ticket-1"}, {Key: "status", Value: "open"}})
			writeMessages(t, s.KafkaBrokers, "events", kafka.Message{Value: []byte("ticket-1 opened")})
			rc := redis.NewClient(&redis.Options{Addr: s.RedisAddr})
			must(t, rc.HSet(ctx, "ticket:1", "assignee", "ada").Err())
			must(t, rc.SAdd(ctx, "open", "ticket-1", "ticket-2").Err())
			must(t, rc.ZAdd(ctx, "sla", redis.Z{Score: 30, Member: "ticket-1"}).Err())
			_ = rc.Close()
			if err := s.Close(); err != nil {
				t.Fatalf("close stack: %v", err)
			}

			for _, p := range []string{"mongo", "kafka", tt.redisEntry, ".lock"} {
				if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
					t.Errorf("data dir entry %s: %v", p, err)
				}
			}

			s, err = Start(ctx, Options{DataDir: dir, Logger: testLogger(t), Redis: tt.mode})
			if err != nil {
				t.Fatalf("restart stack: %v", err)
			}
			t.Cleanup(func() { _ = s.Close() })

			equal(t, findDoc(t, s.MongoURI, "ticket-1")["status"], any("open"))
			equal(t, readValues(t, s.KafkaBrokers, "events", 0, 1), []string{"ticket-1 opened"})
			rc = redisClient(t, s.RedisAddr)
			equal(t, rc.HGetAll(ctx, "ticket:1").Val(), map[string]string{"assignee": "ada"})
			members := rc.SMembers(ctx, "open").Val()
			slices.Sort(members)
			equal(t, members, []string{"ticket-1", "ticket-2"})
			equal(t, rc.ZScore(ctx, "sla", "ticket-1").Val(), 30.0)
		})
	}
}

// A redis-server killed without warning (as when helmdesk dev is SIGKILLed, which
// takes its child down) keeps what it acknowledged: writes reach the append-only
// file before the reply, and the file is in the page cache even before its fsync.
func TestRedisServerKeepsDataWhenKilled(t *testing.T) {
	dir := t.TempDir()
	ctx := testContext(t)
	r, err := StartRedisServer(dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(&redis.Options{Addr: r.Addr()})
	for i := range 100 {
		must(t, rc.Incr(ctx, "seq").Err())
		must(t, rc.RPush(ctx, "recent", i).Err())
	}
	_ = rc.Close()
	r.srv.Kill()

	r, err = StartRedisServer(dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	rc = redisClient(t, r.Addr())
	equal(t, rc.Get(ctx, "seq").Val(), "100")
	equal(t, rc.LLen(ctx, "recent").Val(), int64(100))
}

func TestStackRejectsUnknownRedisMode(t *testing.T) {
	if s, err := Start(testContext(t), Options{DataDir: t.TempDir(), Redis: "valkey"}); err == nil {
		_ = s.Close()
		t.Fatal("an unknown redis mode was accepted")
	}
}

func TestStackLocksDataDir(t *testing.T) {
	dir := t.TempDir()
	ctx := testContext(t)

	first, err := Start(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatalf("start first stack: %v", err)
	}

	second, err := Start(ctx, Options{DataDir: dir})
	if err == nil {
		_ = second.Close()
		t.Fatal("second stack on the same dir started, want an error")
	}
	var inUse *DataDirInUseError
	if !errors.As(err, &inUse) {
		t.Fatalf("error = %v, want a *DataDirInUseError", err)
	}
	if inUse.PID != os.Getpid() {
		t.Errorf("holder PID = %d, want this process (%d)", inUse.PID, os.Getpid())
	}
	t.Logf("second start: %v", err)

	if err := first.Close(); err != nil {
		t.Fatalf("close first stack: %v", err)
	}
	third, err := Start(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatalf("start after the first stack closed: %v", err)
	}
	if err := third.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// TestStackStartFailureCleansUp makes Kafka fail to start after Mongo
// started, and checks that Start releases what it had taken.
func TestStackStartFailureCleansUp(t *testing.T) {
	dir := t.TempDir()
	ctx := testContext(t)
	// A file where the kafka directory should be.
	blocker := filepath.Join(dir, "kafka")
	must(t, os.WriteFile(blocker, nil, 0o600))

	if s, err := Start(ctx, Options{DataDir: dir}); err == nil {
		_ = s.Close()
		t.Fatal("Start succeeded, want an error")
	} else {
		t.Logf("start error: %v", err)
	}

	// The lock was released and Mongo closed its SQLite files: a new stack
	// starts on the same directory.
	must(t, os.Remove(blocker))
	s, err := Start(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatalf("start after failed start: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func TestStartRequiresDataDir(t *testing.T) {
	if s, err := Start(testContext(t), Options{}); err == nil {
		_ = s.Close()
		t.Fatal("Start without DataDir succeeded, want an error")
	}
}
