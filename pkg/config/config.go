package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Setting describes one declared setting.
type Setting struct {
	Flag    string
	Env     string
	Default string
	Usage   string
	Group   string
}

// Set is a group of declared settings backed by a flag.FlagSet.
type Set struct {
	fs       *flag.FlagSet
	settings []Setting
	group    string
	checks   []func() error
}

// NewSet returns an empty set whose flags are parsed as the named command.
func NewSet(name string) *Set {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &Set{fs: fs}
}

// Group sets the heading under which the following declarations are documented.
func (s *Set) Group(name string) *Set { s.group = name; return s }

// FlagSet exposes the underlying flag set, for usage output.
func (s *Set) FlagSet() *flag.FlagSet { return s.fs }

// Settings lists every declared setting in declaration order.
func (s *Set) Settings() []Setting { return slices.Clone(s.settings) }

func (s *Set) declare(name, env, def, usage string) {
	for _, st := range s.settings {
		if st.Flag == name {
			s.checks = append(s.checks, func() error { return fmt.Errorf("setting --%s is declared twice", name) })
			return
		}
	}
	s.settings = append(s.settings, Setting{Flag: name, Env: env, Default: def, Usage: usage, Group: s.group})
}

func (s *Set) has(name string) bool { return s.fs.Lookup(name) != nil }

// String declares a string setting.
func (s *Set) String(p *string, name, env, def, usage string) {
	s.declare(name, env, def, usage)
	if !s.has(name) {
		s.fs.StringVar(p, name, def, usage)
	}
}

// Int declares an integer setting.
func (s *Set) Int(p *int, name, env string, def int, usage string) {
	s.declare(name, env, strconv.Itoa(def), usage)
	if !s.has(name) {
		s.fs.IntVar(p, name, def, usage)
	}
}

// Bool declares a boolean setting.
func (s *Set) Bool(p *bool, name, env string, def bool, usage string) {
	s.declare(name, env, strconv.FormatBool(def), usage)
	if !s.has(name) {
		s.fs.BoolVar(p, name, def, usage)
	}
}

// Duration declares a duration setting ("30s", "12h").
func (s *Set) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	s.declare(name, env, def.String(), usage)
	if !s.has(name) {
		s.fs.DurationVar(p, name, def, usage)
	}
}

// List declares a comma-separated list setting.
func (s *Set) List(p *[]string, name, env string, def []string, usage string) {
	s.declare(name, env, strings.Join(def, ","), usage)
	if !s.has(name) {
		*p = slices.Clone(def)
		s.fs.Func(name, usage, func(v string) error {
			*p = SplitList(v)
			return nil
		})
	}
}

// Check registers a validation that runs after parsing.
func (s *Set) Check(fn func() error) { s.checks = append(s.checks, fn) }

// SplitList splits a comma-separated value, dropping empty items.
func SplitList(v string) []string {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// Parse applies the environment (looked up with getenv), then args, then runs every
// check. It returns the arguments left after the flags.
func (s *Set) Parse(args []string, getenv func(string) string) ([]string, error) {
	for _, st := range s.settings {
		if st.Env == "" {
			continue
		}
		if v := getenv(st.Env); v != "" {
			if err := s.fs.Set(st.Flag, v); err != nil {
				return nil, fmt.Errorf("environment variable %s=%q: %w", st.Env, v, err)
			}
		}
	}
	if err := s.fs.Parse(args); err != nil {
		return nil, err
	}
	var errs []error
	for _, check := range s.checks {
		if err := check(); err != nil {
			errs = append(errs, err)
		}
	}
	return s.fs.Args(), errors.Join(errs...)
}

// Markdown renders the settings as a reference table per group.
func (s *Set) Markdown() string {
	groups := map[string][]Setting{}
	var order []string
	for _, st := range s.settings {
		if _, ok := groups[st.Group]; !ok {
			order = append(order, st.Group)
		}
		groups[st.Group] = append(groups[st.Group], st)
	}
	var b strings.Builder
	for _, g := range order {
		if g != "" {
			fmt.Fprintf(&b, "\n## %s\n\n", g)
		}
		b.WriteString("| environment | flag | default | meaning |\n|---|---|---|---|\n")
		rows := groups[g]
		sort.SliceStable(rows, func(i, j int) bool { return rows[i].Env < rows[j].Env })
		for _, st := range rows {
			def := st.Default
			if def == "" {
				def = " "
			} else {
				def = "`" + def + "`"
			}
			fmt.Fprintf(&b, "| `%s` | `--%s` | %s | %s |\n", st.Env, st.Flag, def, st.Usage)
		}
	}
	return b.String()
}
