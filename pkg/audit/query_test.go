package audit

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/helmdesk/helmdesk/pkg/fault"
)

// listFixture appends six entries an hour apart from t0 and returns t0.
func listFixture(t *testing.T) (*Log, time.Time) {
	t.Helper()
	clk := newClock()
	t0 := clk.Now()
	l := testLog(t, testDB(t), Config{Now: clk.Now})
	evs := []Event{
		{Actor: Actor{Type: ActorUser, ID: "u1"}, Action: "agent.create", Target: Target{Type: "agent", ID: "a1"}},
		{Actor: Actor{Type: ActorUser, ID: "u2"}, Action: "agent.update", Target: Target{Type: "agent", ID: "a1"}},
		{Actor: Actor{Type: ActorAPIKey, ID: "k1"}, Action: "channel.create", Target: Target{Type: "channel", ID: "c1"}},
		{Actor: Actor{Type: ActorUser, ID: "u1"}, Action: "auth.login_failed", Result: ResultFailure, UserAgent: "=HYPERLINK(\"x\")"},
		{Actor: Actor{Type: ActorUser, ID: "u2"}, Action: "authz.denied", Target: Target{Type: "agent", ID: "a2"}, Result: ResultFailure},
		{Actor: Actor{Type: ActorUser, ID: "u1"}, Action: "agent.update", Target: Target{Type: "agent", ID: "a2"}, After: map[string]any{"max_sessions": 6, "rate": 0.5}},
	}
	for i, ev := range evs {
		clk.Set(t0.Add(time.Duration(i) * time.Hour))
		if _, err := l.Append(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	return l, t0
}

func seqs(es []Entry) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	l, t0 := listFixture(t)
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	tests := []struct {
		name   string
		filter Filter
		want   []int64
	}{
		{"everything, newest first", Filter{}, []int64{6, 5, 4, 3, 2, 1}},
		{"actor", Filter{ActorID: "u1"}, []int64{6, 4, 1}},
		{"actor type", Filter{ActorType: ActorAPIKey}, []int64{3}},
		{"action", Filter{Action: "agent.update"}, []int64{6, 2}},
		{"target type", Filter{TargetType: "agent"}, []int64{6, 5, 2, 1}},
		{"target", Filter{TargetType: "agent", TargetID: "a1"}, []int64{2, 1}},
		{"result", Filter{Result: ResultFailure}, []int64{5, 4}},
		{"from is inclusive", Filter{From: h(2)}, []int64{6, 5, 4, 3}},
		{"to is exclusive", Filter{To: h(2)}, []int64{2, 1}},
		{"time window", Filter{From: h(2), To: h(4)}, []int64{4, 3}},
		{"combined", Filter{ActorID: "u1", Action: "agent.update"}, []int64{6}},
		{"no match", Filter{Action: "ticket.delete"}, []int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := l.List(t.Context(), tt.filter, "", 0)
			if err != nil {
				t.Fatal(err)
			}
			if got := seqs(page.Entries); !slices.Equal(got, tt.want) || page.NextCursor != "" {
				t.Fatalf("seqs %v (next %q), want %v", got, page.NextCursor, tt.want)
			}
		})
	}
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	l, _ := listFixture(t)
	tests := []struct {
		name   string
		filter Filter
		limit  int
		pages  [][]int64
	}{
		{"exact pages", Filter{}, 2, [][]int64{{6, 5}, {4, 3}, {2, 1}}},
		{"short last page", Filter{}, 4, [][]int64{{6, 5, 4, 3}, {2, 1}}},
		{"one page", Filter{}, MaxLimit, [][]int64{{6, 5, 4, 3, 2, 1}}},
		{"filtered", Filter{ActorID: "u1"}, 2, [][]int64{{6, 4}, {1}}},
		{"one at a time", Filter{Result: ResultFailure}, 1, [][]int64{{5}, {4}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cursor := ""
			for i, want := range tt.pages {
				page, err := l.List(t.Context(), tt.filter, cursor, tt.limit)
				if err != nil {
					t.Fatal(err)
				}
				if got := seqs(page.Entries); !slices.Equal(got, want) {
					t.Fatalf("page %d: %v, want %v", i, got, want)
				}
				last := i == len(tt.pages)-1
				if last != (page.NextCursor == "") {
					t.Fatalf("page %d: next cursor %q", i, page.NextCursor)
				}
				cursor = page.NextCursor
			}
		})
	}
}

