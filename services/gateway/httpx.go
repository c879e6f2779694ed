package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/helmdesk/helmdesk/pkg/fault"
	"github.com/helmdesk/helmdesk/pkg/logkey"
)

// maxBodyBytes bounds a JSON request body.
const maxBodyBytes = 1 << 20

// errorBody is the JSON shape of every API error.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError is the one place typed errors become HTTP responses.
func (g *Gateway) writeError(w http.ResponseWriter, r *http.Request, err error) {
	fe := fault.As(err)
	status := fe.Kind.HTTPStatus()
	if status >= 500 {
		g.log.ErrorContext(r.Context(), "request failed", slog.String(logkey.Route, r.Pattern), slog.Any(logkey.Error, err))
	}
	if fe.Kind == fault.Unauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="helmdesk"`)
	}
	writeJSON(w, status, errorBody{Code: fe.Code, Message: fe.Message, Field: fe.Field})
}

// decodeJSON reads a JSON object body into dst, rejecting unknown fields, trailing
// data, wrong types and bodies over maxBodyBytes with clear errors.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return fault.New(fault.InvalidArgument, "unsupported_content_type", "send the body as application/json")
	}
	body := http.MaxBytesReader(w, r.Body, maxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var maxErr *http.MaxBytesError
		var syntaxErr *json.SyntaxError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &maxErr):
			return fault.New(fault.TooLarge, "body_too_large", "the request body is larger than %d bytes", maxBodyBytes)
		case errors.Is(err, io.EOF):
			return fault.New(fault.InvalidArgument, "empty_body", "the request body is empty; send a JSON object")
		case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
			return fault.New(fault.InvalidArgument, "invalid_json", "the request body is not valid JSON")
		case errors.As(err, &typeErr):
			return fault.Invalid(typeErr.Field, "invalid_type", "field %q must be of type %s", typeErr.Field, typeErr.Type.String())
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return fault.Invalid(name, "unknown_field", "unknown field %q", name)
		default:
			return fault.New(fault.InvalidArgument, "invalid_json", "the request body is not a valid JSON object: %v", err)
		}
	}
	if dec.More() {
		return fault.New(fault.InvalidArgument, "invalid_json", "the request body has data after the JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return fault.New(fault.InvalidArgument, "invalid_json", "the request body has data after the JSON object")
	}
	return nil
}

func pathID(r *http.Request, name string) (string, error) {
	v := r.PathValue(name)
	if v == "" || len(v) > 64 || strings.ContainsAny(v, " /\\\x00") {
		return "", fault.Invalid(name, "invalid_id", "%s in the path is not a valid id", name)
	}
	return v, nil
}

func notFoundHandler(g *Gateway) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		g.writeError(w, r, fault.New(fault.NotFound, "route_not_found", "no API route %s %s", r.Method, r.URL.Path))
	}
}
