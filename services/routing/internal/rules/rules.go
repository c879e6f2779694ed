package rules

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

// Limits on what a rule set may hold.
const (
	MaxRules           = 200
	MaxConditionLength = 4096
	MaxActionLength    = 512
	// costLimit bounds the work of one condition evaluation, so that a rule such as a
	// huge comprehension cannot stall routing.
	costLimit = 100_000
)

// Rule is one routing rule as the admin wrote it.
type Rule struct {
	Condition string
	Action    string
}

// Input is what conditions see about the session being routed.
type Input struct {
	// Profile is the customer's profile. Each key is a top-level variable and the whole
	// map is `profile`.
	Profile          map[string]any
	Channel          string
	PageURL          string
	DepartmentID     string
	Intent           string
	PreviousSessions int64
	LastAgentID      string
	LastGroup        string
	Priority         int
	// Time gives `hour`, `weekday` (0 = Sunday) and `now`; zero means time.Now().
	Time time.Time
}

// Variables every condition can use, besides the profile's keys.
var builtins = []cel.EnvOption{
	cel.Variable("profile", cel.MapType(cel.StringType, cel.DynType)),
	cel.Variable("channel", cel.StringType),
	cel.Variable("page_url", cel.StringType),
	cel.Variable("department_id", cel.StringType),
	cel.Variable("intent", cel.StringType),
	cel.Variable("history", cel.MapType(cel.StringType, cel.DynType)),
	cel.Variable("priority", cel.IntType),
	cel.Variable("hour", cel.IntType),
	cel.Variable("weekday", cel.IntType),
	cel.Variable("now", cel.TimestampType),
}

var builtinNames = map[string]bool{
	"profile": true, "channel": true, "page_url": true, "department_id": true, "intent": true,
	"history": true, "priority": true, "hour": true, "weekday": true, "now": true,
}

// RuleError says why one rule is invalid.
type RuleError struct {
	Index int
	Field string // "condition" or "action"
	Err   string
}

func (e RuleError) Error() string {
	return fmt.Sprintf("rule %d: %s: %s", e.Index, e.Field, e.Err)
}

// ValidationError lists every invalid rule of a set.
type ValidationError struct{ Rules []RuleError }

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Rules))
	for i, r := range e.Rules {
		msgs[i] = r.Error()
	}
	return strings.Join(msgs, "; ")
}

// Engine compiles rule sets. It is safe for concurrent use.
type Engine struct {
	env     *cel.Env
	actions *actionParser
	loc     *time.Location
}

// NewEngine returns an engine whose `hour` and `weekday` are taken in loc (UTC if nil).
func NewEngine(loc *time.Location) (*Engine, error) {
	if loc == nil {
		loc = time.UTC
	}
	opts := append(slices.Clone(builtins), cel.CrossTypeNumericComparisons(true), ext.Strings())
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, fmt.Errorf("create rule environment: %w", err)
	}
	ap, err := newActionParser()
	if err != nil {
		return nil, err
	}
	return &Engine{env: env, actions: ap, loc: loc}, nil
}

// ParseAction parses one action.
func (e *Engine) ParseAction(text string) (Action, error) { return e.actions.parse(text) }

type compiled struct {
	rule    Rule
	program cel.Program
	action  Action
}

// Set is a compiled, immutable rule set.
type Set struct {
	rules []compiled
	loc   *time.Location
}

// Len is the number of rules.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}

// Rules returns the rules as written.
func (s *Set) Rules() []Rule {
	if s == nil {
		return nil
	}
	out := make([]Rule, len(s.rules))
	for i, c := range s.rules {
		out[i] = c.rule
	}
	return out
}

