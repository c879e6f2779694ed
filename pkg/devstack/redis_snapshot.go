package devstack

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/alicebob/miniredis/v2"
)

const (
	// redisSnapshotVersion is written in every snapshot; bump it when the
	// format changes incompatibly.
	redisSnapshotVersion = 1
	// redisDatabases is the number of logical databases (SELECT 0..15)
	// saved, the default of a real Redis.
	redisDatabases = 16
)

// Key types as reported by miniredis's Type.
const (
	redisTypeString = "string"
	redisTypeHash   = "hash"
	redisTypeList   = "list"
	redisTypeSet    = "set"
	redisTypeZSet   = "zset"
	redisTypeStream = "stream"
)

// redisSnapshot is the JSON document written to the snapshot file:
//
//	{"version": 1, "databases": {"0": [
//	  {"key": "greeting", "type": "string", "string": "hello", "expires_at": "..."},
//	  {"key": "user:1", "type": "hash", "hash": [{"field": "name", "value": "Ada"}]},
//	  {"key": "queue", "type": "list", "list": ["a", "b"]},
//	  {"key": "tags", "type": "set", "set": ["x", "y"]},
//	  {"key": "board", "type": "zset", "zset": [{"member": "ada", "score": 12.5}]},
//	  {"key": "events", "type": "stream", "stream": [{"id": "1-0", "values": ["k", "v"]}]}
//	]}}
//
// Strings that are not valid UTF-8 are written as {"base64": "..."}.
// Expiry times are absolute, so keys whose TTL ran out while the process was
// down are not restored.
type redisSnapshot struct {
	Version   int                        `json:"version"`
	Databases map[int][]redisSnapshotKey `json:"databases"`
}

type redisSnapshotKey struct {
	Key       binString  `json:"key"`
	Type      string     `json:"type"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`

	String *binString         `json:"string,omitempty"`
	Hash   []redisHashField   `json:"hash,omitempty"`
	List   []binString        `json:"list,omitempty"`
	Set    []binString        `json:"set,omitempty"`
	ZSet   []redisZSetMember  `json:"zset,omitempty"`
	Stream []redisStreamEntry `json:"stream,omitempty"`
}

