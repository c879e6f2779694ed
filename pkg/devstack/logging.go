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
//
// It also puts off WithAttrs and WithGroup until a record is handled. FerretDB
// derives a logger with the statement and its arguments (a whole document) for
// every SQL statement it runs, and a JSON or text handler renders those attributes
// when the logger is derived, whether or not anything is ever logged with it: under
// chat load that was a few MB a second of JSON written only to be collected.
type minLevelHandler struct {
	min   slog.Level
	inner slog.Handler
	ops   []handlerOp // applied to inner, in order, when a record is handled
}

// handlerOp is a WithAttrs (attrs set) or a WithGroup (group set) put off.
type handlerOp struct {
	attrs []slog.Attr
	group string
}

// atLeast returns a logger that only emits records at level min or above.
func atLeast(logger *slog.Logger, min slog.Level) *slog.Logger {
	return slog.New(&minLevelHandler{min: min, inner: logger.Handler()})
}

func (h *minLevelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.inner.Enabled(ctx, l)
}

func (h *minLevelHandler) Handle(ctx context.Context, r slog.Record) error {
	inner := h.inner
	for _, op := range h.ops {
		if op.attrs != nil {
			inner = inner.WithAttrs(op.attrs)
		} else {
			inner = inner.WithGroup(op.group)
		}
	}
	return inner.Handle(ctx, r)
}

func (h *minLevelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	return h.with(handlerOp{attrs: attrs}) // a handler owns the slice it is given
}

func (h *minLevelHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(handlerOp{group: name})
}

func (h *minLevelHandler) with(op handlerOp) slog.Handler {
	ops := make([]handlerOp, len(h.ops), len(h.ops)+1)
	copy(ops, h.ops)
	return &minLevelHandler{min: h.min, inner: h.inner, ops: append(ops, op)}
}