// Groups returns the groups the actions name, sorted.
func (s *Set) Groups() []string {
	seen := map[string]bool{}
	for _, c := range s.rules {
		if c.action.Group != "" {
			seen[c.action.Group] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// Compile validates every rule and compiles the set. An invalid set returns a
// *ValidationError naming every invalid rule.
func (e *Engine) Compile(rules []Rule) (*Set, error) {
	if len(rules) > MaxRules {
		return nil, &ValidationError{Rules: []RuleError{{Index: MaxRules, Field: "rules", Err: fmt.Sprintf("at most %d rules are allowed, got %d", MaxRules, len(rules))}}}
	}
	set := &Set{rules: make([]compiled, 0, len(rules)), loc: e.loc}
	var errs []RuleError
	for i, r := range rules {
		prg, err := e.compileCondition(r.Condition)
		if err != nil {
			errs = append(errs, RuleError{Index: i, Field: "condition", Err: err.Error()})
		}
		var act Action
		if len(r.Action) > MaxActionLength {
			err = fmt.Errorf("action is longer than %d characters", MaxActionLength)
		} else {
			act, err = e.actions.parse(r.Action)
		}
		if err != nil {
			errs = append(errs, RuleError{Index: i, Field: "action", Err: err.Error()})
		}
		set.rules = append(set.rules, compiled{rule: r, program: prg, action: act})
	}
	if len(errs) > 0 {
		return nil, &ValidationError{Rules: errs}
	}
	return set, nil
}

func (e *Engine) compileCondition(src string) (cel.Program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("condition is empty (use \"true\" to match every session)")
	}
	if len(src) > MaxConditionLength {
		return nil, fmt.Errorf("condition is longer than %d characters", MaxConditionLength)
	}
	parsed, iss := e.env.Parse(src)
	if iss.Err() != nil {
		return nil, errors.New(oneLine(iss.Err().Error()))
	}
	// Identifiers that are not built in are profile attributes: declare each as dyn so
	// that the condition type-checks; a missing attribute fails evaluation, which makes
	// the condition false.
	env := e.env
	if free := freeIdents(parsed.NativeRep()); len(free) > 0 {
		decls := make([]cel.EnvOption, len(free))
		for i, name := range free {
			decls[i] = cel.Variable(name, cel.DynType)
		}
		var err error
		if env, err = e.env.Extend(decls...); err != nil {
			return nil, fmt.Errorf("declare profile attributes: %w", err)
		}
	}
	checked, iss := env.Check(parsed)
	if iss.Err() != nil {
		return nil, errors.New(oneLine(iss.Err().Error()))
	}
	if out := checked.OutputType(); !out.IsExactType(cel.BoolType) && !out.IsExactType(cel.DynType) {
		return nil, fmt.Errorf("condition yields %s, not bool", out)
	}
	prg, err := env.Program(checked, cel.EvalOptions(cel.OptOptimize), cel.CostLimit(costLimit))
	if err != nil {
		return nil, fmt.Errorf("build program: %w", err)
	}
	return prg, nil
}

// freeIdents returns the identifiers of the expression that are neither built in nor
// bound by a comprehension.
func freeIdents(a *celast.AST) []string {
	bound := map[string]bool{}
	idents := map[string]bool{}
	celast.PreOrderVisit(a.Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		switch e.Kind() {
		case celast.IdentKind:
			idents[e.AsIdent()] = true
		case celast.ComprehensionKind:
			c := e.AsComprehension()
			bound[c.IterVar()] = true
			bound[c.AccuVar()] = true
			if c.HasIterVar2() {
				bound[c.IterVar2()] = true
			}
		}
	}))
	var out []string
	for name := range idents {
		if !bound[name] && !builtinNames[name] && !strings.HasPrefix(name, "@") {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Trace is what one rule evaluated to.
type Trace struct {
	Index   int
	Matched bool
	Err     string // why the condition did not match when it failed to evaluate
}

// Decision is the result of evaluating a set.
type Decision struct {
	Index  int // the matching rule, or -1 for the default
	Action Action
	Trace  []Trace
}

// Evaluate runs the conditions in order and returns the first match, or the default
// action. A condition that fails to evaluate (a missing attribute, a wrong type) or
// yields anything but true does not match. traced asks for the per-rule trace.
func (s *Set) Evaluate(in Input, traced bool) Decision {
	if s.Len() == 0 {
		return Decision{Index: -1, Action: Default()}
	}
	act := newActivation(in, s.loc)
	var trace []Trace
	for i, c := range s.rules {
		out, _, err := c.program.Eval(act)
		matched := false
		reason := ""
		switch {
		case err != nil:
			reason = err.Error()
		case out.Type() == types.BoolType:
			matched = out == types.True
		default:
			reason = fmt.Sprintf("condition yielded %s, not bool", out.Type().TypeName())
		}
		if traced {
			trace = append(trace, Trace{Index: i, Matched: matched, Err: reason})
		}
		if matched {
			return Decision{Index: i, Action: c.action, Trace: trace}
		}
	}
	return Decision{Index: -1, Action: Default(), Trace: trace}
}

// activation resolves built-in variables first, then profile attributes.
type activation struct {
	builtin map[string]any
	profile map[string]any
}

func newActivation(in Input, loc *time.Location) *activation {
	t := in.Time
	if t.IsZero() {
		t = time.Now()
	}
	t = t.In(loc)
	profile := in.Profile
	if profile == nil {
		profile = map[string]any{}
	}
	return &activation{
		profile: profile,
		builtin: map[string]any{
			"profile":       profile,
			"channel":       in.Channel,
			"page_url":      in.PageURL,
			"department_id": in.DepartmentID,
			"intent":        in.Intent,
			"history": map[string]any{
				"previous_sessions": in.PreviousSessions,
				"last_agent_id":     in.LastAgentID,
				"last_group":        in.LastGroup,
			},
			"priority": int64(in.Priority),
			"hour":     int64(t.Hour()),
			"weekday":  int64(t.Weekday()),
			"now":      types.Timestamp{Time: t},
		},
	}
}

func (a *activation) ResolveName(name string) (any, bool) {
	if v, ok := a.builtin[name]; ok {
		return v, true
	}
	v, ok := a.profile[name]
	if ok && v == nil {
		return types.NullValue, true
	}
	return v, ok
}

func (a *activation) Parent() interpreter.Activation { return nil }

var _ interpreter.Activation = (*activation)(nil)
