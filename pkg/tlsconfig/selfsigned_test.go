package tlsconfig

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSelfSigned(t *testing.T) {
	read := func(t *testing.T, f string) []byte {
		t.Helper()
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string) // the directory before the call
		hosts   []string
		reused  bool
	}{
		{"empty directory", func(*testing.T, string) {}, nil, false},
		{"directory does not exist yet", func(t *testing.T, dir string) { _ = os.Remove(dir) }, nil, false},
		{"valid certificate is reused", func(t *testing.T, dir string) { mustSelfSigned(t, nil, dir) }, nil, true},
		{"valid certificate is reused with the same extra host", func(t *testing.T, dir string) { mustSelfSigned(t, []string{"helmdesk.test"}, dir) }, []string{"helmdesk.test"}, true},
		{"a new host replaces it", func(t *testing.T, dir string) { mustSelfSigned(t, nil, dir) }, []string{"helmdesk.test"}, false},
		{"expiring within 30 days replaces it", func(t *testing.T, dir string) {
			writeSelfSigned(t, dir, selfSignedNames(nil), 20*24*time.Hour)
		}, nil, false},
		{"expiring after 30 days is reused", func(t *testing.T, dir string) {
			writeSelfSigned(t, dir, selfSignedNames(nil), 40*24*time.Hour)
		}, nil, true},
		{"corrupt files are replaced", func(t *testing.T, dir string) {
			mustSelfSigned(t, nil, dir)
			if err := os.WriteFile(filepath.Join(dir, SelfSignedKeyFile), []byte("junk"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, nil, false},
		{"key permissions are tightened on reuse", func(t *testing.T, dir string) {
			mustSelfSigned(t, nil, dir)
			if err := os.Chmod(filepath.Join(dir, SelfSignedKeyFile), 0o644); err != nil {
				t.Fatal(err)
			}
		}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "certs")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			tt.prepare(t, dir)
			before, _ := os.ReadFile(filepath.Join(dir, SelfSignedCertFile))

			certFile, keyFile := mustSelfSigned(t, tt.hosts, dir)
			after := read(t, certFile)
			if reused := before != nil && bytes.Equal(before, after); reused != tt.reused {
				t.Fatalf("reused = %v, want %v", reused, tt.reused)
			}
			if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("key file mode %v, %v; want 0600", fi.Mode().Perm(), err)
			}
			pair, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			pub, ok := pair.Leaf.PublicKey.(*ecdsa.PublicKey)
			if !ok || pub.Curve != elliptic.P256() {
				t.Fatalf("key is %T, want ECDSA P-256", pair.Leaf.PublicKey)
			}
			for _, h := range append([]string{"localhost", "127.0.0.1", "::1"}, tt.hosts...) {
				if err := pair.Leaf.VerifyHostname(h); err != nil {
					t.Errorf("certificate does not cover %s: %v", h, err)
				}
			}
			if time.Until(pair.Leaf.NotAfter) < 30*24*time.Hour {
				t.Fatalf("certificate expires %v", pair.Leaf.NotAfter)
			}
		})
	}
}

func TestSelfSignedServes(t *testing.T) {
	certFile, keyFile := mustSelfSigned(t, nil, t.TempDir())
	cfg, err := Server(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, cfg)
	// A client trusts the development certificate by using it as its CA.
	client, err := Client(certFile, "", "", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	st, err := dial(t, addr, client)
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != tls.VersionTLS13 {
		t.Fatalf("negotiated %s", tls.VersionName(st.Version))
	}
}

func mustSelfSigned(t *testing.T, hosts []string, dir string) (string, string) {
	t.Helper()
	c, k, err := SelfSigned(hosts, dir)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

// writeSelfSigned puts a self-signed pair valid for validity into dir.
func writeSelfSigned(t *testing.T, dir string, names []string, validity time.Duration) {
	t.Helper()
	certPEM, keyPEM, err := generateSelfSigned(names, time.Now(), validity)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, SelfSignedCertFile), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, SelfSignedKeyFile), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}
