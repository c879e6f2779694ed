package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParsePrecedence(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantAddr string
		wantTTL  time.Duration
		wantList []string
		wantErr  string
	}{
		{name: "defaults", wantAddr: ":8080", wantTTL: time.Hour, wantList: []string{"a"}},
		{name: "environment overrides default", env: map[string]string{"X_ADDR": ":9", "X_TTL": "2h", "X_LIST": "b, c,"}, wantAddr: ":9", wantTTL: 2 * time.Hour, wantList: []string{"b", "c"}},
		{name: "flag overrides environment", env: map[string]string{"X_ADDR": ":9"}, args: []string{"--addr", ":7"}, wantAddr: ":7", wantTTL: time.Hour, wantList: []string{"a"}},
		{name: "bad duration in environment names the variable", env: map[string]string{"X_TTL": "soon"}, wantErr: "X_TTL"},
		{name: "check failure is reported", args: []string{"--addr", ""}, wantErr: "addr must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addr string
			var ttl time.Duration
			var list []string
			s := NewSet("x")
			s.String(&addr, "addr", "X_ADDR", ":8080", "listen address")
			s.Duration(&ttl, "ttl", "X_TTL", time.Hour, "token lifetime")
			s.List(&list, "list", "X_LIST", []string{"a"}, "things")
			s.Check(func() error {
				if addr == "" {
					return errors.New("addr must not be empty")
				}
				return nil
			})
			_, err := s.Parse(tt.args, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if addr != tt.wantAddr || ttl != tt.wantTTL || strings.Join(list, "|") != strings.Join(tt.wantList, "|") {
				t.Fatalf("got %q %v %v", addr, ttl, list)
			}
		})
	}
}

func TestDuplicateDeclarationIsAnError(t *testing.T) {
	var a, b string
	s := NewSet("x")
	s.String(&a, "mongo-uri", "M", "m://", "uri")
	s.String(&b, "mongo-uri", "M", "m://", "uri")
	if _, err := s.Parse(nil, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "declared twice") {
		t.Fatalf("err = %v, want declared twice", err)
	}
	if !strings.Contains(s.Markdown(), "`M`") {
		t.Fatalf("markdown lacks env var: %s", s.Markdown())
	}
}
