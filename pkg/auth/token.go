package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// Token prefixes tell what a bearer token is at a glance (and to secret scanners).
const (
	PrefixUserToken     = "hdu_"
	PrefixCustomerToken = "hdc_"
	PrefixAPIKey        = "hdk_"
)

// NewToken returns a random token with the prefix (256 bits of entropy) and the digest
// under which it is stored.
func NewToken(prefix string) (plain, digest string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("read random token: %w", err)
	}
	plain = prefix + base64.RawURLEncoding.EncodeToString(b)
	return plain, Digest(plain), nil
}

// Digest is the stored form of a token: hex SHA-256. Tokens carry 256 random bits, so
// a fast hash is enough; a slow one would only slow every request down.
func Digest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// WellFormed reports whether s looks like a token of ours with the prefix (cheap
// rejection before any lookup).
func WellFormed(s, prefix string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || len(rest) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(rest)
	return err == nil
}
