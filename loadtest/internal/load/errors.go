package load

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/helmdesk/helmdesk/pkg/client"
)

var httpStatus = regexp.MustCompile(`http (\d{3})`)

// classify names the cause of a network or socket error, for error kinds.
func classify(err error) string {
	var ce websocket.CloseError
	var ne net.Error
	switch {
	case err == nil:
		return "none"
	case errors.As(err, &ce):
		return "close_" + strconv.Itoa(int(ce.Code))
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken_pipe"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	if m := httpStatus.FindStringSubmatch(err.Error()); m != nil {
		return "http_" + m[1]
	}
	return "other"
}

// httpCause names the cause of a failed REST call: the status and error code, or
// the network cause.
func httpCause(err error) string {
	var ae *client.APIError
	if errors.As(err, &ae) {
		return strconv.Itoa(ae.Status) + "_" + ae.Code
	}
	return classify(err)
}

// isDecodeError reports whether a Read error is a frame that was not valid JSON (the
// socket itself is fine).
func isDecodeError(err error) bool {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	return errors.As(err, &se) || errors.As(err, &te)
}

// retryable reports whether an error frame about a message means "send it again
// with the same client_msg_id" rather than "this message is refused".
func retryable(code string) bool {
	return !slices.Contains([]string{
		"invalid_json", "missing_type", "unknown_type", "binary_not_supported", "invalid_client_msg_id",
		"empty_text", "text_too_large", "invalid_text", "session_required", "forbidden_session", "invalid_last_seq",
	}, code)
}

// backoff is the reconnect delay of the console and widget (shared/chat.ts): 100 ms
// doubling to 1 s for the first quickAttempts attempts, while the server is likely
// coming back, then doubling to 10 s; each delay jittered to 50-100%.
type backoff struct {
	d        time.Duration
	attempts int
}

const (
	quickAttempts = 15
	quickCap      = time.Second
	slowCap       = 10 * time.Second
)

func (b *backoff) next() time.Duration {
	limit := quickCap
	if b.attempts >= quickAttempts {
		limit = slowCap
	}
	b.attempts++
	if b.d == 0 {
		b.d = 100 * time.Millisecond
	} else {
		b.d = min(2*b.d, limit)
	}
	return time.Duration(float64(b.d) * (0.5 + 0.5*rand.Float64()))
}

func (b *backoff) reset() { *b = backoff{} }

// sleep waits d unless ctx ends first; it reports whether to carry on.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func sortByCreated(ms []*msg) {
	slices.SortFunc(ms, func(a, b *msg) int { return a.created.Compare(b.created) })
}
