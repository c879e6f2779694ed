package crypto

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeySize is the length of every key in bytes (AES-256, HMAC-SHA256).
const KeySize = 32

// Environment variables read by [KeyringFromEnv].
const (
	EnvKeys     = "HELMDESK_ENCRYPTION_KEYS"
	EnvKeysFile = "HELMDESK_ENCRYPTION_KEYS_FILE"
)

// indexPrefix marks a blind index key in the text format.
const indexPrefix = "index"

// maxKeyIDLen bounds key ids; they are repeated in every ciphertext.
const maxKeyIDLen = 64

// ErrKeyConfig is wrapped by every error about key material or its configuration.
var ErrKeyConfig = errors.New("invalid key configuration")

// Key is a named secret of [KeySize] bytes.
type Key struct {
	ID     string
	Secret []byte
}

// GenerateKey returns a new random key. An empty id gets a random one ("k" and eight
// hex digits).
func GenerateKey(id string) (Key, error) {
	if id == "" {
		b := make([]byte, 4)
		if _, err := rand.Read(b); err != nil {
			return Key{}, fmt.Errorf("read random key id: %w", err)
		}
		id = "k" + hex.EncodeToString(b)
	}
	if err := validateKeyID(id); err != nil {
		return Key{}, err
	}
	secret := make([]byte, KeySize)
	if _, err := rand.Read(secret); err != nil {
		return Key{}, fmt.Errorf("read random key: %w", err)
	}
	return Key{ID: id, Secret: secret}, nil
}

// Encode returns the key in the text format, "id:<base64>". It contains the secret.
func (k Key) Encode() string {
	return k.ID + ":" + base64.StdEncoding.EncodeToString(k.Secret)
}

// String names the key without its secret, so a key that reaches a log stays secret.
func (k Key) String() string { return k.ID + ":<redacted>" }

// GoString keeps %#v from printing the secret too.
func (k Key) GoString() string {
	return "crypto.Key{ID: " + fmt.Sprintf("%q", k.ID) + ", Secret: <redacted>}"
}

// ParseKey parses one "id:<base64>" entry and checks the id and the key length.
func ParseKey(s string) (Key, error) {
	id, b64, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return Key{}, fmt.Errorf("%w: key entry must be id:<base64 key>", ErrKeyConfig)
	}
	if err := validateKeyID(id); err != nil {
		return Key{}, err
	}
	secret, err := decodeKey(b64)
	if err != nil {
		return Key{}, fmt.Errorf("%w: key %s: %w", ErrKeyConfig, id, err)
	}
	return Key{ID: id, Secret: secret}, nil
}

// ParseKeyList parses a list of "id:<base64>" entries separated by commas or newlines
// (blank entries and lines starting with "#" are skipped), for key lists other than the
// keyring's, such as the audit log's chain keys. The first entry is the active key.
// It refuses an empty list and duplicate ids or secrets.
func ParseKeyList(s string) ([]Key, error) {
	var keys []Key
	for _, entry := range splitEntries(s) {
		k, err := ParseKey(entry)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no keys", ErrKeyConfig)
	}
	if err := checkUnique(keys); err != nil {
		return nil, err
	}
	return keys, nil
}

// ParseKeyring parses the text format described in the package documentation.
func ParseKeyring(s string) (*Keyring, error) {
	var enc, index []Key
	for _, entry := range splitEntries(s) {
		isIndex := false
		if rest, ok := strings.CutPrefix(entry, indexPrefix+":"); ok && strings.Count(entry, ":") == 2 {
			entry, isIndex = rest, true
		}
		k, err := ParseKey(entry)
		if err != nil {
			return nil, err
		}
		if isIndex {
			index = append(index, k)
		} else {
			enc = append(enc, k)
		}
	}
	return NewKeyring(enc, index)
}

// keyFile is the JSON key file.
type keyFile struct {
	EncryptionKeys []keyFileEntry `json:"encryption_keys"`
	IndexKeys      []keyFileEntry `json:"index_keys"`
}

