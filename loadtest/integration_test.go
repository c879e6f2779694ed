package loadtest_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/helmdesk/helmdesk/loadtest/internal/load"
	"github.com/helmdesk/helmdesk/loadtest/internal/report"
	"github.com/helmdesk/helmdesk/loadtest/internal/target"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
	buildDir  string
)

// helmdesk builds bin/helmdesk from this repository once for the package's tests
// (or uses LOADTEST_HELMDESK_BIN, a binary built beforehand).
func helmdesk(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("LOADTEST_HELMDESK_BIN"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "loadtest-bin-")
		if buildErr != nil {
			return
		}
		binary = filepath.Join(buildDir, "helmdesk")
		cmd := exec.Command("go", "build", "-o", binary, "./services/cmd/helmdesk")
		cmd.Dir = ".." // the root module
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = err
			binary = out.String()
		}
	})
	if buildErr != nil {
		t.Fatalf("go build ./services/cmd/helmdesk: %v\n%s", buildErr, binary)
	}
	return binary
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// lineLogger writes each line to t.Log (progress and status lines).
type lineLogger struct {
	t   *testing.T
	mu  sync.Mutex
	buf []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.t.Log(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
}

func run(t *testing.T, cfg load.Config) *report.Report {
	t.Helper()
	logs := &lineLogger{t: t}
	// The target's data and logs are kept when the test fails, for the post-mortem.
	dir, err := os.MkdirTemp("", "loadtest-"+t.Name()+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kept the target's data and logs in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	cfg.Binary, cfg.Dir, cfg.Log, cfg.Progress = helmdesk(t), dir, logs, logs
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rep, err := load.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("load.Run: %v", err)
	}
	if f, err := os.Create(filepath.Join(cfg.Dir, "report.json")); err == nil {
		_ = rep.WriteJSON(f)
		f.Close()
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	for line := range strings.Lines(text.String()) {
		t.Log(strings.TrimRight(line, "\n"))
	}
	return rep
}

// assertIntact fails unless the checker found nothing wrong and messages really
// went both ways (minDelivered each).
func assertIntact(t *testing.T, rep *report.Report, minDelivered int64) {
	t.Helper()
	c := rep.Check
	if c.Lost != 0 || c.Duplicated != 0 || c.Reordered != 0 || c.Gaps != 0 {
		t.Errorf("checker: lost %d, duplicated %d, reordered %d, gaps %d; examples %+v", c.Lost, c.Duplicated, c.Reordered, c.Gaps, c.Problems)
	}
	if h := c.History; h.Checked != c.Conversations || h.Missing+h.Duplicated+h.Gaps+h.Mismatched != 0 {
		t.Errorf("history cross-check: %+v (of %d conversations)", h, c.Conversations)
	}
	if rep.CustomerToAgent.Delivered < minDelivered || rep.AgentToCustomer.Delivered < minDelivered {
		t.Errorf("delivered %d customer→agent and %d agent→customer, want at least %d each", rep.CustomerToAgent.Delivered, rep.AgentToCustomer.Delivered, minDelivered)
	}
	if c.Delivered != c.Acked {
		t.Errorf("checker saw %d acknowledged messages but %d delivered", c.Acked, c.Delivered)
	}
	if !rep.Phases.Drained {
		t.Errorf("deliveries did not drain within %s", rep.Settings.DrainTimeout)
	}
	if rep.Reconnects.NotResumed != 0 {
		t.Errorf("%d dropped sockets never resumed: %v", rep.Reconnects.NotResumed, rep.Reconnects.Unresumed)
	}
	if !rep.Pass {
		t.Logf("the tool's verdict is FAIL: %v", rep.Failures)
	}
}

// TestDevNoChaos runs a short load against one `helmdesk dev` process.
func TestDevNoChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs helmdesk")
	}
	rep := run(t, load.Config{
		Layout: target.Dev, Customers: 40, Agents: 4, Rate: 2, Jitter: 0.5, Duration: 8 * time.Second, HistoryCheck: -1, MaxErrorRate: 0.01,
	})
	assertIntact(t, rep, 300)
	if rep.Reconnects.Drops != 0 || len(rep.Errors) != 0 {
		t.Errorf("without chaos: %d drops, errors %v", rep.Reconnects.Drops, rep.Errors)
	}
	if rep.Sessions.Created != 40 || rep.Sessions.Unassigned != 0 {
		t.Errorf("sessions: %+v", rep.Sessions)
	}
	if s := rep.CustomerToAgent.Latency; s.Count == 0 || s.P50 <= 0 || s.P50 > s.P99 {
		t.Errorf("latency summary %+v", s)
	}
}

// TestSplitChaos runs 100 conversations against separate processes while the
// session process is killed and restarted twice, then the gateway twice.
//
// LOADTEST_CHAOS_INTERVAL sets the time between kills (default 12s). Below the
// session consumers' 10 s Kafka session timeout, a second kill lands while the
// group still waits for the first dead member — see the load tester's report on
// what the platform does then.
func TestSplitChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs helmdesk")
	}
	interval := 12 * time.Second
	if v := os.Getenv("LOADTEST_CHAOS_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("LOADTEST_CHAOS_INTERVAL: %v", err)
		}
		interval = d
	}
	const cycles = 2
	rep := run(t, load.Config{
		Layout: target.Split, Customers: 100, Agents: 4, Rate: 1, Jitter: 0.5, MaxErrorRate: 0.01,
		Duration: 4*interval + 5*time.Second, DrainTimeout: 45 * time.Second, HistoryCheck: -1,
		Chaos: []string{target.ProcSession, target.ProcGateway}, ChaosCycles: cycles, ChaosInterval: interval,
	})
	assertIntact(t, rep, 1000)
	if len(rep.Chaos) != 2*cycles {
		t.Fatalf("chaos events %+v, want %d", rep.Chaos, 2*cycles)
	}
	for i, ev := range rep.Chaos {
		want := target.ProcSession
		if i >= cycles {
			want = target.ProcGateway
		}
		if ev.Process != want || ev.Error != "" || ev.ReadyAtS == 0 {
			t.Errorf("chaos event %d = %+v, want %s killed and ready again", i, ev, want)
		}
	}
	// Every gateway kill drops every socket: 2 × (100 customers + 4 agents).
	if rep.Reconnects.Drops < 2*104 || rep.Reconnects.NotResumed != 0 || rep.Reconnects.Resumes == 0 {
		t.Errorf("reconnects %+v", rep.Reconnects)
	}
}
