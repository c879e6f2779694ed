package tlsconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// serve accepts TLS connections with cfg on loopback until the test ends, completing
// each handshake and closing the connection.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// dial handshakes with addr and returns the connection state.
func dial(t *testing.T, addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer func() { _ = c.Close() }()
	return c.(*tls.Conn).ConnectionState(), nil
}

func pool(t *testing.T, files ...string) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p.AppendCertsFromPEM(b)
	}
	return p
}

func TestServerVersionsAndCipherSuites(t *testing.T) {
	ca := newCA(t, "ca")
	// An RSA certificate, so that RSA key exchange suites are possible at all and a
	// refusal comes from the configuration.
	certFile, keyFile, _ := ca.issue(t, t.TempDir(), leafOpts{rsa: true})
	cfg, err := Server(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, cfg)

	// A server that accepts anything, to show each refused client is otherwise able
	// to connect.
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var all []uint16
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		all = append(all, s.ID)
	}
	permissive := serve(t, &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS10, CipherSuites: all})

	tests := []struct {
		name        string
		min, max    uint16
		suites      []uint16
		wantVersion uint16 // 0: the handshake must fail
		wantSuite   uint16
	}{
		{name: "modern client gets TLS 1.3", wantVersion: tls.VersionTLS13},
		{name: "TLS 1.2 client with ECDHE AES-GCM", max: tls.VersionTLS12, suites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}, wantVersion: tls.VersionTLS12, wantSuite: tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
		{name: "TLS 1.2 client with ChaCha20", max: tls.VersionTLS12, suites: []uint16{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256}, wantVersion: tls.VersionTLS12, wantSuite: tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256},
		{name: "TLS 1.1 client", min: tls.VersionTLS10, max: tls.VersionTLS11},
		{name: "TLS 1.0 client", min: tls.VersionTLS10, max: tls.VersionTLS10},
		{name: "RSA key exchange with AES-CBC", max: tls.VersionTLS12, suites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}},
		{name: "RSA key exchange with AES-GCM", max: tls.VersionTLS12, suites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}},
		{name: "ECDHE with AES-CBC", max: tls.VersionTLS12, suites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}},
		{name: "ECDHE with 3DES", max: tls.VersionTLS12, suites: []uint16{tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := &tls.Config{RootCAs: pool(t, ca.file), ServerName: "localhost", MinVersion: tt.min, MaxVersion: tt.max, CipherSuites: tt.suites}
			st, err := dial(t, addr, client)
			if tt.wantVersion == 0 {
				if err == nil {
					t.Fatalf("handshake succeeded with %s %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
				}
				if _, err := dial(t, permissive, client); err != nil {
					t.Fatalf("control: the permissive server refuses this client too (%v), so the test proves nothing", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.Version != tt.wantVersion || tt.wantSuite != 0 && st.CipherSuite != tt.wantSuite {
				t.Fatalf("negotiated %s %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
			}
		})
	}
}

func TestCipherSuitesAreModern(t *testing.T) {
	secure := map[uint16]bool{}
	for _, s := range tls.CipherSuites() {
		secure[s.ID] = true
	}
	for _, id := range CipherSuites() {
		name := tls.CipherSuiteName(id)
		if !secure[id] || !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "_GCM_") || strings.Contains(name, "CHACHA20")) {
			t.Errorf("%s is not an ECDHE AEAD suite", name)
		}
	}
}

func TestReloaderPicksUpNewCertificates(t *testing.T) {
	ca := newCA(t, "ca")
	dir := t.TempDir()
	certFile, keyFile, first := ca.issue(t, dir, leafOpts{})
	r, err := NewReloader(certFile, keyFile, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, ServerConfig(r))
	client := &tls.Config{RootCAs: pool(t, ca.file), ServerName: "localhost"}
	serial := func() int64 {
		t.Helper()
		st, err := dial(t, addr, client)
		if err != nil {
			t.Fatal(err)
		}
		return st.PeerCertificates[0].SerialNumber.Int64()
	}
	settle := func() { time.Sleep(40 * time.Millisecond) }

	if got := serial(); got != first {
		t.Fatalf("serving serial %d, want %d", got, first)
	}

	// Rotation, as when the kubelet updates a mounted Secret.
	_, _, second := ca.issue(t, dir, leafOpts{})
	settle()
	serial() // the handshake that notices the change may still get the old one
	if got := serial(); got != second {
		t.Fatalf("after rotation serving %d, want %d", got, second)
	}
	if r.Err() != nil {
		t.Fatalf("reload error %v", r.Err())
	}

	// A broken certificate file keeps the last good pair in service.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	settle()
	serial()
	if got := serial(); got != second {
		t.Fatalf("after a broken write serving %d, want %d", got, second)
	}
	if r.Err() == nil {
		t.Fatal("a failed reload is not reported")
	}

	// A certificate that does not match the key (half-way through a rotation) too.
	otherDir := t.TempDir()
	otherCert, _, _ := ca.issue(t, otherDir, leafOpts{})
	b, _ := os.ReadFile(otherCert)
	if err := os.WriteFile(certFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	settle()
	serial()
	if got := serial(); got != second || r.Err() == nil {
		t.Fatalf("mismatched pair: serving %d, err %v", got, r.Err())
	}

	// Once both files are right again, the new pair is served.
	_, _, third := ca.issue(t, dir, leafOpts{})
	settle()
	serial()
	if got := serial(); got != third || r.Err() != nil {
		t.Fatalf("after recovery serving %d, err %v", got, r.Err())
	}
}

func TestConstructorErrors(t *testing.T) {
	ca := newCA(t, "ca")
	dir := t.TempDir()
	certFile, keyFile, _ := ca.issue(t, dir, leafOpts{})
	_, otherKey, _ := ca.issue(t, t.TempDir(), leafOpts{})
	notPEM := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name    string
		call    func() error
		wantErr string
	}{
		{"server: missing certificate", func() error { _, err := Server(missing, keyFile); return err }, "read tls certificate"},
		{"server: missing key", func() error { _, err := Server(certFile, missing); return err }, "read tls key"},
		{"server: key of another certificate", func() error { _, err := Server(certFile, otherKey); return err }, "load tls key pair"},
		{"client: missing ca", func() error { _, err := Client(missing, "", "", ""); return err }, "read ca bundle"},
		{"client: ca not pem", func() error { _, err := Client(notPEM, "", "", ""); return err }, "no PEM certificate"},
		{"client: certificate without key", func() error { _, err := Client(ca.file, certFile, "", ""); return err }, "both"},
		{"grpc server: client ca not pem", func() error { _, err := ServerCredentials(certFile, keyFile, notPEM); return err }, "no PEM certificate"},
		{"grpc client: missing key", func() error { _, err := ClientCredentials(ca.file, certFile, missing, "localhost"); return err }, "read tls key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
}
