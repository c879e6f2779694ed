package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/helmdesk/helmdesk/pkg/fault"
)

// ActorType says what kind of principal acted.
type ActorType string

// The actor types.
const (
	ActorUser   ActorType = "user"
	ActorAPIKey ActorType = "api_key"
	ActorSystem ActorType = "system"
)

func (t ActorType) valid() bool { return t == ActorUser || t == ActorAPIKey || t == ActorSystem }

// Result says whether the action succeeded.
type Result string

// The results.
const (
	ResultSuccess Result = "success"
	ResultFailure Result = "failure"
)

func (r Result) valid() bool { return r == ResultSuccess || r == ResultFailure }

// Actor is who acted. For a failed login with an unknown e-mail, only Email is known.
type Actor struct {
	Type  ActorType `json:"type"`
	ID    string    `json:"id,omitempty"`
	Name  string    `json:"name,omitempty"`
	Email string    `json:"email,omitempty"`
}

// Target is what the action was on.
type Target struct {
	Type string `json:"type,omitempty"`
	ID   string `json:"id,omitempty"`
}

// Event is what a caller records.
//
// Summary, Before and After are small maps (at most [MaxMapBytes] each once encoded)
// of strings, booleans, numbers, nil, time.Time (stored as an RFC 3339 string), and
// slices and string-keyed maps of those, nested at most [MaxDepth] deep (no slice
// directly inside a slice, which FerretDB cannot store). Keys must be
// non-empty and contain no "." and no leading "$". Never put secrets (passwords,
// tokens, keys) or unencrypted customer personal data in them.
type Event struct {
	Actor     Actor          `json:"actor"`
	Action    string         `json:"action"`
	Target    Target         `json:"target"`
	Summary   map[string]any `json:"summary,omitempty"`
	Before    map[string]any `json:"before,omitempty"`
	After     map[string]any `json:"after,omitempty"`
	SourceIP  string         `json:"source_ip,omitempty"`
	UserAgent string         `json:"user_agent,omitempty"`
	Result    Result         `json:"result"` // empty means success
}

