package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Errors returned by [Keyring.Decrypt]; each is wrapped with detail.
var (
	// ErrMalformed: the value is not a ciphertext of a known version.
	ErrMalformed = errors.New("malformed ciphertext")
	// ErrUnknownKey: the ciphertext names a key that is not in the keyring.
	ErrUnknownKey = errors.New("unknown encryption key")
	// ErrAuthentication: the ciphertext was altered, or the AAD or the key is wrong.
	ErrAuthentication = errors.New("ciphertext authentication failed")
)

// version is the ciphertext format written by Encrypt.
const version = "v1"

const (
	nonceSize = 12
	tagSize   = 16
)

// Keyring holds the encryption and blind index keys. It is immutable and safe for
// concurrent use.
type Keyring struct {
	active string                 // id of the encryption key for new writes
	aeads  map[string]cipher.AEAD // every encryption key by id
	encIDs []string               // encryption key ids, active first

	index []Key // blind index keys, active first
}

// NewKeyring validates the keys and builds a keyring. The first key of each list is
// active. Both lists must be non-empty, every key must be KeySize bytes, and ids and
// secrets must be unique across both lists.
func NewKeyring(encryption, index []Key) (*Keyring, error) {
	if len(encryption) == 0 {
		return nil, fmt.Errorf("%w: no encryption key: add an entry <id>:<base64 key>", ErrKeyConfig)
	}
	if len(index) == 0 {
		return nil, fmt.Errorf("%w: no blind index key: add an entry %s:<id>:<base64 key>", ErrKeyConfig, indexPrefix)
	}
	all := make([]Key, 0, len(encryption)+len(index))
	all = append(all, encryption...)
	all = append(all, index...)
	for _, k := range all {
		if err := validateKeyID(k.ID); err != nil {
			return nil, err
		}
		if len(k.Secret) != KeySize {
			return nil, fmt.Errorf("%w: key %s is %d bytes, want %d", ErrKeyConfig, k.ID, len(k.Secret), KeySize)
		}
	}
	if err := checkUnique(all); err != nil {
		return nil, err
	}

	kr := &Keyring{active: encryption[0].ID, aeads: make(map[string]cipher.AEAD, len(encryption))}
	for _, k := range encryption {
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("create cipher for key %s: %w", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("create gcm for key %s: %w", k.ID, err)
		}
		kr.aeads[k.ID] = aead
		kr.encIDs = append(kr.encIDs, k.ID)
	}
	for _, k := range index {
		kr.index = append(kr.index, Key{ID: k.ID, Secret: append([]byte(nil), k.Secret...)})
	}
	return kr, nil
}

// ActiveKeyID is the id of the key that encrypts new values.
func (r *Keyring) ActiveKeyID() string { return r.active }

// KeyIDs lists the encryption key ids, active first.
func (r *Keyring) KeyIDs() []string { return append([]string(nil), r.encIDs...) }

// IndexKeyIDs lists the blind index key ids, active first.
func (r *Keyring) IndexKeyIDs() []string {
	ids := make([]string, len(r.index))
	for i, k := range r.index {
		ids[i] = k.ID
	}
	return ids
}

// FieldAAD returns the additional authenticated data that binds a value to one field of
// one record: "collection/id/field", each part path-escaped ("customers/42/phone").
func FieldAAD(collection, id, field string) string {
	return url.PathEscape(collection) + "/" + url.PathEscape(id) + "/" + url.PathEscape(field)
}

// Encrypt seals plaintext under the active key with AES-256-GCM and a random nonce,
// authenticating aad with it. The same aad must be given to Decrypt.
func (r *Keyring) Encrypt(plaintext []byte, aad string) (string, error) {
	aead := r.aeads[r.active]
	out := make([]byte, nonceSize, nonceSize+len(plaintext)+tagSize)
	if _, err := rand.Read(out); err != nil {
		return "", fmt.Errorf("read random nonce: %w", err)
	}
	out = aead.Seal(out, out[:nonceSize], plaintext, sealedAAD(r.active, aad))
	return version + ":" + r.active + ":" + base64.RawURLEncoding.EncodeToString(out), nil
}

