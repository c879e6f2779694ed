package gateway

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/helmdesk/helmdesk/pkg/auth"
)

// BenchmarkAuthorization measures what authentication (a cached token) and the
// permission check add to a request, against the same handler unguarded. Reports
// the p99 of the guarded request.
func BenchmarkAuthorization(b *testing.B) {
	plain, digest, err := auth.NewToken(auth.PrefixUserToken)
	if err != nil {
		b.Fatal(err)
	}
	perms, _ := (&roleStore{}).permissions(b.Context(), auth.RoleSupervisor)
	id := &identity{cache: map[string]Principal{digest: {Kind: tokenUser, UserID: "u1", Role: auth.RoleSupervisor, perms: perms, expires: time.Now().Add(time.Hour)}}}
	g := &Gateway{identity: id, log: slog.New(slog.DiscardHandler)}
	ok := func(w http.ResponseWriter, _ *http.Request, _ Principal) error {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	guarded := g.guard(route{pattern: "GET /api/v1/agents", access: need(PermAgentsRead), handle: ok})
	open := g.guard(route{pattern: "GET /api/v1/setup", access: public, handle: ok})
	req := httptest.NewRequest(http.MethodGet, "/api/v1/agents", nil)
	req.Header.Set("Authorization", "Bearer "+plain)
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"unguarded", open}, {"guarded", guarded}} {
		b.Run(tc.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				w := httptest.NewRecorder()
				start := time.Now()
				tc.h.ServeHTTP(w, req)
				lat = append(lat, time.Since(start))
				if w.Code != http.StatusNoContent {
					b.Fatalf("status %d", w.Code)
				}
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		})
	}
}