// Entry is an appended event with its place in the chain.
type Entry struct {
	Seq   int64     `json:"seq"`
	ID    string    `json:"id"`
	Time  time.Time `json:"time"` // UTC, millisecond precision
	KeyID string    `json:"key_id"`
	Event
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// Limits on an event.
const (
	MaxDepth       = 8
	MaxMapBytes    = 16 << 10
	maxActionLen   = 64
	maxIDLen       = 256
	maxUserAgent   = 512
	maxSourceIPLen = 64
)

// prepare validates an event and returns it normalised for storage: strings made valid
// UTF-8 and cut to their limits, maps converted to plain values, the result defaulted.
func prepare(ev Event) (Event, error) {
	if !validAction(ev.Action) {
		return Event{}, fault.Invalid("action", "invalid_audit_action", "action %.80q must be lower-case dotted words such as agent.create", ev.Action)
	}
	if !ev.Actor.Type.valid() {
		return Event{}, fault.Invalid("actor.type", "invalid_audit_actor", "actor type %.40q must be user, api_key or system", ev.Actor.Type)
	}
	if ev.Result == "" {
		ev.Result = ResultSuccess
	}
	if !ev.Result.valid() {
		return Event{}, fault.Invalid("result", "invalid_audit_result", "result %.40q must be success or failure", ev.Result)
	}
	ev.Actor.ID = clean(ev.Actor.ID, maxIDLen)
	ev.Actor.Name = clean(ev.Actor.Name, maxIDLen)
	ev.Actor.Email = clean(ev.Actor.Email, maxIDLen)
	ev.Target.Type = clean(ev.Target.Type, maxIDLen)
	ev.Target.ID = clean(ev.Target.ID, maxIDLen)
	ev.SourceIP = clean(ev.SourceIP, maxSourceIPLen)
	ev.UserAgent = clean(ev.UserAgent, maxUserAgent)
	for _, m := range []struct {
		name string
		p    *map[string]any
	}{{"summary", &ev.Summary}, {"before", &ev.Before}, {"after", &ev.After}} {
		v, err := plainMap(*m.p)
		if err != nil {
			return Event{}, fault.Invalid(m.name, "invalid_audit_map", "%s: %v", m.name, err)
		}
		var b strings.Builder
		writeCanonical(&b, v)
		if b.Len() > MaxMapBytes {
			return Event{}, fault.New(fault.TooLarge, "audit_map_too_large", "%s is %d bytes encoded, more than %d", m.name, b.Len(), MaxMapBytes)
		}
		*m.p = v
	}
	return ev, nil
}

// validAction accepts lower-case dotted words: "agent.create", "auth.login_failed".
func validAction(a string) bool {
	if len(a) > maxActionLen {
		return false
	}
	words := strings.Split(a, ".")
	if len(words) < 2 {
		return false
	}
	for _, w := range words {
		if w == "" || w[0] < 'a' || w[0] > 'z' {
			return false
		}
		for i := 0; i < len(w); i++ {
			c := w[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				return false
			}
		}
	}
	return true
}

// clean makes s valid UTF-8 and cuts it to at most n bytes on a rune boundary. Actor
// names and user agents come from requests: a long or broken one must not lose the
// entry.
func clean(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// plainMap converts a map to the stored form (see plain). nil and empty give nil.
func plainMap(m map[string]any) (map[string]any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	v, err := plain(m, 0)
	if err != nil {
		return nil, err
	}
	return v.(map[string]any), nil
}

// plain converts a value to the stored, canonical form: nil, string, bool, int64,
// float64 (only non-integral or beyond ±2^53), []any and map[string]any. It is applied
// both to what callers pass and to what the driver decodes (bson.D, bson.A, int32), so
// that the hash of an entry is the same before and after storage.
func plain(v any, depth int) (any, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("nested more than %d deep", MaxDepth)
	}
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return strings.ToValidUTF8(x, "\uFFFD"), nil
	case bool:
		return x, nil
	case int:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int64:
		return x, nil
	case uint8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint:
		return plainUint(uint64(x))
	case uint64:
		return plainUint(x)
	case float32:
		return plainFloat(float64(x))
	case float64:
		return plainFloat(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), nil
	case time.Duration:
		return x.String(), nil
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, nil
		}
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("number %q: %w", x, err)
		}
		return plainFloat(f)
	case bson.D:
		m := make(map[string]any, len(x))
		for _, e := range x {
			if err := addKey(m, e.Key, e.Value, depth); err != nil {
				return nil, err
			}
		}
		return m, nil
	case bson.A:
		return plainSlice(reflect.ValueOf([]any(x)), depth)
	}

	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map keys must be strings, not %s", rv.Type().Key())
		}
		if rv.IsNil() {
			return nil, nil
		}
		m := make(map[string]any, rv.Len())
		iter := rv.MapRange()
		for iter.Next() {
			if err := addKey(m, iter.Key().String(), iter.Value().Interface(), depth); err != nil {
				return nil, err
			}
		}
		return m, nil
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return nil, nil
		}
		return plainSlice(rv, depth)
	case reflect.String:
		return plain(rv.String(), depth)
	case reflect.Bool:
		return rv.Bool(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return plainUint(rv.Uint())
	case reflect.Float32, reflect.Float64:
		return plainFloat(rv.Float())
	case reflect.Pointer:
		if rv.IsNil() {
			return nil, nil
		}
		return plain(rv.Elem().Interface(), depth)
	}
	return nil, fmt.Errorf("unsupported value of type %T", v)
}

func addKey(m map[string]any, k string, v any, depth int) error {
	if k == "" || strings.HasPrefix(k, "$") || strings.ContainsAny(k, ".\x00") || !utf8.ValidString(k) {
		return fmt.Errorf("key %.40q must be non-empty UTF-8 without '.', NUL or a leading '$'", k)
	}
	if _, dup := m[k]; dup {
		return fmt.Errorf("duplicate key %.40q", k)
	}
	pv, err := plain(v, depth+1)
	if err != nil {
		return fmt.Errorf("%s: %w", k, err)
	}
	m[k] = pv
	return nil
}

