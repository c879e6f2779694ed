package platform_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/helmdesk/helmdesk/pkg/client"
)

// Each opening socket's setup steps are timed: authentication for every socket that
// got a slot (also when its token is refused), the subscription and the greeting
// for each socket that opened, and presence for agents only.
func TestSocketSetupStepsAreTimed(t *testing.T) {
	c := newChat(t, nil)
	ctx := context.Background()
	base := waitSetupSteps(t, c.url, map[string]int{"authenticate": 2, "subscribe": 2, "presence": 1, "greet": 2})

	cust := r(c.api.DialCustomer(ctx, c.start.CustomerToken)).must(t)
	t.Cleanup(func() { _ = cust.CloseNow() })
	base = waitSetupSteps(t, c.url, map[string]int{"authenticate": base["authenticate"] + 1, "subscribe": base["subscribe"] + 1,
		"presence": base["presence"], "greet": base["greet"] + 1})

	if _, err := c.api.DialCustomer(ctx, "not-a-token"); err == nil {
		t.Fatal("a socket opened with a bad token")
	}
	base = waitSetupSteps(t, c.url, map[string]int{"authenticate": base["authenticate"] + 1, "subscribe": base["subscribe"],
		"presence": base["presence"], "greet": base["greet"]})

	agent := r(c.agentAPI.DialAgent(ctx, c.agentAPI.Token, client.ResumeSession(c.start.SessionID, 0))).must(t)
	t.Cleanup(func() { _ = agent.CloseNow() })
	waitSetupSteps(t, c.url, map[string]int{"authenticate": base["authenticate"] + 1, "subscribe": base["subscribe"] + 1,
		"presence": base["presence"] + 1, "greet": base["greet"] + 1})
}

// waitSetupSteps waits until the gateway's setup step counts are want (the greeting's
// is taken as its frames go out, so it may trail the client by a moment).
func waitSetupSteps(t *testing.T, url string, want map[string]int) map[string]int {
	t.Helper()
	var got map[string]int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = setupSteps(t, url); fmt.Sprint(got) == fmt.Sprint(want) {
			return got
		}
	}
	t.Fatalf("setup step counts %v, want %v", got, want)
	return nil
}

func setupSteps(t *testing.T, url string) map[string]int {
	t.Helper()
	got := map[string]int{}
	const prefix = `helmdesk_gateway_socket_setup_step_seconds_count{step="`
	for _, line := range metricLines(t, url) {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			step, count, _ := strings.Cut(rest, `"} `)
			n, err := strconv.Atoi(count)
			if err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			got[step] = n
		}
	}
	return got
}
