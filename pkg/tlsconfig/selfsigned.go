package tlsconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Files written by SelfSigned in its directory (named as in a Kubernetes TLS Secret).
const (
	SelfSignedCertFile = "tls.crt"
	SelfSignedKeyFile  = "tls.key"
)

const (
	selfSignedValidity = 365 * 24 * time.Hour
	// selfSignedRenewBefore: a certificate expiring sooner than this is replaced.
	selfSignedRenewBefore = 30 * 24 * time.Hour
)

// SelfSigned returns the paths of a self-signed ECDSA P-256 certificate and key in dir
// for localhost, 127.0.0.1, ::1 and hosts (names or IP addresses), for development.
// A certificate already in dir is reused when it loads, covers every name and does not
// expire within 30 days; otherwise a new one, valid for a year, replaces it. The key
// file is written with mode 0600 and dir is created with mode 0700.
//
// Clients trust the certificate by adding the returned certificate file as a CA
// (curl --cacert, Client(certFile, ...)); a browser shows a warning once.
func SelfSigned(hosts []string, dir string) (certFile, keyFile string, err error) {
	certFile = filepath.Join(dir, SelfSignedCertFile)
	keyFile = filepath.Join(dir, SelfSignedKeyFile)
	names := selfSignedNames(hosts)

	if reusable(certFile, keyFile, names, time.Now()) {
		if err := os.Chmod(keyFile, 0o600); err != nil {
			return "", "", fmt.Errorf("restrict self-signed key permissions: %w", err)
		}
		return certFile, keyFile, nil
	}
	certPEM, keyPEM, err := generateSelfSigned(names, time.Now(), selfSignedValidity)
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("create certificate directory: %w", err)
	}
	// Key first: a reader never finds a new certificate with an old key for long,
	// and Reloader ignores a mismatched pair until both are in place.
	if err := writeAtomic(keyFile, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := writeAtomic(certFile, certPEM, 0o644); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// selfSignedNames is localhost, 127.0.0.1 and ::1 followed by hosts, without blanks
// or duplicates.
func selfSignedNames(hosts []string) []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	for _, h := range hosts {
		if h != "" && !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	return names
}

// reusable reports whether the pair loads, covers names and is not about to expire.
func reusable(certFile, keyFile string, names []string, now time.Time) bool {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil || pair.Leaf == nil {
		return false
	}
	leaf := pair.Leaf
	if now.Add(selfSignedRenewBefore).After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return false
	}
	for _, n := range names {
		if leaf.VerifyHostname(n) != nil {
			return false
		}
	}
	return true
}

// generateSelfSigned returns a PEM certificate and PKCS #8 key valid from an hour
// before now (clock skew) for validity.
func generateSelfSigned(names []string, now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ecdsa key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "helmdesk development", Organization: []string{"Helmdesk"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create self-signed certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal ecdsa key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// writeAtomic writes data to a temporary file in the same directory with mode perm,
// then renames it over path, so that readers see the old file or the new one.
func writeAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
