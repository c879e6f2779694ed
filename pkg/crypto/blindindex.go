package crypto

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"unicode"
)

// Normalization says how a value is canonicalised before it is indexed.
type Normalization int

// The normalisations.
const (
	// Exact indexes the value as given.
	Exact Normalization = iota
	// Phone keeps digits, letters and a leading "+", dropping spaces, dashes, dots,
	// slashes and parentheses; full-width digits and plus become ASCII.
	Phone
	// Email trims surrounding space and lower-cases.
	Email
)

// Field names an indexed field. The name separates index domains: use the collection
// and field, e.g. {Name: "customers.phone", Normalize: Phone}.
type Field struct {
	Name      string
	Normalize Normalization
}

// PhoneField is a Field normalised as a phone number.
func PhoneField(name string) Field { return Field{Name: name, Normalize: Phone} }

// EmailField is a Field normalised as an e-mail address.
func EmailField(name string) Field { return Field{Name: name, Normalize: Email} }

// ExactField is a Field indexed without normalisation.
func ExactField(name string) Field { return Field{Name: name, Normalize: Exact} }

// Normalized applies the field's normalisation to value.
func (f Field) Normalized(value string) string {
	switch f.Normalize {
	case Phone:
		return NormalizePhone(value)
	case Email:
		return NormalizeEmail(value)
	default:
		return value
	}
}

// BlindIndex returns the index value of value in field under the active index key:
// "<index key id>:<base64url(HMAC-SHA256)>". A value that normalises to "" has no index
// and returns "" (store nothing, and expect no match).
func (r *Keyring) BlindIndex(f Field, value string) string {
	norm := f.Normalized(value)
	if norm == "" {
		return ""
	}
	return blindIndex(r.index[0], f.Name, norm)
}

// BlindIndexes returns the index value of value under every index key, active first, to
// look a record up with $in while index keys rotate. It returns nil when value
// normalises to "".
func (r *Keyring) BlindIndexes(f Field, value string) []string {
	norm := f.Normalized(value)
	if norm == "" {
		return nil
	}
	out := make([]string, len(r.index))
	for i, k := range r.index {
		out[i] = blindIndex(k, f.Name, norm)
	}
	return out
}

// NeedsReindex reports whether a stored index value was computed under a key other
// than the active index key (or is not an index value at all) and should be recomputed.
// The empty value (no index) never needs reindexing.
func (r *Keyring) NeedsReindex(stored string) bool {
	if stored == "" {
		return false
	}
	id, _, ok := strings.Cut(stored, ":")
	return !ok || id != r.index[0].ID
}

// blindIndex is HMAC-SHA256(key, len(field) | field | value) with a 4-byte big-endian
// length, so (field, value) pairs cannot collide by moving bytes across the boundary.
func blindIndex(k Key, field, value string) string {
	mac := hmac.New(sha256.New, k.Secret)
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(field)))
	mac.Write(n[:])
	mac.Write([]byte(field))
	mac.Write([]byte(value))
	return k.ID + ":" + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// NormalizePhone canonicalises a phone number for indexing: full-width digits and "+"
// become ASCII; spaces, dashes, dots, slashes and parentheses are dropped; a "+" is
// kept only as the first character; letters are lower-cased and kept (extensions,
// vanity numbers), so different inputs stay different.
// "+86 138-0013-8000" and "+8613800138000" both give "+8613800138000".
func NormalizePhone(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range strings.TrimSpace(s) {
		switch {
		case r >= '０' && r <= '９':
			r = '0' + (r - '０')
		case r == '＋':
			r = '+'
		}
		switch {
		case r == '+':
			if b.Len() == 0 {
				b.WriteRune(r)
			}
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case unicode.IsSpace(r), r == '-', r == '.', r == '/', r == '(', r == ')',
			r == '‐', r == '‑', r == '–', r == '—', r == '（', r == '）', r == '－':
			// separators
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	if b.String() == "+" {
		return ""
	}
	return b.String()
}

// NormalizeEmail canonicalises an e-mail address for indexing: surrounding space is
// trimmed and the whole address lower-cased.
func NormalizeEmail(s string) string {
	return strings.ToLower(strings.TrimSpace(s))
}
