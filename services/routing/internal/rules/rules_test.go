package rules

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func newEngine(t *testing.T) *Engine {
	t.Helper()
	e, err := NewEngine(time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// seed is the example of the product's requirements, verbatim.
var seed = []Rule{
	{Condition: "user_level == 'VIP'", Action: "assign_to_group('premium')"},
	{Condition: "true", Action: "round_robin('default_group')"},
}

func TestSeedExample(t *testing.T) {
	set, err := newEngine(t).Compile(seed)
	if err != nil {
		t.Fatalf("compile seed rules: %v", err)
	}
	if got := set.Groups(); strings.Join(got, ",") != "default_group,premium" {
		t.Errorf("Groups() = %v", got)
	}
	cases := []struct {
		name    string
		profile map[string]any
		index   int
		action  string
	}{
		{"vip goes to premium", map[string]any{"user_level": "VIP"}, 0, "assign_to_group('premium')"},
		{"normal customer falls through", map[string]any{"user_level": "normal"}, 1, "round_robin('default_group')"},
		// user_level is missing: rule 0 fails to evaluate, which is no match.
		{"missing attribute is no match", map[string]any{}, 1, "round_robin('default_group')"},
		{"nil profile", nil, 1, "round_robin('default_group')"},
		{"attribute of another type", map[string]any{"user_level": 3.0}, 1, "round_robin('default_group')"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := set.Evaluate(Input{Profile: tc.profile}, true)
			if d.Index != tc.index || d.Action.String() != tc.action {
				t.Errorf("Evaluate = rule %d %s, want rule %d %s (trace %+v)", d.Index, d.Action, tc.index, tc.action, d.Trace)
			}
		})
	}
}

func TestConditions(t *testing.T) {
	at := time.Date(2026, 11, 20, 22, 30, 0, 0, time.UTC) // a Friday, 22:30 UTC
	in := Input{
		Profile: map[string]any{
			"user_level": "VIP", "tags": []any{"refund", "repeat"}, "orders": 12.0,
			"vip": true, "address": map[string]any{"city": "Shanghai"}, "nickname": nil,
		},
		Channel: "web", PageURL: "https://shop.example.com/pricing?x=1", DepartmentID: "sales",
		Intent: "物流查询", PreviousSessions: 3, LastAgentID: "a7", LastGroup: "tech", Priority: 5,
		Time: at,
	}
	cases := []struct {
		cond string
		want bool
	}{
		{"true", true},
		{"false", false},
		{"user_level == 'VIP'", true},
		{"profile.user_level == 'VIP'", true},
		{"'refund' in tags", true},
		{"tags.exists(t, t == 'repeat')", true},
		{"size(tags) == 2", true},
		{"orders > 10", true}, // JSON numbers are doubles; comparing with an int works
		{"orders == 12", true},
		{"vip", true}, // a bare boolean attribute
		{"!vip", false},
		{"address.city == 'Shanghai'", true},
		{"nickname == null", true},
		{"channel == 'web' && page_url.contains('/pricing')", true},
		{"page_url.startsWith('https://shop.example.com/')", true},
		{"department_id == 'sales'", true},
		{"intent == '物流查询'", true},
		{"history.previous_sessions >= 3", true},
		{"history.last_agent_id == 'a7' && history.last_group == 'tech'", true},
		{"priority > 3", true},
		{"hour >= 22 || hour < 8", true},
		{"weekday == 5", true},
		{"now.getDayOfWeek() == 5", true},
		{"user_level.lowerAscii() == 'vip'", true},
		// Missing attributes: the condition is false, never an error.
		{"missing_attr == 'x'", false},
		{"missing_attr != 'x'", false},
		{"profile.missing_attr == 'x'", false},
		{"has(profile.missing_attr)", false},
		{"has(profile.user_level)", true},
		{"missing_attr == 'x' || user_level == 'VIP'", true}, // CEL's || absorbs the error
		// Wrong types at run time: no match.
		{"user_level > 3", false},
		{"tags", false}, // a list where a bool is expected
	}
	e := newEngine(t)
	for _, tc := range cases {
		t.Run(tc.cond, func(t *testing.T) {
			set, err := e.Compile([]Rule{{Condition: tc.cond, Action: "round_robin('g')"}})
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			d := set.Evaluate(in, true)
			if got := d.Index == 0; got != tc.want {
				t.Errorf("matched = %v, want %v (trace %+v)", got, tc.want, d.Trace)
			}
		})
	}
}

func TestTimeZone(t *testing.T) {
	shanghai := time.FixedZone("CST", 8*3600)
	e, err := NewEngine(shanghai)
	if err != nil {
		t.Fatal(err)
	}
	set, err := e.Compile([]Rule{{Condition: "hour == 6 && weekday == 6", Action: "round_robin('night')"}})
	if err != nil {
		t.Fatal(err)
	}
	// Friday 22:30 UTC is Saturday 06:30 in UTC+8.
	if d := set.Evaluate(Input{Time: time.Date(2026, 11, 20, 22, 30, 0, 0, time.UTC)}, false); d.Index != 0 {
		t.Errorf("rule did not match in the configured time zone")
	}
}

func TestActions(t *testing.T) {
	cases := []struct {
		text string
		want Action
	}{
		{"assign_to_group('premium')", Action{Kind: AssignToGroup, Group: "premium"}},
		{`assign_to_group("premium")`, Action{Kind: AssignToGroup, Group: "premium"}},
		{" round_robin( 'default_group' ) ", Action{Kind: RoundRobin, Group: "default_group"}},
		{"assign_to_agent('agent-42')", Action{Kind: AssignToAgent, AgentID: "agent-42"}},
		{"assign_to_agent('agent-42', 'tech')", Action{Kind: AssignToAgent, AgentID: "agent-42", Group: "tech"}},
		{"assign_to_last_agent('after_sales')", Action{Kind: AssignToLastAgent, Group: "after_sales"}},
		{"queue('premium', 10)", Action{Kind: Queue, Group: "premium", Priority: 10, HasPriority: true}},
		{"queue('premium')", Action{Kind: Queue, Group: "premium"}},
	}
	e := newEngine(t)
	for _, tc := range cases {
		t.Run(tc.text, func(t *testing.T) {
			got, err := e.ParseAction(tc.text)
			if err != nil {
				t.Fatalf("ParseAction: %v", err)
			}
			if got != tc.want {
				t.Errorf("ParseAction = %+v, want %+v", got, tc.want)
			}
			// The canonical text parses back to the same action.
			again, err := e.ParseAction(got.String())
			if err != nil || again != got {
				t.Errorf("round trip of %q = %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestBadActions(t *testing.T) {
	cases := []struct {
		text string
		want string // a fragment of the error
	}{
		{"", "empty"},
		{"assign_to_group(", "does not parse"},
		{"premium", "not a call"},
		{"'premium'", "not a call"},
		{"x.assign_to_group('premium')", "not a call"},
		{"send_to('premium')", "unknown action"},
		{"assign_to_group()", "takes 1 argument"},
		{"assign_to_group('a', 'b')", "takes 1 argument"},
		{"assign_to_group('')", "not a valid group name"},
		{"assign_to_group('Premium')", "not a valid group name"},
		{"assign_to_group('has space')", "not a valid group name"},
		{"assign_to_group(premium)", "must be a quoted string"},
		{"assign_to_group(1)", "must be a quoted string"},
		{"round_robin('" + strings.Repeat("g", 65) + "')", "not a valid group name"},
		{"assign_to_agent('')", "not valid"},
		{"assign_to_agent('a', '')", "not a valid group name"},
		{"assign_to_last_agent()", "takes 1 argument"},
		{"queue('g', 'high')", "priority must be an integer"},
		{"queue('g', 101)", "out of range"},
		{"queue('g', -1)", "out of range"},
		{"queue('g', 1, 2)", "takes 1 or 2 arguments"},
	}
	e := newEngine(t)
	for _, tc := range cases {
		t.Run(tc.text, func(t *testing.T) {
			_, err := e.ParseAction(tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseAction(%q) error = %v, want it to contain %q", tc.text, err, tc.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		name  string
		rules []Rule
		want  []string // fragments, in order, of the error message
	}{
		{"syntax error names the rule", []Rule{{Condition: "true", Action: "round_robin('a')"}, {Condition: "user_level == ", Action: "round_robin('a')"}},
			[]string{"rule 1: condition: ", "Syntax error"}},
		{"non-bool condition", []Rule{{Condition: "'VIP'", Action: "round_robin('a')"}}, []string{"rule 0: condition: condition yields string, not bool"}},
		{"arithmetic condition", []Rule{{Condition: "hour + 1", Action: "round_robin('a')"}}, []string{"rule 0: condition: condition yields int, not bool"}},
		{"type error", []Rule{{Condition: "hour == 'ten'", Action: "round_robin('a')"}}, []string{"rule 0: condition: ", "no matching overload"}},
		{"unknown function", []Rule{{Condition: "frobnicate(user_level)", Action: "round_robin('a')"}}, []string{"rule 0: condition: ", "undeclared reference to 'frobnicate'"}},
		{"empty condition", []Rule{{Condition: " ", Action: "round_robin('a')"}}, []string{"rule 0: condition: condition is empty"}},
		{"bad action", []Rule{{Condition: "true", Action: "round_robin('a')"}, {Condition: "true", Action: "assign_to('a')"}}, []string{"rule 1: action: unknown action"}},
		{"every invalid rule is reported", []Rule{{Condition: "1", Action: "x"}, {Condition: "true", Action: "queue('')"}},
			[]string{"rule 0: condition", "rule 0: action", "rule 1: action"}},
		{"too long", []Rule{{Condition: strings.Repeat("true && ", 600) + "true", Action: "round_robin('a')"}}, []string{"rule 0: condition: condition is longer than"}},
	}
	e := newEngine(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Compile(tc.rules)
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Compile error = %v, want a *ValidationError", err)
			}
			msg := err.Error()
			pos := 0
			for _, frag := range tc.want {
				i := strings.Index(msg[pos:], frag)
				if i < 0 {
					t.Fatalf("error %q lacks %q (after offset %d)", msg, frag, pos)
				}
				pos += i + len(frag)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q spans several lines", msg)
			}
		})
	}
}

func TestNoRules(t *testing.T) {
	set, err := newEngine(t).Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	d := set.Evaluate(Input{}, true)
	if d.Index != -1 || d.Action != Default() || d.Action.String() != "round_robin('')" {
		t.Errorf("empty set decided %+v", d)
	}
	var nilSet *Set
	if d := nilSet.Evaluate(Input{}, false); d.Index != -1 {
		t.Errorf("nil set decided %+v", d)
	}
}

func TestFirstMatchWins(t *testing.T) {
	set, err := newEngine(t).Compile([]Rule{
		{Condition: "channel == 'app'", Action: "queue('mobile', 7)"},
		{Condition: "intent == 'refund'", Action: "assign_to_group('after_sales')"},
		{Condition: "history.previous_sessions > 0", Action: "assign_to_last_agent('default_group')"},
		{Condition: "true", Action: "round_robin('default_group')"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		in    Input
		index int
	}{
		{Input{Channel: "app", Intent: "refund"}, 0},
		{Input{Channel: "web", Intent: "refund", PreviousSessions: 2}, 1},
		{Input{PreviousSessions: 2}, 2},
		{Input{}, 3},
	}
	for _, tc := range cases {
		if d := set.Evaluate(tc.in, true); d.Index != tc.index || len(d.Trace) != tc.index+1 {
			t.Errorf("Evaluate(%+v) = rule %d with %d traces, want rule %d", tc.in, d.Index, len(d.Trace), tc.index)
		}
	}
}

func TestCostLimit(t *testing.T) {
	set, err := newEngine(t).Compile([]Rule{{
		Condition: "[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, a+b+c+d+e > 0)))))",
		Action:    "round_robin('a')",
	}})
	if err != nil {
		t.Fatal(err)
	}
	d := set.Evaluate(Input{}, true)
	if d.Index != -1 || !strings.Contains(d.Trace[0].Err, "cost limit") {
		t.Errorf("expensive rule: %+v", d)
	}
}

func BenchmarkEvaluate(b *testing.B) {
	e, _ := NewEngine(time.UTC)
	set, err := e.Compile(append([]Rule{
		{Condition: "channel == 'app' && 'refund' in tags", Action: "queue('mobile', 7)"},
		{Condition: "intent == 'refund'", Action: "assign_to_group('after_sales')"},
	}, seed...))
	if err != nil {
		b.Fatal(err)
	}
	in := Input{Profile: map[string]any{"user_level": "normal", "tags": []any{"a"}}, Channel: "web"}
	for b.Loop() {
		set.Evaluate(in, false)
	}
}
