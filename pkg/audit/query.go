package audit

import (
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/helmdesk/helmdesk/pkg/fault"
)

// Page sizes of List.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Filter selects entries; zero fields match everything.
type Filter struct {
	ActorID    string
	ActorType  ActorType
	Action     string
	TargetType string
	TargetID   string
	From       time.Time // inclusive
	To         time.Time // exclusive
	Result     Result
}

func (f Filter) query() (bson.D, error) {
	q := bson.D{}
	add := func(key, v string) {
		if v != "" {
			q = append(q, bson.E{Key: key, Value: v})
		}
	}
	if f.ActorType != "" && !f.ActorType.valid() {
		return nil, fault.Invalid("actor_type", "invalid_actor_type", "actor type must be user, api_key or system")
	}
	if f.Result != "" && !f.Result.valid() {
		return nil, fault.Invalid("result", "invalid_result", "result must be success or failure")
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return nil, fault.Invalid("from", "invalid_time_range", "from must be before to")
	}
	add("actor.id", f.ActorID)
	add("actor.type", string(f.ActorType))
	add("action", f.Action)
	add("target.type", f.TargetType)
	add("target.id", f.TargetID)
	add("result", string(f.Result))
	var t bson.D
	if !f.From.IsZero() {
		t = append(t, bson.E{Key: "$gte", Value: f.From.UTC()})
	}
	if !f.To.IsZero() {
		t = append(t, bson.E{Key: "$lt", Value: f.To.UTC()})
	}
	if t != nil {
		q = append(q, bson.E{Key: "time", Value: t})
	}
	return q, nil
}

// Page is one page of List.
type Page struct {
	Entries []Entry `json:"entries"`
	// NextCursor fetches the next (older) page; empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

const cursorPrefix = "before:"

func encodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(seq, 10)))
}

func decodeCursor(c string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		if s, ok := strings.CutPrefix(string(b), cursorPrefix); ok {
			if seq, err := strconv.ParseInt(s, 10, 64); err == nil && seq > 0 {
				return seq, nil
			}
		}
	}
	return 0, fault.Invalid("cursor", "invalid_cursor", "the cursor is not one this API returned")
}

// List returns the entries matching f, newest first, limit at a time (0 means
// DefaultLimit, at most MaxLimit). Pass the previous page's NextCursor to continue;
// "" starts at the newest. Bad input is a fault.InvalidArgument error.
func (l *Log) List(ctx context.Context, f Filter, cursor string, limit int) (Page, error) {
	if limit == 0 {
		limit = DefaultLimit
	}
	if limit < 1 || limit > MaxLimit {
		return Page{}, fault.Invalid("limit", "invalid_limit", "limit must be between 1 and %d", MaxLimit)
	}
	q, err := f.query()
	if err != nil {
		return Page{}, err
	}
	if cursor != "" {
		before, err := decodeCursor(cursor)
		if err != nil {
			return Page{}, err
		}
		q = append(q, bson.E{Key: "_id", Value: bson.D{{Key: "$lt", Value: seqKey(before)}}})
	}
	cur, err := l.entries.Find(ctx, q, options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(int64(limit)+1))
	if err != nil {
		return Page{}, fmt.Errorf("list audit entries: %w", err)
	}
	var docs []entryDoc
	if err := cur.All(ctx, &docs); err != nil {
		return Page{}, fmt.Errorf("list audit entries: %w", err)
	}
	page := Page{Entries: make([]Entry, 0, min(len(docs), limit))}
	for i := range docs {
		if i == limit {
			page.NextCursor = encodeCursor(page.Entries[i-1].Seq)
			break
		}
		e, err := fromDoc(&docs[i])
		if err != nil {
			return Page{}, fmt.Errorf("read audit entry %s: %w", docs[i].Key, err)
		}
		page.Entries = append(page.Entries, e)
	}
	return page, nil
}

// Format is an export format.
type Format string

// The export formats.
const (
	JSONLines Format = "jsonl"
	CSV       Format = "csv"
)

// csvHeader names the CSV columns; maps are JSON in their cell.
func csvHeader() []string {
	return []string{"seq", "id", "time", "actor_type", "actor_id", "actor_name", "actor_email", "action", "target_type", "target_id", "result", "source_ip", "user_agent", "summary", "before", "after", "key_id", "prev_hash", "hash"}
}

// Export writes the entries matching f to w, oldest first, one JSON object per line
// (JSONLines, the fields of Entry) or as CSV with a header row, and returns how many it
// wrote. It streams: memory does not grow with the log.
//
// JSON Lines is the exact record (an auditor holding the chain key can recompute the
// hashes). CSV is for spreadsheets: a cell that a spreadsheet would run as a formula
// (starting with =, +, -, @, tab or carriage return) is prefixed with a single quote.
func (l *Log) Export(ctx context.Context, w io.Writer, f Filter, format Format) (int64, error) {
	if format != JSONLines && format != CSV {
		return 0, fault.Invalid("format", "invalid_format", "format must be jsonl or csv")
	}
	q, err := f.query()
	if err != nil {
		return 0, err
	}
	cur, err := l.entries.Find(ctx, q, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(500))
	if err != nil {
		return 0, fmt.Errorf("export audit entries: %w", err)
	}
	defer func() { _ = cur.Close(context.WithoutCancel(ctx)) }()

	var write func(*Entry) error
	var flush func() error
	switch format {
	case JSONLines:
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		write = func(e *Entry) error { return enc.Encode(e) }
		flush = func() error { return nil }
	case CSV:
		cw := csv.NewWriter(w)
		if err := cw.Write(csvHeader()); err != nil {
			return 0, fmt.Errorf("write audit csv header: %w", err)
		}
		write = func(e *Entry) error { return cw.Write(csvRecord(e)) }
		flush = func() error { cw.Flush(); return cw.Error() }
	}

	var n int64
	for cur.Next(ctx) {
		var d entryDoc
		if err := cur.Decode(&d); err != nil {
			return n, fmt.Errorf("decode audit entry: %w", err)
		}
		e, err := fromDoc(&d)
		if err != nil {
			return n, fmt.Errorf("read audit entry %s: %w", d.Key, err)
		}
		if err := write(&e); err != nil {
			return n, fmt.Errorf("write audit entry %d: %w", e.Seq, err)
		}
		n++
	}
	if err := cur.Err(); err != nil {
		return n, fmt.Errorf("export audit entries: %w", err)
	}
	if err := flush(); err != nil {
		return n, fmt.Errorf("write audit csv: %w", err)
	}
	return n, nil
}

func csvRecord(e *Entry) []string {
	js := func(m map[string]any) string {
		if len(m) == 0 {
			return ""
		}
		b, _ := json.Marshal(m) // plain values always marshal
		return string(b)
	}
	rec := []string{
		strconv.FormatInt(e.Seq, 10), e.ID, e.Time.Format(time.RFC3339Nano),
		string(e.Actor.Type), e.Actor.ID, e.Actor.Name, e.Actor.Email,
		e.Action, e.Target.Type, e.Target.ID, string(e.Result), e.SourceIP, e.UserAgent,
		js(e.Summary), js(e.Before), js(e.After), e.KeyID, e.PrevHash, e.Hash,
	}
	for i, cell := range rec {
		if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
			rec[i] = "'" + cell
		}
	}
	return rec
}
