package platform_test

import (
	"context"
	"io"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/helmdesk/helmdesk/pkg/auth"
	"github.com/helmdesk/helmdesk/pkg/client"
	"github.com/helmdesk/helmdesk/services/platform"
	"github.com/helmdesk/helmdesk/services/platform/platformtest"
)

// BenchmarkLogin20Parallel signs in with 20 clients at once against the whole platform
// on the embedded stack (argon2id, token issue, audit entry) and reports latency
// percentiles. Each iteration is one round of 20 concurrent sign-ins. It runs once
// per password hasher (libsodium is skipped where it is not installed).
func BenchmarkLogin20Parallel(b *testing.B) {
	for _, hasher := range []string{auth.HasherGo, auth.HasherLibsodium} {
		b.Run(hasher, func(b *testing.B) {
			if _, err := auth.UseHasher(hasher); err != nil {
				b.Skip(err)
			}
			defer auth.UseHasher(auth.HasherAuto)
			benchmarkLogin20Parallel(b, hasher)
		})
	}
}

func benchmarkLogin20Parallel(b *testing.B, hasher string) {
	ctx := context.Background()
	dev := platformtest.Start(b, b.TempDir(), io.Discard, func(c *platform.Config) { c.PasswordHasher = hasher })
	api := client.New(dev.URL)
	if _, err := api.Setup(ctx, "Acme", adminEmail, adminPass, "Ada"); err != nil {
		b.Fatal(err)
	}
	admin := api.WithToken(r(api.Login(ctx, adminEmail, adminPass)).mustB(b))
	const parallel = 20
	emails := make([]string, parallel)
	for i := range parallel {
		emails[i] = "agent" + string(rune('a'+i)) + "@acme.test"
		if _, err := admin.CreateAgent(ctx, client.NewAgent{Email: emails[i], Password: agentPass, Name: "A"}); err != nil {
			b.Fatal(err)
		}
	}
	var mu sync.Mutex
	var lat []time.Duration
	for b.Loop() {
		var wg sync.WaitGroup
		for i := range parallel {
			wg.Go(func() {
				start := time.Now()
				if _, err := api.Login(ctx, emails[i], agentPass); err != nil {
					b.Error(err)
				}
				mu.Lock()
				lat = append(lat, time.Since(start))
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Milliseconds()), "p99-ms")
	b.ReportMetric(float64(len(lat)), "logins")
}
