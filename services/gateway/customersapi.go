package gateway

import (
	"net/http"

	"github.com/helmdesk/helmdesk/pkg/fault"
	sessionv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/session/v1"
)

// handleFindCustomers looks customers up by exact phone number or e-mail address.
func (g *Gateway) handleFindCustomers(w http.ResponseWriter, r *http.Request, _ Principal) error {
	q := r.URL.Query()
	field, value := "phone", q.Get("phone")
	if value == "" {
		field, value = "email", q.Get("email")
	}
	if value == "" {
		return fault.Invalid("phone", "missing_lookup", "give phone or email to look customers up")
	}
	res, err := g.sessions.FindCustomers(r.Context(), &sessionv1.FindCustomersRequest{Field: field, Value: value})
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(res.GetCustomers()))
	for _, c := range res.GetCustomers() {
		out = append(out, map[string]any{"id": c.GetId(), "user_id": c.GetUserId(), "profile": c.GetProfile().AsMap(), "session_count": c.GetSessionCount(),
			"created_at": c.GetCreatedAt().AsTime(), "last_seen_at": c.GetLastSeenAt().AsTime()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"customers": out})
	return nil
}

// handleEraseCustomer erases a customer's personal data in one call (GDPR art. 17).
func (g *Gateway) handleEraseCustomer(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	res, err := g.sessions.EraseCustomer(r.Context(), &sessionv1.EraseCustomerRequest{CustomerId: id})
	if err != nil {
		return err
	}
	g.audit(r, p, "customer.erase", "customer", id, nil, map[string]any{"sessions_scrubbed": res.GetSessionsScrubbed(), "messages_scrubbed": res.GetMessagesScrubbed()})
	writeJSON(w, http.StatusOK, map[string]any{"customer_id": id, "sessions_scrubbed": res.GetSessionsScrubbed(), "messages_scrubbed": res.GetMessagesScrubbed()})
	return nil
}
