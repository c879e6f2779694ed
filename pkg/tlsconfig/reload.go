package tlsconfig

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultReloadInterval is how often Server and Client look at their files.
const DefaultReloadInterval = 10 * time.Second

// Reloader serves a certificate from a pair of PEM files and picks up changes to them.
// It checks the files lazily, during a handshake, at most once per interval: it needs
// no goroutine and no Close.
type Reloader struct {
	certFile, keyFile string
	interval          time.Duration

	cert      atomic.Pointer[tls.Certificate]
	nextCheck atomic.Int64 // unix nanoseconds

	mu      sync.Mutex // serialises checks and guards the fields below
	certPEM []byte
	keyPEM  []byte
	err     error
}

// NewReloader loads the pair now (failing if it does not load) and rechecks the files
// at most once per interval (DefaultReloadInterval when interval is 0 or less).
func NewReloader(certFile, keyFile string, interval time.Duration) (*Reloader, error) {
	if interval <= 0 {
		interval = DefaultReloadInterval
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, interval: interval}
	if err := r.reload(); err != nil {
		return nil, err
	}
	r.nextCheck.Store(time.Now().Add(interval).UnixNano())
	return r, nil
}

// Certificate returns the current certificate, reloading the files first when the
// interval has passed and they changed. A pair that fails to load keeps the previous
// certificate in service.
func (r *Reloader) Certificate() *tls.Certificate {
	now := time.Now()
	if next := r.nextCheck.Load(); now.UnixNano() >= next && r.nextCheck.CompareAndSwap(next, now.Add(r.interval).UnixNano()) {
		_ = r.reload() // recorded in r.err
	}
	return r.cert.Load()
}

// GetCertificate is for tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.Certificate(), nil
}

// GetClientCertificate is for tls.Config.GetClientCertificate.
func (r *Reloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.Certificate(), nil
}

// Err is why the last reload failed, nil once a reload succeeds (or when none failed).
func (r *Reloader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// reload reads both files and swaps the certificate in if they changed and parse.
func (r *Reloader) reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.reloadLocked()
	r.err = err
	return err
}

func (r *Reloader) reloadLocked() error {
	certPEM, err := os.ReadFile(r.certFile)
	if err != nil {
		return fmt.Errorf("read tls certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(r.keyFile)
	if err != nil {
		return fmt.Errorf("read tls key: %w", err)
	}
	if bytes.Equal(certPEM, r.certPEM) && bytes.Equal(keyPEM, r.keyPEM) {
		return nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("load tls key pair %s, %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert.Store(&cert)
	r.certPEM, r.keyPEM = certPEM, keyPEM
	return nil
}
