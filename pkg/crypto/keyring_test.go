package crypto

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// testKey returns a deterministic key whose secret is filled with b.
func testKey(id string, b byte) Key {
	return Key{ID: id, Secret: bytes.Repeat([]byte{b}, KeySize)}
}

// testKeyring builds a keyring from encryption keys (k1 by default) and index key i1.
func testKeyring(t testing.TB, enc ...Key) *Keyring {
	t.Helper()
	if len(enc) == 0 {
		enc = []Key{testKey("k1", 1)}
	}
	kr, err := NewKeyring(enc, []Key{testKey("i1", 0xF1)})
	if err != nil {
		t.Fatalf("new keyring: %v", err)
	}
	return kr
}

func TestEncryptRoundTrip(t *testing.T) {
	kr := testKeyring(t)
	tests := []struct {
		name      string
		plaintext []byte
		aad       string
	}{
		{"phone number", []byte("+86 138-0013-8000"), FieldAAD("customers", "c1", "phone")},
		{"empty plaintext still authenticates", []byte{}, "customers/c1/note"},
		{"binary and empty aad", []byte{0, 1, 2, 0xff}, ""},
		{"unicode", []byte("张三 <zhang@example.com>"), "customers/c2/name"},
		{"large value", bytes.Repeat([]byte("x"), 64<<10), "tickets/t1/body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct, err := kr.Encrypt(tt.plaintext, tt.aad)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(ct, "v1:k1:") {
				t.Fatalf("ciphertext %.20q does not name version and key", ct)
			}
			if len(tt.plaintext) > 4 && strings.Contains(ct, string(tt.plaintext)) {
				t.Fatal("ciphertext contains the plaintext")
			}
			got, err := kr.Decrypt(ct, tt.aad)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Fatalf("decrypt = %q, want %q", got, tt.plaintext)
			}
		})
	}

	// Random nonces: the same plaintext never encrypts the same way twice.
	a, _ := kr.EncryptString("same", "x")
	b, _ := kr.EncryptString("same", "x")
	if a == b {
		t.Fatal("two encryptions of the same value are equal")
	}
	if s, err := kr.DecryptString(a, "x"); err != nil || s != "same" {
		t.Fatalf("DecryptString = %q, %v", s, err)
	}
}

// mutate decodes a ciphertext's payload, lets f change it, and re-encodes it.
func mutate(t *testing.T, ct string, f func([]byte) []byte) string {
	t.Helper()
	i := strings.LastIndexByte(ct, ':')
	raw, err := base64.RawURLEncoding.DecodeString(ct[i+1:])
	if err != nil {
		t.Fatal(err)
	}
	return ct[:i+1] + base64.RawURLEncoding.EncodeToString(f(raw))
}

func TestDecryptRejects(t *testing.T) {
	kr := testKeyring(t)
	const aad = "customers/c1/phone"
	ct, err := kr.EncryptString("+8613800138000", aad)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(pos int) func([]byte) []byte {
		return func(b []byte) []byte {
			b[pos] ^= 0x01
			return b
		}
	}
	other := testKeyring(t, testKey("k9", 9))
	foreign, _ := other.EncryptString("+8613800138000", aad)

	tests := []struct {
		name string
		ct   string
		aad  string
		want error
	}{
		// The AAD binds the value to its record and field.
		{"wrong record", ct, "customers/c2/phone", ErrAuthentication},
		{"wrong field", ct, "customers/c1/email", ErrAuthentication},
		{"flipped bit in nonce", mutate(t, ct, flip(0)), aad, ErrAuthentication},
		{"flipped bit in ciphertext", mutate(t, ct, flip(nonceSize)), aad, ErrAuthentication},
		{"flipped bit in tag", mutate(t, ct, func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }), aad, ErrAuthentication},
		{"truncated by one byte", mutate(t, ct, func(b []byte) []byte { return b[:len(b)-1] }), aad, ErrAuthentication},
		{"truncated below nonce and tag", mutate(t, ct, func(b []byte) []byte { return b[:nonceSize+tagSize-1] }), aad, ErrMalformed},
		{"truncated string by a base64 quantum", ct[:len(ct)-4], aad, ErrAuthentication},
		{"truncated string mid-quantum", ct[:len(ct)-3], aad, ErrMalformed},
		{"extended", mutate(t, ct, func(b []byte) []byte { return append(b, 0) }), aad, ErrAuthentication},
		// A ciphertext relabelled with another id of the ring fails: the id is authenticated.
		{"unknown key id", strings.Replace(ct, ":k1:", ":k7:", 1), aad, ErrUnknownKey},
		{"sealed by a key we do not have", foreign, aad, ErrUnknownKey},
		{"plaintext", "+8613800138000", aad, ErrMalformed},
		{"empty", "", aad, ErrMalformed},
		{"future version", strings.Replace(ct, "v1:", "v2:", 1), aad, ErrMalformed},
		{"missing key id", "v1::" + ct[len("v1:k1:"):], aad, ErrMalformed},
		{"missing payload separator", "v1:k1", aad, ErrMalformed},
		{"not base64url", "v1:k1:" + strings.Repeat("*", 40), aad, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := kr.Decrypt(tt.ct, tt.aad)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if got != nil {
				t.Fatalf("returned %q with an error", got)
			}
		})
	}
}

