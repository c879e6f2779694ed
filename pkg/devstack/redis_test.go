package devstack

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// TestRedisDataSurvivesRestart writes every persisted type through the Redis
// protocol, restarts on the same snapshot, and reads it back.
func TestRedisDataSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "redis.json")

	tests := []struct {
		name  string
		write func(t *testing.T, c *redis.Client)
		check func(t *testing.T, c *redis.Client)
	}{
		{
			// a plain string keeps its TTL
			name: "string with ttl",
			write: func(t *testing.T, c *redis.Client) {
				must(t, c.Set(t.Context(), "session", "abc", time.Hour).Err())
			},
			check: func(t *testing.T, c *redis.Client) {
				equal(t, c.Get(t.Context(), "session").Val(), "abc")
				if ttl := c.TTL(t.Context(), "session").Val(); ttl <= 59*time.Minute || ttl > time.Hour {
					t.Errorf("TTL = %v, want just under 1h", ttl)
				}
			},
		},
		{
			// bytes that are not UTF-8 round-trip exactly
			name: "binary string",
			write: func(t *testing.T, c *redis.Client) {
				must(t, c.Set(t.Context(), "bin\xff", "\x00\xfe\xff", 0).Err())
			},
			check: func(t *testing.T, c *redis.Client) {
				equal(t, c.Get(t.Context(), "bin\xff").Val(), "\x00\xfe\xff")
				equal(t, c.TTL(t.Context(), "bin\xff").Val(), time.Duration(-1))
			},
		},
		{
			// a hash, with a TTL on the key and on one field
			name: "hash",
			write: func(t *testing.T, c *redis.Client) {
				must(t, c.HSet(t.Context(), "agent:1", "name", "Ada", "status", "online").Err())
				must(t, c.Expire(t.Context(), "agent:1", time.Hour).Err())
				must(t, c.HExpire(t.Context(), "agent:1", time.Hour, "status").Err())
			},
			check: func(t *testing.T, c *redis.Client) {
				equal(t, c.HGetAll(t.Context(), "agent:1").Val(), map[string]string{"name": "Ada", "status": "online"})
				if ttl := c.TTL(t.Context(), "agent:1").Val(); ttl <= 0 {
					t.Errorf("key TTL = %v, want > 0", ttl)
				}
				if ttls := c.HTTL(t.Context(), "agent:1", "status", "name").Val(); len(ttls) != 2 || ttls[0] <= 0 || ttls[1] != -1 {
					t.Errorf("field TTLs = %v, want [>0 -1]", ttls)
				}
			},
		},
		{
			name: "set",
			write: func(t *testing.T, c *redis.Client) {
				must(t, c.SAdd(t.Context(), "online", "a", "b", "c").Err())
			},
			check: func(t *testing.T, c *redis.Client) {
				got := c.SMembers(t.Context(), "online").Val()
				slices.Sort(got)
				equal(t, got, []string{"a", "b", "c"})
			},
		},
		{
			// scores include infinities, which JSON numbers cannot hold
			name: "sorted set",
			write: func(t *testing.T, c *redis.Client) {
				must(t, c.ZAdd(t.Context(), "queue",
					redis.Z{Score: 2.5, Member: "x"},
					redis.Z{Score: math.Inf(1), Member: "last"},
					redis.Z{Score: math.Inf(-1), Member: "first"},
				).Err())
			},
			check: func(t *testing.T, c *redis.Client) {
				equal(t, c.ZRangeWithScores(t.Context(), "queue", 0, -1).Val(), []redis.Z{
					{Score: math.Inf(-1), Member: "first"},
					{Score: 2.5, Member: "x"},
					{Score: math.Inf(1), Member: "last"},
				})
			},
		},
		{
			name: "list",
			write: func(t *testing.T, c *redis.Client) {
				must(t, c.RPush(t.Context(), "jobs", "1", "2", "3").Err())
			},
			check: func(t *testing.T, c *redis.Client) {
				equal(t, c.LRange(t.Context(), "jobs", 0, -1).Val(), []string{"1", "2", "3"})
			},
		},
		{
			name: "stream",
			write: func(t *testing.T, c *redis.Client) {
				must(t, c.XAdd(t.Context(), &redis.XAddArgs{Stream: "events", ID: "5-1", Values: []string{"k", "v"}}).Err())
			},
			check: func(t *testing.T, c *redis.Client) {
				equal(t, c.XRange(t.Context(), "events", "-", "+").Val(), []redis.XMessage{{ID: "5-1", Values: map[string]any{"k": "v"}}})
			},
		},
		{
			// keys in other logical databases are kept apart
			name: "database 3",
			write: func(t *testing.T, c *redis.Client) {
				must(t, c.Do(t.Context(), "SELECT", "3").Err())
				must(t, c.Set(t.Context(), "db3key", "three", 0).Err())
				must(t, c.Do(t.Context(), "SELECT", "0").Err())
			},
			check: func(t *testing.T, c *redis.Client) {
				equal(t, c.Exists(t.Context(), "db3key").Val(), int64(0))
				must(t, c.Do(t.Context(), "SELECT", "3").Err())
				equal(t, c.Get(t.Context(), "db3key").Val(), "three")
				must(t, c.Do(t.Context(), "SELECT", "0").Err())
			},
		},
	}

	r, err := StartRedis(path, testLogger(t))
	if err != nil {
		t.Fatalf("start redis: %v", err)
	}
	c := singleConnClient(t, r.Addr())
	for _, tt := range tests {
		t.Run(tt.name+"/write", func(t *testing.T) { tt.write(t, c) })
	}
	_ = c.Close()
	if err := r.Close(); err != nil {
		t.Fatalf("close redis: %v", err)
	}

	r, err = StartRedis(path, testLogger(t))
	if err != nil {
		t.Fatalf("restart redis: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	c = singleConnClient(t, r.Addr())
	for _, tt := range tests {
		t.Run(tt.name+"/check", func(t *testing.T) { tt.check(t, c) })
	}
}

// TestRedisSavesPeriodically checks that a snapshot is written while the
// server runs, so that a crash does not lose everything, and that an idle
// server does not rewrite it.
func TestRedisSavesPeriodically(t *testing.T) {
	const interval = 20 * time.Millisecond
	path := filepath.Join(t.TempDir(), "redis.json")
	r, err := startRedis(path, testLogger(t), interval)
	if err != nil {
		t.Fatalf("start redis: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })

	c := redisClient(t, r.Addr())
	must(t, c.HSet(t.Context(), "h", "f", "v").Err())

	deadline := time.Now().Add(5 * time.Second)
	for {
		if data, err := os.ReadFile(path); err == nil {
			if snap, err := decodeSnapshot(data); err == nil && len(snap.Databases[0]) == 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no snapshot with the key was written while running")
		}
		time.Sleep(interval)
	}

	// A crash now would leave this file: a fresh server restores from it.
	crashCopy := filepath.Join(t.TempDir(), "crash.json")
	data, err := os.ReadFile(path)
	must(t, err)
	must(t, os.WriteFile(crashCopy, data, 0o600))
	r2, err := StartRedis(crashCopy, testLogger(t))
	if err != nil {
		t.Fatalf("start from crash copy: %v", err)
	}
	t.Cleanup(func() { _ = r2.Close() })
	equal(t, redisClient(t, r2.Addr()).HGet(t.Context(), "h", "f").Val(), "v")

	// Once the trailing save is done, neither idleness nor read-only
	// commands rewrite the file.
	time.Sleep(5 * interval)
	before, err := os.Stat(path)
	must(t, err)
	for range 5 {
		equal(t, c.HGet(t.Context(), "h", "f").Val(), "v")
		time.Sleep(interval)
	}
	time.Sleep(3 * interval)
	after, err := os.Stat(path)
	must(t, err)
	if !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("snapshot rewritten without changes: mtime %v -> %v", before.ModTime(), after.ModTime())
	}
	if matches, _ := filepath.Glob(path + ".tmp-*"); len(matches) > 0 {
		t.Errorf("temporary files left behind: %v", matches)
	}
}

func TestRedisSnapshotSkipsExpired(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	past := now.Add(-time.Second)
	future := now.Add(time.Minute)

	tests := []struct {
		name     string
		key      redisSnapshotKey
		wantKeys []string
	}{
		{
			// an expired key is not restored
			name:     "expired key",
			key:      redisSnapshotKey{Key: "k", Type: redisTypeString, String: ptr(binString("v")), ExpiresAt: &past},
			wantKeys: nil,
		},
		{
			name:     "live key",
			key:      redisSnapshotKey{Key: "k", Type: redisTypeString, String: ptr(binString("v")), ExpiresAt: &future},
			wantKeys: []string{"k"},
		},
		{
			// a hash whose only field expired does not exist
			name: "hash with all fields expired",
			key: redisSnapshotKey{Key: "h", Type: redisTypeHash, Hash: []redisHashField{
				{Field: "f", Value: "v", ExpiresAt: &past},
			}},
			wantKeys: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mr := miniredis.NewMiniRedis()
			snap := redisSnapshot{Version: redisSnapshotVersion, Databases: map[int][]redisSnapshotKey{0: {tt.key}}}
			if _, err := snap.apply(mr, now); err != nil {
				t.Fatalf("apply: %v", err)
			}
			if got := mr.Keys(); !slices.Equal(got, tt.wantKeys) {
				t.Errorf("keys after restore = %v, want %v", got, tt.wantKeys)
			}
		})
	}
}

func TestRedisRefusesCorruptSnapshot(t *testing.T) {
	tests := []struct {
		name    string
		content string
	}{
		{name: "not json", content: "{"},
		{name: "future version", content: `{"version": 99}`},
		{name: "unknown type", content: `{"version": 1, "databases": {"0": [{"key": "k", "type": "hll"}]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "redis.json")
			must(t, os.WriteFile(path, []byte(tt.content), 0o600))
			r, err := StartRedis(path, testLogger(t))
			if err == nil {
				_ = r.Close()
				t.Fatal("StartRedis succeeded, want an error")
			}
		})
	}
}

func TestBinStringJSON(t *testing.T) {
	tests := []struct {
		name string
		in   binString
		want string
	}{
		{name: "ascii", in: "hello", want: `"hello"`},
		{name: "utf-8", in: "héllo ✓", want: `"héllo ✓"`},
		{name: "empty", in: "", want: `""`},
		// invalid UTF-8 would be mangled by encoding/json
		{name: "binary", in: "\xff\x00a", want: `{"base64":"/wBh"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := json.Marshal(tt.in)
			must(t, err)
			equal(t, string(data), tt.want)
			var back binString
			must(t, json.Unmarshal(data, &back))
			equal(t, back, tt.in)
		})
	}
}

func TestZScoreJSON(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{in: 1.5, want: `1.5`},
		{in: -3, want: `-3`},
		{in: 1e300, want: `1e+300`},
		{in: math.Inf(1), want: `"+inf"`},
		{in: math.Inf(-1), want: `"-inf"`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			data, err := json.Marshal(zScore(tt.in))
			must(t, err)
			equal(t, string(data), tt.want)
			var back zScore
			must(t, json.Unmarshal(data, &back))
			equal(t, float64(back), tt.in)
		})
	}
}

