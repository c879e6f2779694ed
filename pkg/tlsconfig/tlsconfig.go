package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc/credentials"
)

// CipherSuites are the TLS 1.2 cipher suites allowed: ECDHE key exchange (forward
// secrecy) with an AEAD cipher. TLS 1.3 suites are not configurable in Go and are all
// AEAD.
func CipherSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// base is the common part of every configuration.
func base() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: CipherSuites(),
	}
}

// Server returns a server configuration serving certFile and keyFile (PEM), reloaded
// when they change (checked at most every DefaultReloadInterval).
func Server(certFile, keyFile string) (*tls.Config, error) {
	r, err := NewReloader(certFile, keyFile, DefaultReloadInterval)
	if err != nil {
		return nil, err
	}
	return ServerConfig(r), nil
}

// ServerConfig returns a server configuration serving r's certificate.
func ServerConfig(r *Reloader) *tls.Config {
	cfg := base()
	cfg.GetCertificate = r.GetCertificate
	return cfg
}

// Client returns a client configuration. caFile (PEM, one or more certificates) is
// the set of trusted roots; empty means the system's. certFile and keyFile, both or
// neither, are the client certificate for mutual TLS, reloaded when they change.
// serverName is the name to verify the server's certificate against; empty means
// the host dialled.
func Client(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	cfg := base()
	cfg.ServerName = serverName
	if caFile != "" {
		pool, err := loadPool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	switch {
	case certFile != "" && keyFile != "":
		r, err := NewReloader(certFile, keyFile, DefaultReloadInterval)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = r.GetClientCertificate
	case certFile != "" || keyFile != "":
		return nil, errors.New("tls client certificate: give both the certificate and the key, or neither")
	}
	return cfg, nil
}

// ServerCredentials returns gRPC server credentials serving certFile and keyFile.
// With clientCAFile set, clients must present a certificate issued by one of its CAs
// (mutual TLS: tls.RequireAndVerifyClientCert).
func ServerCredentials(certFile, keyFile, clientCAFile string) (credentials.TransportCredentials, error) {
	cfg, err := Server(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	if clientCAFile != "" {
		pool, err := loadPool(clientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return credentials.NewTLS(cfg), nil
}

// ClientCredentials returns gRPC client credentials; the arguments are those of Client.
func ClientCredentials(caFile, certFile, keyFile, serverName string) (credentials.TransportCredentials, error) {
	cfg, err := Client(caFile, certFile, keyFile, serverName)
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}

// loadPool reads a PEM bundle of CA certificates.
func loadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read ca bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("ca bundle %s holds no PEM certificate", file)
	}
	return pool, nil
}
