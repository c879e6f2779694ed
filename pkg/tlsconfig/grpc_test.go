package tlsconfig

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// serveHealth runs a gRPC health service with creds on loopback until the test ends.
func serveHealth(t *testing.T, creds credentials.TransportCredentials) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(creds))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) })
	t.Cleanup(func() {
		srv.Stop()
		wg.Wait()
	})
	return ln.Addr().String()
}

// check calls Health.Check over a new connection.
func check(t *testing.T, addr string, creds credentials.TransportCredentials) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health status %v", resp.GetStatus())
	}
	return nil
}

func TestGRPC(t *testing.T) {
	ca := newCA(t, "ca")
	otherCA := newCA(t, "other-ca")
	serverCert, serverKey, _ := ca.issue(t, t.TempDir(), leafOpts{})
	clientCert, clientKey, _ := ca.issue(t, t.TempDir(), leafOpts{client: true})
	strangerCert, strangerKey, _ := otherCA.issue(t, t.TempDir(), leafOpts{client: true})

	mtls, err := ServerCredentials(serverCert, serverKey, ca.file)
	if err != nil {
		t.Fatal(err)
	}
	tlsOnly, err := ServerCredentials(serverCert, serverKey, "")
	if err != nil {
		t.Fatal(err)
	}
	mtlsAddr, tlsAddr := serveHealth(t, mtls), serveHealth(t, tlsOnly)

	tests := []struct {
		name                string
		addr                string
		ca, cert, key, host string
		ok                  bool
	}{
		{"mutual TLS round trip", mtlsAddr, ca.file, clientCert, clientKey, "localhost", true},
		{"mutual TLS by IP address", mtlsAddr, ca.file, clientCert, clientKey, "127.0.0.1", true},
		{"client without a certificate is refused", mtlsAddr, ca.file, "", "", "localhost", false},
		{"client certificate from another CA is refused", mtlsAddr, ca.file, strangerCert, strangerKey, "localhost", false},
		{"client that does not trust the server's CA", mtlsAddr, otherCA.file, clientCert, clientKey, "localhost", false},
		{"server name the certificate does not cover", mtlsAddr, ca.file, clientCert, clientKey, "gateway.example", false},
		{"TLS without client certificates", tlsAddr, ca.file, "", "", "localhost", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			creds, err := ClientCredentials(tt.ca, tt.cert, tt.key, tt.host)
			if err != nil {
				t.Fatal(err)
			}
			err = check(t, tt.addr, creds)
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && status.Code(err) != codes.Unavailable {
				t.Fatalf("code %v, want Unavailable", status.Code(err))
			}
		})
	}
}
