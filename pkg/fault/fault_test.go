package fault

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestAsAndStatus(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"typed error passes through wrapping", fmt.Errorf("load: %w", New(NotFound, "session_not_found", "no session %s", "s1")), http.StatusNotFound, "session_not_found"},
		{"plain error becomes internal", errors.New("boom"), http.StatusInternalServerError, "internal"},
		{"invalid carries the field", Invalid("text", "text_empty", "text is empty"), http.StatusBadRequest, "text_empty"},
		{"too large", New(TooLarge, "too_large", "x"), http.StatusRequestEntityTooLarge, "too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fe := As(tt.err)
			if fe.Kind.HTTPStatus() != tt.status || fe.Code != tt.code {
				t.Fatalf("got %d %s", fe.Kind.HTTPStatus(), fe.Code)
			}
		})
	}
	if !Is(fmt.Errorf("x: %w", New(Conflict, "c", "c")), Conflict) {
		t.Fatal("Is did not see through wrapping")
	}
}
