package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/helmdesk/helmdesk/pkg/audit"
	"github.com/helmdesk/helmdesk/pkg/fault"
	"github.com/helmdesk/helmdesk/pkg/logkey"
)

// auditActor describes the principal for the audit log.
func auditActor(p Principal) audit.Actor {
	switch p.Kind {
	case tokenUser:
		return audit.Actor{Type: audit.ActorUser, ID: p.UserID, Email: p.Name}
	case tokenAPIKey:
		return audit.Actor{Type: audit.ActorAPIKey, ID: p.UserID, Name: p.Name}
	default:
		return audit.Actor{Type: audit.ActorSystem, Name: "customer"}
	}
}

// audit appends an entry for a completed admin action. A failure to append is logged
// and counted (helmdesk_gateway_audit_failures_total), never silent.
func (g *Gateway) audit(r *http.Request, p Principal, action, targetType, targetID string, before, after map[string]any) {
	g.appendAudit(r, audit.Event{Actor: auditActor(p), Action: action, Target: audit.Target{Type: targetType, ID: targetID}, Before: before, After: after})
}

func (g *Gateway) appendAudit(r *http.Request, ev audit.Event) {
	ev.SourceIP, ev.UserAgent = clientIP(r), r.UserAgent()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	if _, err := g.auditLog.Append(ctx, ev); err != nil {
		g.metrics.auditFailures.Inc()
		g.log.ErrorContext(ctx, "append audit entry", slog.String("action", ev.Action), slog.Any(logkey.Error, err))
	}
}

// auditDenied records an authorisation denial.
func (g *Gateway) auditDenied(r *http.Request, p Principal, route string) {
	g.appendAudit(r, audit.Event{
		Actor: auditActor(p), Action: "authz.denied", Target: audit.Target{Type: "route", ID: route},
		Summary: map[string]any{"method": r.Method, "path": truncate(r.URL.Path, 200)}, Result: audit.ResultFailure,
	})
}

func auditFilter(r *http.Request) (audit.Filter, error) {
	q := r.URL.Query()
	f := audit.Filter{
		ActorID: q.Get("actor"), ActorType: audit.ActorType(q.Get("actor_type")), Action: q.Get("action"),
		TargetType: q.Get("target_type"), TargetID: q.Get("target_id"), Result: audit.Result(q.Get("result")),
	}
	for name, dst := range map[string]*time.Time{"from": &f.From, "to": &f.To} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return audit.Filter{}, fault.Invalid(name, "invalid_time", "%s must be an RFC 3339 time such as 2026-01-31T00:00:00Z", name)
			}
			*dst = t
		}
	}
	return f, nil
}

func (g *Gateway) handleListAudit(w http.ResponseWriter, r *http.Request, _ Principal) error {
	f, err := auditFilter(r)
	if err != nil {
		return err
	}
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil {
			return fault.Invalid("limit", "invalid_limit", "limit must be a whole number from 1 to %d", audit.MaxLimit)
		}
	}
	page, err := g.auditLog.List(r.Context(), f, r.URL.Query().Get("cursor"), limit)
	if err != nil {
		return err
	}
	if page.Entries == nil {
		page.Entries = []audit.Entry{}
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// handleExportAudit streams the filtered log as JSON Lines or CSV. The export itself
// is audited.
func (g *Gateway) handleExportAudit(w http.ResponseWriter, r *http.Request, p Principal) error {
	f, err := auditFilter(r)
	if err != nil {
		return err
	}
	format := audit.Format(r.URL.Query().Get("format"))
	if format == "" {
		format = audit.JSONLines
	}
	if format != audit.JSONLines && format != audit.CSV {
		return fault.Invalid("format", "invalid_format", "format must be jsonl or csv")
	}
	g.appendAudit(r, audit.Event{Actor: auditActor(p), Action: "audit.export", Target: audit.Target{Type: "audit_log"},
		Summary: map[string]any{"format": string(format), "query": truncate(r.URL.RawQuery, 500)}})
	ctype, ext := "application/x-ndjson", "jsonl"
	if format == audit.CSV {
		ctype, ext = "text/csv; charset=utf-8", "csv"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", `attachment; filename="audit-log.`+ext+`"`)
	if _, err := g.auditLog.Export(r.Context(), w, f, format); err != nil {
		g.log.ErrorContext(r.Context(), "export audit log", slog.Any(logkey.Error, err))
	}
	return nil
}

// handleVerifyAudit walks the hash chain and reports the first broken link.
func (g *Gateway) handleVerifyAudit(w http.ResponseWriter, r *http.Request, _ Principal) error {
	rep, err := g.auditLog.Verify(r.Context(), 0, 0)
	if err != nil {
		return err
	}
	out := map[string]any{"ok": rep.Break == nil, "from": rep.From, "to": rep.To, "checked": rep.Checked}
	if rep.Break != nil {
		out["break"] = rep.Break
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
