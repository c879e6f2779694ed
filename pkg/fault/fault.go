package fault

import (
	"errors"
	"fmt"
	"net/http"
)

// Kind classifies an error by what the caller can do about it.
type Kind int

// The kinds of error. Each maps to one HTTP status and one gRPC code.
const (
	Internal Kind = iota
	InvalidArgument
	Unauthenticated
	PermissionDenied
	NotFound
	Conflict
	TooLarge
	RateLimited
	Unavailable
)

var kindNames = [...]string{"internal", "invalid_argument", "unauthenticated", "permission_denied", "not_found", "conflict", "too_large", "rate_limited", "unavailable"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// HTTPStatus is the HTTP status for the kind.
func (k Kind) HTTPStatus() int {
	switch k {
	case InvalidArgument:
		return http.StatusBadRequest
	case Unauthenticated:
		return http.StatusUnauthorized
	case PermissionDenied:
		return http.StatusForbidden
	case NotFound:
		return http.StatusNotFound
	case Conflict:
		return http.StatusConflict
	case TooLarge:
		return http.StatusRequestEntityTooLarge
	case RateLimited:
		return http.StatusTooManyRequests
	case Unavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// Error is a typed error with a stable code.
type Error struct {
	Kind    Kind
	Code    string // stable, snake_case, for machines: "session_not_found"
	Message string // for people
	Field   string // the offending input field, when there is one
	Err     error  // the cause, never shown to clients
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error of the given kind.
func New(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an InvalidArgument error about one field.
func Invalid(field, code, format string, args ...any) *Error {
	return &Error{Kind: InvalidArgument, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// As returns the typed error in err's chain, or an Internal one wrapping err.
func As(err error) *Error {
	var fe *Error
	if errors.As(err, &fe) {
		return fe
	}
	return &Error{Kind: Internal, Code: "internal", Message: "internal error", Err: err}
}

// Is reports whether err carries a fault of the given kind.
func Is(err error, kind Kind) bool {
	var fe *Error
	return errors.As(err, &fe) && fe.Kind == kind
}
