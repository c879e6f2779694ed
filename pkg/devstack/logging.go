package devstack

import (
	"context"
	"log/slog"
)

// orDiscard returns logger, or a logger that drops everything when logger is nil.
func orDiscard(logger *slog.Logger) *slog.Logger {
	if logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return logger
}

// minLevelHandler drops records below min before they reach the wrapped
// handler. It is used to keep the embedded dependencies quiet: FerretDB, for
// example, logs every error reply it sends at WARN.
type minLevelHandler struct {
	min   slog.Level
	inner slog.Handler
}

// atLeast returns a logger that only emits records at level min or above.
func atLeast(logger *slog.Logger, min slog.Level) *slog.Logger {
	return slog.New(&minLevelHandler{min: min, inner: logger.Handler()})
}

func (h *minLevelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.inner.Enabled(ctx, l)
}

func (h *minLevelHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.inner.Handle(ctx, r)
}

func (h *minLevelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &minLevelHandler{min: h.min, inner: h.inner.WithAttrs(attrs)}
}

func (h *minLevelHandler) WithGroup(name string) slog.Handler {
	return &minLevelHandler{min: h.min, inner: h.inner.WithGroup(name)}
}
