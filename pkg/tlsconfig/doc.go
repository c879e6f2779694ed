// Package tlsconfig builds Helmdesk's TLS configurations: for the gateway's HTTPS and
// WebSocket listener, for gRPC between services (optionally mutual TLS), and a
// self-signed certificate for `helmdesk dev --tls`.
//
// Every configuration accepts TLS 1.2 and 1.3 only. Go negotiates the highest version
// both sides support, so TLS 1.3 is used whenever the client has it; for TLS 1.2 only
// ECDHE key exchange with AEAD ciphers (AES-GCM, ChaCha20-Poly1305) is allowed, which
// rules out RSA key exchange, CBC and 3DES (see [CipherSuites]).
//
// Certificates are reloaded without a restart: a [Reloader] re-reads the certificate
// and key files at most once per interval, during a handshake, and swaps them in when
// they changed and parse as a matching pair. That is how a Kubernetes Secret mounted
// as a volume rotates (cert-manager renewals): the kubelet swaps the files and new
// connections get the new certificate. A half-written pair is ignored and retried
// later; the old certificate keeps being served, and [Reloader.Err] says why. CA
// bundles (RootCAs, ClientCAs) are read once: rotating a CA needs a restart.
//
// With the standard library's http.Server, pass the configuration as TLSConfig and
// call ServeTLS(listener, "", "") (pkg/app.HTTPServer does): it adds the "h2" and
// "http/1.1" protocols for ALPN. gRPC's credentials add "h2" themselves.
package tlsconfig