type keyFileEntry struct {
	ID  string `json:"id"`
	Key string `json:"key"`
}

// ReadKeyringFile reads a key file: JSON when its first non-blank character is "{",
// otherwise the text format.
func ReadKeyringFile(path string) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file %s: %w", path, err)
	}
	kr, err := parseKeyringBytes(b)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return kr, nil
}

func parseKeyringBytes(b []byte) (*Keyring, error) {
	trimmed := bytes.TrimSpace(b)
	if !bytes.HasPrefix(trimmed, []byte("{")) {
		return ParseKeyring(string(b))
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	var f keyFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: decode json: %w", ErrKeyConfig, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: decode json: trailing data after the object", ErrKeyConfig)
	}
	convert := func(entries []keyFileEntry) ([]Key, error) {
		keys := make([]Key, 0, len(entries))
		for _, e := range entries {
			k, err := ParseKey(e.ID + ":" + e.Key)
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
		}
		return keys, nil
	}
	enc, err := convert(f.EncryptionKeys)
	if err != nil {
		return nil, err
	}
	index, err := convert(f.IndexKeys)
	if err != nil {
		return nil, err
	}
	return NewKeyring(enc, index)
}

// KeyringFromEnv builds the keyring from HELMDESK_ENCRYPTION_KEYS (the text format) or
// from the file named by HELMDESK_ENCRYPTION_KEYS_FILE. Exactly one must be set.
// getenv is os.Getenv in production.
func KeyringFromEnv(getenv func(string) string) (*Keyring, error) {
	inline, file := getenv(EnvKeys), getenv(EnvKeysFile)
	switch {
	case inline != "" && file != "":
		return nil, fmt.Errorf("%w: set %s or %s, not both", ErrKeyConfig, EnvKeys, EnvKeysFile)
	case inline != "":
		kr, err := ParseKeyring(inline)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvKeys, err)
		}
		return kr, nil
	case file != "":
		return ReadKeyringFile(file)
	default:
		return nil, fmt.Errorf("%w: neither %s nor %s is set (generate keys with `helmdesk keys generate`)", ErrKeyConfig, EnvKeys, EnvKeysFile)
	}
}

// splitEntries splits on commas and newlines, trims, and drops blanks and comments.
func splitEntries(s string) []string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for entry := range strings.SplitSeq(line, ",") {
			if entry = strings.TrimSpace(entry); entry != "" {
				out = append(out, entry)
			}
		}
	}
	return out
}

func validateKeyID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty key id", ErrKeyConfig)
	}
	if len(id) > maxKeyIDLen {
		return fmt.Errorf("%w: key id %.16q… is longer than %d characters", ErrKeyConfig, id, maxKeyIDLen)
	}
	if id == indexPrefix {
		return fmt.Errorf("%w: key id %q is reserved", ErrKeyConfig, id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return fmt.Errorf("%w: key id %q may only contain letters, digits, '.', '_' and '-'", ErrKeyConfig, id)
		}
	}
	return nil
}

// decodeKey accepts standard or URL-safe base64, padded or not, of exactly KeySize bytes.
func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty key")
	}
	encodings := []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding}
	for _, enc := range encodings {
		b, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(b) != KeySize {
			return nil, fmt.Errorf("key is %d bytes, want %d (AES-256)", len(b), KeySize)
		}
		return b, nil
	}
	return nil, errors.New("key is not valid base64")
}

// checkUnique refuses duplicate ids and duplicate secrets in keys.
func checkUnique(keys []Key) error {
	ids := make(map[string]bool, len(keys))
	secrets := make(map[string]string, len(keys))
	for _, k := range keys {
		if ids[k.ID] {
			return fmt.Errorf("%w: duplicate key id %q", ErrKeyConfig, k.ID)
		}
		ids[k.ID] = true
		if other, ok := secrets[string(k.Secret)]; ok {
			return fmt.Errorf("%w: keys %q and %q have the same secret", ErrKeyConfig, other, k.ID)
		}
		secrets[string(k.Secret)] = k.ID
	}
	return nil
}
