package rpc

import (
	"context"
	"errors"
	"testing"

	"github.com/helmdesk/helmdesk/pkg/fault"
)

func TestStatusRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   error
		kind fault.Kind
		code string
	}{
		{"not found keeps its code", fault.New(fault.NotFound, "session_not_found", "no such session"), fault.NotFound, "session_not_found"},
		{"conflict", fault.New(fault.Conflict, "already_done", "x"), fault.Conflict, "already_done"},
		{"rate limited is not confused with too large", fault.New(fault.RateLimited, "slow_down", "x"), fault.RateLimited, "slow_down"},
		{"invalid keeps the field", fault.Invalid("text", "text_empty", "x"), fault.InvalidArgument, "text_empty"},
		{"plain error becomes internal", errors.New("db exploded"), fault.Internal, "internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			back := fault.As(FromStatus(ToStatus(tt.in)))
			if back.Kind != tt.kind || back.Code != tt.code {
				t.Fatalf("got %v %s, want %v %s", back.Kind, back.Code, tt.kind, tt.code)
			}
			if tt.kind == fault.Internal && back.Message != "internal error" {
				t.Fatalf("internal details leaked: %q", back.Message)
			}
		})
	}
	if !errors.Is(FromStatus(ToStatus(context.Canceled)), context.Canceled) {
		t.Fatal("canceled did not survive")
	}
}