func TestListRejectsBadInput(t *testing.T) {
	t.Parallel()
	l, t0 := listFixture(t)
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name   string
		filter Filter
		cursor string
		limit  int
		code   string
	}{
		{"negative limit", Filter{}, "", -1, "invalid_limit"},
		{"limit above the maximum", Filter{}, "", MaxLimit + 1, "invalid_limit"},
		{"cursor not base64", Filter{}, "!!!", 10, "invalid_cursor"},
		{"cursor without prefix", Filter{}, enc("5"), 10, "invalid_cursor"},
		{"cursor not a number", Filter{}, enc("before:abc"), 10, "invalid_cursor"},
		{"cursor not positive", Filter{}, enc("before:-5"), 10, "invalid_cursor"},
		{"from after to", Filter{From: t0.Add(time.Hour), To: t0}, "", 10, "invalid_time_range"},
		{"from equals to", Filter{From: t0, To: t0}, "", 10, "invalid_time_range"},
		{"unknown result", Filter{Result: "partial"}, "", 10, "invalid_result"},
		{"unknown actor type", Filter{ActorType: "robot"}, "", 10, "invalid_actor_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l.List(t.Context(), tt.filter, tt.cursor, tt.limit)
			if fe := fault.As(err); err == nil || fe.Kind != fault.InvalidArgument || fe.Code != tt.code {
				t.Fatalf("err = %v, want invalid argument %s", err, tt.code)
			}
		})
	}
}

func TestExport(t *testing.T) {
	t.Parallel()
	l, _ := listFixture(t)

	t.Run("json lines are the exact, verifiable record", func(t *testing.T) {
		var buf bytes.Buffer
		n, err := l.Export(t.Context(), &buf, Filter{}, JSONLines)
		if err != nil || n != 6 {
			t.Fatalf("export: %d, %v", n, err)
		}
		sc := bufio.NewScanner(&buf)
		var prev string
		for i := int64(1); sc.Scan(); i++ {
			line := sc.Text()
			for _, key := range []string{`"seq":`, `"prev_hash":`, `"hash":`, `"key_id":"a1"`, `"actor":{"type":`} {
				if !strings.Contains(line, key) {
					t.Fatalf("line %d lacks %s: %s", i, key, line)
				}
			}
			var e Entry
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatal(err)
			}
			if e.Seq != i || e.PrevHash != prev {
				t.Fatalf("line %d: seq %d prev %q", i, e.Seq, e.PrevHash)
			}
			// An auditor with the chain key recomputes the hash from the export.
			for _, m := range []*map[string]any{&e.Summary, &e.Before, &e.After} {
				if *m, err = plainMap(*m); err != nil {
					t.Fatal(err)
				}
			}
			if got := entryHash(chainKey("a1", 1).Secret, &e); got != e.Hash {
				t.Fatalf("line %d: recomputed hash differs", i)
			}
			prev = e.Hash
		}
	})

	t.Run("filtered", func(t *testing.T) {
		var buf bytes.Buffer
		n, err := l.Export(t.Context(), &buf, Filter{Result: ResultFailure}, JSONLines)
		if err != nil || n != 2 || strings.Count(buf.String(), "\n") != 2 {
			t.Fatalf("export: %d, %v, %q", n, err, buf.String())
		}
	})

	t.Run("csv", func(t *testing.T) {
		var buf bytes.Buffer
		n, err := l.Export(t.Context(), &buf, Filter{}, CSV)
		if err != nil || n != 6 {
			t.Fatalf("export: %d, %v", n, err)
		}
		rows, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 7 || rows[0][0] != "seq" || rows[1][0] != "1" || rows[6][7] != "agent.update" {
			t.Fatalf("rows %q", rows)
		}
		if rows[6][15] != `{"max_sessions":6,"rate":0.5}` {
			t.Fatalf("after cell %q", rows[6][15])
		}
		// A user agent that a spreadsheet would run as a formula is neutralised.
		if ua := rows[4][12]; ua != `'=HYPERLINK("x")` {
			t.Fatalf("user agent cell %q", ua)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		tests := []struct {
			name   string
			filter Filter
			format Format
		}{
			{"unknown format", Filter{}, "xml"},
			{"bad filter", Filter{Result: "x"}, JSONLines},
		}
		for _, tt := range tests {
			if _, err := l.Export(t.Context(), &bytes.Buffer{}, tt.filter, tt.format); !fault.Is(err, fault.InvalidArgument) {
				t.Fatalf("%s: err = %v", tt.name, err)
			}
		}
	})
}