// plainSlice converts a slice. Arrays directly inside arrays are refused: FerretDB
// cannot store them, and the log must behave the same on MongoDB and FerretDB.
func plainSlice(rv reflect.Value, depth int) (any, error) {
	out := make([]any, rv.Len())
	for i := range out {
		pv, err := plain(rv.Index(i).Interface(), depth+1)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		if _, nested := pv.([]any); nested {
			return nil, fmt.Errorf("[%d]: arrays inside arrays are not supported", i)
		}
		out[i] = pv
	}
	return out, nil
}

func plainUint(u uint64) (any, error) {
	if u > math.MaxInt64 {
		return nil, fmt.Errorf("integer %d does not fit in 64 signed bits", u)
	}
	return int64(u), nil
}

// maxSafeInt is 2^53: integral floats below it are stored as integers, so 3.0 and 3
// are the same value before and after storage.
const maxSafeInt = 1 << 53

func plainFloat(f float64) (any, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("number %v is not finite", f)
	}
	if f == math.Trunc(f) && math.Abs(f) < maxSafeInt {
		return int64(f), nil
	}
	return f, nil
}

// writeCanonical writes a plain value as canonical JSON: map keys sorted by bytes, no
// insignificant space, integers in decimal, floats in shortest round-trip form.
func writeCanonical(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case string:
		writeString(b, x)
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case float64:
		b.WriteString(strconv.FormatFloat(x, 'g', -1, 64))
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			writeCanonical(b, e)
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, k)
			b.WriteByte(':')
			writeCanonical(b, x[k])
		}
		b.WriteByte('}')
	default:
		// plain never produces other types; make a mistake visible in the hash input
		// rather than silently equal.
		fmt.Fprintf(b, "%q", fmt.Sprintf("!%T", v))
	}
}

func writeString(b *strings.Builder, s string) {
	q, _ := json.Marshal(s) // never fails for a string
	b.Write(q)
}

// canonical is the byte string an entry's hash covers: every field but the hash, in a
// fixed order. Maps must already be plain (prepare or decode made them so).
func canonical(e *Entry) []byte {
	var b strings.Builder
	field := func(name string, first bool) {
		if !first {
			b.WriteByte(',')
		}
		writeString(&b, name)
		b.WriteByte(':')
	}
	str := func(name, v string) {
		field(name, false)
		writeString(&b, v)
	}
	b.WriteByte('{')
	field("v", true)
	b.WriteString("1")
	field("seq", false)
	b.WriteString(strconv.FormatInt(e.Seq, 10))
	str("id", e.ID)
	str("time", formatTime(e.Time))
	str("key_id", e.KeyID)
	str("actor_type", string(e.Actor.Type))
	str("actor_id", e.Actor.ID)
	str("actor_name", e.Actor.Name)
	str("actor_email", e.Actor.Email)
	str("action", e.Action)
	str("target_type", e.Target.Type)
	str("target_id", e.Target.ID)
	for _, m := range []struct {
		name string
		v    map[string]any
	}{{"summary", e.Summary}, {"before", e.Before}, {"after", e.After}} {
		field(m.name, false)
		if m.v == nil {
			b.WriteString("{}")
		} else {
			writeCanonical(&b, m.v)
		}
	}
	str("source_ip", e.SourceIP)
	str("user_agent", e.UserAgent)
	str("result", string(e.Result))
	str("prev_hash", e.PrevHash)
	b.WriteByte('}')
	return []byte(b.String())
}

// formatTime is the canonical time: UTC, RFC 3339, millisecond precision.
func formatTime(t time.Time) string {
	return t.UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano)
}

// entryHash is hex HMAC-SHA256(key, canonical(e)).
func entryHash(key []byte, e *Entry) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(canonical(e))
	return hex.EncodeToString(mac.Sum(nil))
}