// singleConnClient keeps one connection so SELECT sticks.
func singleConnClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, PoolSize: 1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ptr[T any](v T) *T { return &v }

// TestRedisSnapshotWhileKeysChange takes snapshots while a client keeps writing a
// list (pushed and trimmed, as the session service's recent buffers are) and a
// sorted set (added to and trimmed by rank): each snapshot must hold each key as it
// was at one moment, and taking it must not race with the writes.
func TestRedisSnapshotWhileKeysChange(t *testing.T) {
	const listLen, setLen = 50, 2000
	mr := miniredis.NewMiniRedis()
	must(t, mr.Start())
	t.Cleanup(mr.Close)
	c := redisClient(t, mr.Addr())
	ctx, stop := context.WithCancel(t.Context())
	written := make(chan error, 1)
	go func() {
		var err error
		for i := 1; err == nil && ctx.Err() == nil; i++ {
			_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.RPush(ctx, "buf", i)
				p.LTrim(ctx, "buf", -listLen, -1)
				p.ZAdd(ctx, "board", redis.Z{Score: float64(i), Member: i})
				p.ZRemRangeByRank(ctx, "board", 0, -setLen-1)
				return nil
			})
		}
		if ctx.Err() != nil {
			err = nil
		}
		written <- err
	}()

	snapshots := 0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		snap, skipped := takeSnapshot(mr, time.Now())
		if len(skipped) > 0 {
			t.Fatalf("keys skipped: %+v", skipped)
		}
		for _, k := range snap.Databases[0] {
			var got []int
			switch k.Type {
			case redisTypeList:
				for _, v := range k.List {
					got = append(got, atoi(t, string(v)))
				}
			case redisTypeZSet:
				for _, m := range k.ZSet {
					if n := atoi(t, string(m.Member)); float64(m.Score) != float64(n) {
						t.Fatalf("member %d has score %v", n, m.Score)
					}
					got = append(got, atoi(t, string(m.Member)))
				}
				slices.Sort(got)
			}
			for i := 1; i < len(got); i++ {
				if got[i] != got[i-1]+1 {
					t.Fatalf("%s %q: %d follows %d; a snapshot must hold the key as it was at one moment", k.Type, k.Key, got[i], got[i-1])
				}
			}
		}
		snapshots++
	}
	stop()
	must(t, <-written)
	if snapshots < 5 {
		t.Fatalf("only %d snapshots taken", snapshots)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	must(t, err)
	return n
}