// EncryptString is Encrypt for a string value.
func (r *Keyring) EncryptString(plaintext, aad string) (string, error) {
	return r.Encrypt([]byte(plaintext), aad)
}

// Decrypt opens a value made by Encrypt under any key of the keyring. It returns an
// error wrapping ErrMalformed, ErrUnknownKey or ErrAuthentication, and never returns
// bytes that did not authenticate.
func (r *Keyring) Decrypt(ciphertext, aad string) ([]byte, error) {
	id, sealed, err := parseCiphertext(ciphertext)
	if err != nil {
		return nil, err
	}
	aead, ok := r.aeads[id]
	if !ok {
		return nil, fmt.Errorf("decrypt: %w %q", ErrUnknownKey, id)
	}
	plain, err := aead.Open(nil, sealed[:nonceSize], sealed[nonceSize:], sealedAAD(id, aad))
	if err != nil {
		return nil, fmt.Errorf("decrypt with key %s: %w", id, ErrAuthentication)
	}
	return plain, nil
}

// DecryptString is Decrypt for a string value.
func (r *Keyring) DecryptString(ciphertext, aad string) (string, error) {
	b, err := r.Decrypt(ciphertext, aad)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// KeyID returns the id of the key a ciphertext was sealed with, without decrypting it.
// It fails with ErrMalformed when the value is not a ciphertext, which also tells
// plaintext left over from before encryption apart.
func KeyID(ciphertext string) (string, error) {
	id, _, err := parseCiphertext(ciphertext)
	return id, err
}

// NeedsReencrypt reports whether a well-formed ciphertext was sealed with a key other
// than the active one. It does not authenticate the value; malformed values report
// false (Reencrypt would fail on them).
func (r *Keyring) NeedsReencrypt(ciphertext string) bool {
	id, err := KeyID(ciphertext)
	return err == nil && id != r.active
}

// Reencrypt decrypts a ciphertext and seals it again under the active key, with the
// same aad. A value already under the active key is returned unchanged.
func (r *Keyring) Reencrypt(ciphertext, aad string) (string, error) {
	id, err := KeyID(ciphertext)
	if err != nil {
		return "", err
	}
	if id == r.active {
		return ciphertext, nil
	}
	plain, err := r.Decrypt(ciphertext, aad)
	if err != nil {
		return "", err
	}
	return r.Encrypt(plain, aad)
}

// sealedAAD authenticates the format version and key id along with the caller's aad.
// Key ids cannot contain ':', so the concatenation is unambiguous.
func sealedAAD(keyID, aad string) []byte {
	return []byte(version + ":" + keyID + ":" + aad)
}

func parseCiphertext(s string) (keyID string, sealed []byte, err error) {
	ver, rest, ok := strings.Cut(s, ":")
	if !ok {
		return "", nil, fmt.Errorf("%w: no version prefix", ErrMalformed)
	}
	if ver != version {
		return "", nil, fmt.Errorf("%w: unsupported version %.8q", ErrMalformed, ver)
	}
	keyID, payload, ok := strings.Cut(rest, ":")
	if !ok || keyID == "" || len(keyID) > maxKeyIDLen {
		return "", nil, fmt.Errorf("%w: missing key id", ErrMalformed)
	}
	sealed, err = base64.RawURLEncoding.Strict().DecodeString(payload)
	if err != nil {
		return "", nil, fmt.Errorf("%w: payload is not base64url", ErrMalformed)
	}
	if len(sealed) < nonceSize+tagSize {
		return "", nil, fmt.Errorf("%w: payload is %d bytes, shorter than nonce and tag", ErrMalformed, len(sealed))
	}
	return keyID, sealed, nil
}
