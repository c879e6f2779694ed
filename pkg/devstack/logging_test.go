package devstack

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// resolveCounter counts how often a handler resolves it.
type resolveCounter struct{ n *int }

func (c resolveCounter) LogValue() slog.Value {
	*c.n++
	return slog.StringValue("document")
}

func jsonLogger(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

func TestQuietLoggerDropsLowRecordsAndKeepsAttributesInOrder(t *testing.T) {
	var got, want bytes.Buffer
	derive := func(l *slog.Logger) *slog.Logger {
		return l.With("a", 1).WithGroup("g").With("b", 2).WithGroup("").With()
	}
	quiet := derive(atLeast(jsonLogger(&got), slog.LevelWarn))
	quiet.Info("dropped", "c", 3)
	if got.Len() != 0 {
		t.Fatalf("a record below the minimum was written: %s", got.String())
	}
	quiet.Warn("kept", "c", 3)
	derive(jsonLogger(&want)).Warn("kept", "c", 3)
	if got.String() != want.String() {
		t.Fatalf("got  %s\nwant %s", got.String(), want.String())
	}
	if !strings.Contains(got.String(), `"a":1,"g":{"b":2,"c":3}`) {
		t.Fatalf("attributes out of place: %s", got.String())
	}
}

func TestQuietLoggerRendersNothingUntilItLogs(t *testing.T) {
	var buf bytes.Buffer
	n := 0
	quiet := atLeast(jsonLogger(&buf), slog.LevelWarn)
	derived := quiet.With("args", resolveCounter{&n})
	derived.DebugContext(context.Background(), "statement")
	if n != 0 || buf.Len() != 0 {
		t.Fatalf("deriving a logger and logging below the minimum resolved its attributes %d times and wrote %q", n, buf.String())
	}
	derived.Error("failed")
	if n != 1 || !strings.Contains(buf.String(), `"args":"document"`) {
		t.Fatalf("resolved %d times, wrote %q", n, buf.String())
	}
}

// A statement's logger, derived and never logged with, as FerretDB does for every SQL
// statement it runs.
func BenchmarkQuietLoggerDerivedForAStatement(b *testing.B) {
	var buf bytes.Buffer
	quiet := atLeast(jsonLogger(&buf), slog.LevelError)
	args := []any{strings.Repeat("x", 16), `{"_id":"m-1","session_id":"s-1","seq":42,"text":"` + strings.Repeat("hello ", 40) + `"}`}
	b.ReportAllocs()
	for b.Loop() {
		l := quiet.With(slog.String("query", "INSERT INTO \"t\" (_ferretdb_sjson) VALUES (?)"), slog.Any("args", args))
		l.Debug("ExecContext")
	}
}