type redisHashField struct {
	Field     binString  `json:"field"`
	Value     binString  `json:"value"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

type redisZSetMember struct {
	Member binString `json:"member"`
	Score  zScore    `json:"score"`
}

type redisStreamEntry struct {
	ID     string      `json:"id"`
	Values []binString `json:"values"`
}

// skippedKey is a key takeSnapshot could not save.
type skippedKey struct {
	db   int
	key  string
	kind string
	err  error
}

// takeSnapshot copies every database of mr. Keys are read one at a time, so
// the snapshot is not a point-in-time view across keys; a key deleted while
// it is being read is left out. Keys of types that cannot be read back
// through miniredis's API (HyperLogLog) are returned as skipped.
func takeSnapshot(mr *miniredis.Miniredis, now time.Time) (redisSnapshot, []skippedKey) {
	snap := redisSnapshot{
		Version:   redisSnapshotVersion,
		Databases: map[int][]redisSnapshotKey{},
	}
	var skipped []skippedKey
	for i := range redisDatabases {
		db := mr.DB(i) // also advances TTLs to now
		var keys []redisSnapshotKey
		for _, k := range db.Keys() {
			sk, ok, err := snapshotKey(mr, db, k, now)
			if err != nil {
				skipped = append(skipped, skippedKey{db: i, key: k, kind: sk.Type, err: err})
				continue
			}
			if ok {
				keys = append(keys, sk)
			}
		}
		if len(keys) > 0 {
			snap.Databases[i] = keys
		}
	}
	return snap, skipped
}

// snapshotKey reads one key. ok is false when the key vanished meanwhile.
//
// miniredis's List, SortedSet and Stream return the server's own slice or map, not
// a copy, and release its lock before returning: reading them while clients write
// the key is a data race (a sorted set's map iterated during a ZADD is a fatal error).
// Those are copied under the server's lock (see copyList, copySortedSet).
func snapshotKey(mr *miniredis.Miniredis, db *miniredis.RedisDB, k string, now time.Time) (sk redisSnapshotKey, ok bool, err error) {
	sk = redisSnapshotKey{Key: binString(k), Type: db.Type(k)}
	switch sk.Type {
	case "":
		return sk, false, nil
	case redisTypeString:
		v, err := db.Get(k)
		if err != nil {
			return sk, false, ignoreNotFound(err)
		}
		s := binString(v)
		sk.String = &s
	case redisTypeHash:
		fields, err := db.HKeys(k)
		if err != nil {
			return sk, false, ignoreNotFound(err)
		}
		for _, f := range fields {
			sk.Hash = append(sk.Hash, redisHashField{
				Field:     binString(f),
				Value:     binString(db.HGet(k, f)),
				ExpiresAt: expiresAt(now, db.HTTL(k, f)),
			})
		}
	case redisTypeList:
		vs, err := stableCopy(mr, func() ([]string, error) { return db.List(k) })
		if err != nil {
			return sk, false, ignoreNotFound(err)
		}
		sk.List = binStrings(vs)
	case redisTypeSet:
		vs, err := db.Members(k)
		if err != nil {
			return sk, false, ignoreNotFound(err)
		}
		sk.Set = binStrings(vs)
	case redisTypeZSet:
		ms, err := db.SortedSet(k)
		if err != nil {
			return sk, false, ignoreNotFound(err)
		}
		// The map stays the key's until the key is deleted, and nothing writes it
		// after that: copied under the lock it is the set as it was then.
		mr.Lock()
		for m, s := range ms {
			sk.ZSet = append(sk.ZSet, redisZSetMember{Member: binString(m), Score: zScore(s)})
		}
		mr.Unlock()
		// Map order is random; sort so unchanged data encodes identically.
		sort.Slice(sk.ZSet, func(a, b int) bool { return sk.ZSet[a].Member < sk.ZSet[b].Member })
	case redisTypeStream:
		es, err := stableCopy(mr, func() ([]miniredis.StreamEntry, error) { return db.Stream(k) })
		if err != nil {
			return sk, false, ignoreNotFound(err)
		}
		for _, e := range es {
			sk.Stream = append(sk.Stream, redisStreamEntry{ID: e.ID, Values: binStrings(e.Values)})
		}
	default:
		return sk, false, fmt.Errorf("key type %q is not persisted", sk.Type)
	}
	sk.ExpiresAt = expiresAt(now, db.TTL(k))
	return sk, true, nil
}

// stableCopy copies the slice read returns, which is the server's own, under the
// server's lock. A write that replaced the slice between read and the copy (a push
// that grew it, a trim, a pop) may have reused its array, so the copy only counts if
// read still returns the same slice (array and length) afterwards; otherwise it is
// taken again. Writes that change elements in place keep the slice, and the copy,
// made under the lock, has them or not as a whole.
func stableCopy[T any](mr *miniredis.Miniredis, read func() ([]T, error)) ([]T, error) {
	for attempt := 1; ; attempt++ {
		live, err := read()
		if err != nil {
			return nil, err
		}
		mr.Lock()
		cp := slices.Clone(live)
		mr.Unlock()
		again, err := read()
		if err != nil {
			return nil, err
		}
		if len(again) == len(live) && unsafe.SliceData(again) == unsafe.SliceData(live) {
			return cp, nil
		}
		if attempt == 100 {
			return nil, errors.New("the key changed during every one of 100 reads")
		}
	}
}

func ignoreNotFound(err error) error {
	if errors.Is(err, miniredis.ErrKeyNotFound) {
		return nil
	}
	return err
}

// expiresAt turns a remaining TTL (0 meaning none) into an absolute time,
// rounded to the millisecond so that unchanged data encodes identically.
func expiresAt(now time.Time, ttl time.Duration) *time.Time {
	if ttl <= 0 {
		return nil
	}
	t := now.Add(ttl).UTC().Round(time.Millisecond)
	return &t
}

func (s redisSnapshot) encode() ([]byte, error) {
	return json.Marshal(s)
}

func decodeSnapshot(data []byte) (redisSnapshot, error) {
	var s redisSnapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("decode snapshot: %w", err)
	}
	if s.Version != redisSnapshotVersion {
		return s, fmt.Errorf("snapshot version %d is not supported (want %d)", s.Version, redisSnapshotVersion)
	}
	return s, nil
}

// apply writes the snapshot into mr and returns the number of keys restored.
// Keys and hash fields whose expiry time is past are skipped.
func (s redisSnapshot) apply(mr *miniredis.Miniredis, now time.Time) (int, error) {
	n := 0
	for i, keys := range s.Databases {
		if i < 0 || i >= redisDatabases {
			return n, fmt.Errorf("database %d out of range", i)
		}
		db := mr.DB(i)
		for _, sk := range keys {
			restored, err := sk.apply(db, now)
			if err != nil {
				return n, fmt.Errorf("restore key %q in db %d: %w", sk.Key, i, err)
			}
			if restored {
				n++
			}
		}
	}
	return n, nil
}

func (sk redisSnapshotKey) apply(db *miniredis.RedisDB, now time.Time) (bool, error) {
	var ttl time.Duration
	if sk.ExpiresAt != nil {
		ttl = sk.ExpiresAt.Sub(now)
		if ttl <= 0 {
			return false, nil
		}
	}
	k := string(sk.Key)
	switch sk.Type {
	case redisTypeString:
		if sk.String == nil {
			return false, errors.New("string key without value")
		}
		if err := db.Set(k, string(*sk.String)); err != nil {
			return false, err
		}
	case redisTypeHash:
		var fieldTTLs []redisHashField
		for _, f := range sk.Hash {
			if f.ExpiresAt != nil {
				if !f.ExpiresAt.After(now) {
					continue
				}
				fieldTTLs = append(fieldTTLs, f)
			}
			db.HSet(k, string(f.Field), string(f.Value))
		}
		for _, f := range fieldTTLs {
			db.HExpire(k, string(f.Field), f.ExpiresAt.Sub(now))
		}
	case redisTypeList:
		if len(sk.List) > 0 {
			if _, err := db.Push(k, plainStrings(sk.List)...); err != nil {
				return false, err
			}
		}
	case redisTypeSet:
		if len(sk.Set) > 0 {
			if _, err := db.SetAdd(k, plainStrings(sk.Set)...); err != nil {
				return false, err
			}
		}
	case redisTypeZSet:
		for _, m := range sk.ZSet {
			if _, err := db.ZAdd(k, float64(m.Score), string(m.Member)); err != nil {
				return false, err
			}
		}
	case redisTypeStream:
		for _, e := range sk.Stream {
			if _, err := db.XAdd(k, e.ID, plainStrings(e.Values)); err != nil {
				return false, err
			}
		}
	default:
		return false, fmt.Errorf("unknown key type %q", sk.Type)
	}
	if !db.Exists(k) {
		return false, nil // empty collection, or a hash whose fields all expired
	}
	if ttl > 0 {
		db.SetTTL(k, ttl)
	}
	return true, nil
}

// binString is a Redis string, which may hold arbitrary bytes. It encodes as
// a JSON string when it is valid UTF-8 and as {"base64": "..."} otherwise,
// since encoding/json would replace invalid bytes.
type binString string

type base64String struct {
	Base64 string `json:"base64"`
}

func (s binString) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(string(s)) {
		return json.Marshal(string(s))
	}
	return json.Marshal(base64String{Base64: base64.StdEncoding.EncodeToString([]byte(s))})
}

func (s *binString) UnmarshalJSON(data []byte) error {
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		var b base64String
		if err := json.Unmarshal(data, &b); err != nil {
			return err
		}
		raw, err := base64.StdEncoding.DecodeString(b.Base64)
		if err != nil {
			return fmt.Errorf("decode base64 string: %w", err)
		}
		*s = binString(raw)
		return nil
	}
	var str string
	if err := json.Unmarshal(data, &str); err != nil {
		return err
	}
	*s = binString(str)
	return nil
}

func binStrings(vs []string) []binString {
	out := make([]binString, len(vs))
	for i, v := range vs {
		out[i] = binString(v)
	}
	return out
}

func plainStrings(vs []binString) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// zScore is a sorted-set score. Redis allows +inf and -inf, which JSON
// numbers cannot hold, so those are written as the strings "+inf" and "-inf".
type zScore float64

func (z zScore) MarshalJSON() ([]byte, error) {
	f := float64(z)
	switch {
	case math.IsInf(f, 1):
		return []byte(`"+inf"`), nil
	case math.IsInf(f, -1):
		return []byte(`"-inf"`), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

func (z *zScore) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("parse score %q: %w", s, err)
		}
		*z = zScore(f)
		return nil
	}
	var f float64
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	*z = zScore(f)
	return nil
}