func TestDecryptRejectsKeyIDSwapWithinRing(t *testing.T) {
	// Both keys are in the ring: relabelling k1's ciphertext as k2 must not decrypt.
	kr := testKeyring(t, testKey("k2", 2), testKey("k1", 1))
	old := testKeyring(t, testKey("k1", 1))
	ct, _ := old.EncryptString("secret", "a")
	if _, err := kr.Decrypt(strings.Replace(ct, ":k1:", ":k2:", 1), "a"); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("err = %v, want ErrAuthentication", err)
	}
}

func TestRotation(t *testing.T) {
	const aad = "customers/c1/phone"
	before := testKeyring(t, testKey("k1", 1))
	oldCT, err := before.EncryptString("+8613800138000", aad)
	if err != nil {
		t.Fatal(err)
	}

	after := testKeyring(t, testKey("k2", 2), testKey("k1", 1))
	if after.ActiveKeyID() != "k2" {
		t.Fatalf("active = %s, want k2", after.ActiveKeyID())
	}
	if got, err := after.DecryptString(oldCT, aad); err != nil || got != "+8613800138000" {
		t.Fatalf("old ciphertext after rotation: %q, %v", got, err)
	}
	newCT, _ := after.EncryptString("+8613800138000", aad)
	if id, _ := KeyID(newCT); id != "k2" {
		t.Fatalf("new write used key %s, want k2", id)
	}

	tests := []struct {
		name string
		ct   string
		want bool
	}{
		{"old key", oldCT, true},
		{"active key", newCT, false},
		{"malformed", "plain", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := after.NeedsReencrypt(tt.ct); got != tt.want {
				t.Fatalf("NeedsReencrypt = %v, want %v", got, tt.want)
			}
		})
	}

	re, err := after.Reencrypt(oldCT, aad)
	if err != nil {
		t.Fatal(err)
	}
	if after.NeedsReencrypt(re) {
		t.Fatal("re-encrypted value still needs re-encryption")
	}
	if same, _ := after.Reencrypt(re, aad); same != re {
		t.Fatal("re-encrypting an up-to-date value changed it")
	}
	if _, err := after.Reencrypt(oldCT, "customers/c2/phone"); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("reencrypt with the wrong aad: %v", err)
	}
	// Once re-encrypted, the old key can go.
	only := testKeyring(t, testKey("k2", 2))
	if got, err := only.DecryptString(re, aad); err != nil || got != "+8613800138000" {
		t.Fatalf("after removing k1: %q, %v", got, err)
	}
	if _, err := only.Decrypt(oldCT, aad); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old ciphertext without k1: %v", err)
	}
}

func TestFieldAAD(t *testing.T) {
	tests := []struct {
		name                  string
		collection, id, field string
		want                  string
	}{
		{"plain", "customers", "42", "phone", "customers/42/phone"},
		// a slash in an id cannot make two records' AADs equal
		{"escaped id", "customers", "a/phone", "email", "customers/a%2Fphone/email"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FieldAAD(tt.collection, tt.id, tt.field); got != tt.want {
				t.Fatalf("FieldAAD = %q, want %q", got, tt.want)
			}
		})
	}
}

func BenchmarkEncrypt(b *testing.B) {
	kr := testKeyring(b)
	plain := []byte("+8613800138000")
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Encrypt(plain, "customers/c1/phone"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	kr := testKeyring(b)
	plain := []byte("+8613800138000")
	ct, _ := kr.Encrypt(plain, "customers/c1/phone")
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Decrypt(ct, "customers/c1/phone"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBlindIndex(b *testing.B) {
	kr := testKeyring(b)
	f := PhoneField("customers.phone")
	b.ReportAllocs()
	for b.Loop() {
		_ = kr.BlindIndex(f, "+86 138-0013-8000")
	}
}
