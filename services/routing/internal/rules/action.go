package rules

import (
	"fmt"
	"regexp"
	"strings"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
)

// Kind is what an action does.
type Kind string

// The actions a rule can take.
const (
	// AssignToGroup gives the session to the least loaded online agent of the group
	// with spare capacity (ties: the one idle longest), or queues it in the group.
	AssignToGroup Kind = "assign_to_group"
	// RoundRobin gives the session to the online agent of the group with spare capacity
	// who was assigned least recently, or queues it in the group.
	RoundRobin Kind = "round_robin"
	// AssignToAgent gives the session to one agent when they are online with spare
	// capacity; otherwise it is routed like AssignToGroup(Group) when a fallback group
	// is given, else round robin to everyone.
	AssignToAgent Kind = "assign_to_agent"
	// AssignToLastAgent gives the session to the agent who last served the customer
	// when they are online with spare capacity; otherwise AssignToGroup(Group).
	AssignToLastAgent Kind = "assign_to_last_agent"
	// Queue puts the session in the group's queue with a priority (it is assigned at
	// once when an agent of the group is free and nobody waits before it).
	Queue Kind = "queue"
)

// MaxPriority is the highest queue priority; 0 is the lowest (and the default).
const MaxPriority = 100

// Action is a parsed rule action.
type Action struct {
	Kind    Kind
	Group   string // target group; the fallback group for the agent actions; "" = everyone
	AgentID string // AssignToAgent only
	// Priority is the queue priority of a Queue action; HasPriority says it was given.
	Priority    int
	HasPriority bool
}

// Default is the action taken when there are no rules or none matches: round robin
// over every online agent.
func Default() Action { return Action{Kind: RoundRobin} }

// String renders the action in the rule syntax.
func (a Action) String() string {
	switch a.Kind {
	case AssignToAgent:
		if a.Group != "" {
			return fmt.Sprintf("%s(%s, %s)", a.Kind, quote(a.AgentID), quote(a.Group))
		}
		return fmt.Sprintf("%s(%s)", a.Kind, quote(a.AgentID))
	case Queue:
		if !a.HasPriority {
			return fmt.Sprintf("%s(%s)", a.Kind, quote(a.Group))
		}
		return fmt.Sprintf("%s(%s, %d)", a.Kind, quote(a.Group), a.Priority)
	default:
		return fmt.Sprintf("%s(%s)", a.Kind, quote(a.Group))
	}
}

func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

var groupName = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// ValidGroupName reports whether name is a valid group name: 1-64 characters of
// [a-z0-9_-].
func ValidGroupName(name string) bool { return groupName.MatchString(name) }

// ValidAgentID reports whether id can name an agent: 1-128 printable characters
// without spaces.
func ValidAgentID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// actionParser parses actions with the CEL parser, so quoting and escapes follow the
// same syntax as conditions.
type actionParser struct{ env *cel.Env }

func newActionParser() (*actionParser, error) {
	env, err := cel.NewEnv(cel.ClearMacros())
	if err != nil {
		return nil, fmt.Errorf("create action parser: %w", err)
	}
	return &actionParser{env: env}, nil
}

// arity is the number of required and optional arguments of each action.
var arity = map[Kind][2]int{
	AssignToGroup:     {1, 0},
	RoundRobin:        {1, 0},
	AssignToAgent:     {1, 1},
	AssignToLastAgent: {1, 0},
	Queue:             {1, 1},
}

func (p *actionParser) parse(text string) (Action, error) {
	if strings.TrimSpace(text) == "" {
		return Action{}, fmt.Errorf("action is empty")
	}
	parsed, iss := p.env.Parse(text)
	if iss.Err() != nil {
		return Action{}, fmt.Errorf("action %q does not parse: %s", text, oneLine(iss.Err().Error()))
	}
	root := parsed.NativeRep().Expr()
	if root.Kind() != celast.CallKind || root.AsCall().IsMemberFunction() {
		return Action{}, fmt.Errorf("action %q is not a call such as assign_to_group('name')", text)
	}
	call := root.AsCall()
	kind := Kind(call.FunctionName())
	ar, ok := arity[kind]
	if !ok {
		return Action{}, fmt.Errorf("unknown action %q: use assign_to_group, round_robin, assign_to_agent, assign_to_last_agent or queue", call.FunctionName())
	}
	args := call.Args()
	if len(args) < ar[0] || len(args) > ar[0]+ar[1] {
		if ar[1] == 0 {
			return Action{}, fmt.Errorf("%s takes %d argument(s), got %d", kind, ar[0], len(args))
		}
		return Action{}, fmt.Errorf("%s takes %d or %d arguments, got %d", kind, ar[0], ar[0]+ar[1], len(args))
	}
	str := func(i int, what string) (string, error) {
		if args[i].Kind() == celast.LiteralKind {
			if s, ok := args[i].AsLiteral().(types.String); ok {
				return string(s), nil
			}
		}
		return "", fmt.Errorf("%s: argument %d (%s) must be a quoted string", kind, i+1, what)
	}
	group := func(i int) (string, error) {
		g, err := str(i, "group")
		if err != nil {
			return "", err
		}
		if !ValidGroupName(g) {
			return "", fmt.Errorf("%s: group %q is not a valid group name (1-64 characters of a-z, 0-9, _ and -)", kind, g)
		}
		return g, nil
	}
	a := Action{Kind: kind}
	var err error
	switch kind {
	case AssignToGroup, RoundRobin, AssignToLastAgent:
		a.Group, err = group(0)
	case AssignToAgent:
		if a.AgentID, err = str(0, "agent id"); err == nil && !ValidAgentID(a.AgentID) {
			err = fmt.Errorf("%s: agent id %q is not valid", kind, a.AgentID)
		}
		if err == nil && len(args) == 2 {
			a.Group, err = group(1)
		}
	case Queue:
		if a.Group, err = group(0); err == nil && len(args) == 2 {
			a.HasPriority = true
			a.Priority, err = priorityArg(args[1])
		}
	}
	if err != nil {
		return Action{}, err
	}
	return a, nil
}

func priorityArg(e celast.Expr) (int, error) {
	if e.Kind() == celast.LiteralKind {
		var v int64
		switch lit := e.AsLiteral().(type) {
		case types.Int:
			v = int64(lit)
		case types.Uint:
			v = int64(min(uint64(lit), MaxPriority+1))
		default:
			return 0, fmt.Errorf("queue: priority must be an integer from 0 to %d", MaxPriority)
		}
		if v < 0 || v > MaxPriority {
			return 0, fmt.Errorf("queue: priority %d is out of range 0..%d", v, MaxPriority)
		}
		return int(v), nil
	}
	return 0, fmt.Errorf("queue: priority must be an integer from 0 to %d", MaxPriority)
}

// oneLine folds CEL's multi-line error report (message, source line, caret) into one
// line fit for an API error message.
func oneLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	out := lines[:0]
	for _, l := range lines {
		l = strings.TrimRight(l, " ")
		if strings.TrimSpace(l) == "" || strings.Trim(strings.TrimSpace(l), ".^") == "" || strings.HasPrefix(strings.TrimSpace(l), "|") {
			continue
		}
		out = append(out, strings.TrimSpace(l))
	}
	return strings.Join(out, "; ")
}
