package crypto

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func b64(n int, fill byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, n))
}

func TestParseKeyring(t *testing.T) {
	k1, k2, i1 := b64(32, 1), b64(32, 2), b64(32, 3)
	tests := []struct {
		name      string
		in        string
		wantEnc   []string // encryption key ids, active first
		wantIndex []string
		wantErr   string // substring; every error wraps ErrKeyConfig
	}{
		{name: "env value, first active", in: "k2:" + k2 + ",k1:" + k1 + ",index:i1:" + i1, wantEnc: []string{"k2", "k1"}, wantIndex: []string{"i1"}},
		{name: "lines with comments and blanks", in: "# rotated 2026-05\nk2:" + k2 + "\n\n  k1:" + k1 + "  \nindex:i1:" + i1 + "\n", wantEnc: []string{"k2", "k1"}, wantIndex: []string{"i1"}},
		{name: "index entries may come first", in: "index:i1:" + i1 + ", k1:" + k1, wantEnc: []string{"k1"}, wantIndex: []string{"i1"}},
		{name: "unpadded and url-safe base64", in: "k1:" + base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)) + ",index:i1:" + strings.TrimRight(i1, "="), wantEnc: []string{"k1"}, wantIndex: []string{"i1"}},
		{name: "empty", in: "", wantErr: "no encryption key"},
		{name: "only comments", in: "# nothing\n , ,", wantErr: "no encryption key"},
		{name: "no index key", in: "k1:" + k1, wantErr: "no blind index key"},
		{name: "no encryption key", in: "index:i1:" + i1, wantErr: "no encryption key"},
		{name: "16-byte key", in: "k1:" + b64(16, 1) + ",index:i1:" + i1, wantErr: "16 bytes, want 32"},
		{name: "64-byte key", in: "k1:" + b64(64, 1) + ",index:i1:" + i1, wantErr: "64 bytes, want 32"},
		{name: "not base64", in: "k1:not*base64,index:i1:" + i1, wantErr: "not valid base64"},
		{name: "empty key", in: "k1:,index:i1:" + i1, wantErr: "empty key"},
		{name: "missing colon", in: "k1" + k1 + ",index:i1:" + i1, wantErr: "id:<base64 key>"},
		{name: "empty id", in: ":" + k1 + ",index:i1:" + i1, wantErr: "empty key id"},
		{name: "bad id", in: "k 1:" + k1 + ",index:i1:" + i1, wantErr: "may only contain"},
		{name: "reserved id", in: "index:" + k1 + ",index:i1:" + i1, wantErr: "reserved"},
		{name: "duplicate id", in: "k1:" + k1 + ",k1:" + k2 + ",index:i1:" + i1, wantErr: `duplicate key id "k1"`},
		{name: "duplicate id across purposes", in: "k1:" + k1 + ",index:k1:" + i1, wantErr: `duplicate key id "k1"`},
		{name: "same secret twice", in: "k1:" + k1 + ",k2:" + k1 + ",index:i1:" + i1, wantErr: "same secret"},
		// a key must never serve both encryption and indexing
		{name: "same secret for encryption and index", in: "k1:" + k1 + ",index:i1:" + k1, wantErr: "same secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, err := ParseKeyring(tt.in)
			checkKeyring(t, kr, err, tt.wantEnc, tt.wantIndex, tt.wantErr)
		})
	}
}

func checkKeyring(t *testing.T, kr *Keyring, err error, wantEnc, wantIndex []string, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("err = %v, want containing %q", err, wantErr)
		}
		if !errors.Is(err, ErrKeyConfig) {
			t.Fatalf("err %v does not wrap ErrKeyConfig", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(kr.KeyIDs(), wantEnc) || !slices.Equal(kr.IndexKeyIDs(), wantIndex) {
		t.Fatalf("keys %v / %v, want %v / %v", kr.KeyIDs(), kr.IndexKeyIDs(), wantEnc, wantIndex)
	}
	if kr.ActiveKeyID() != wantEnc[0] {
		t.Fatalf("active %s, want %s", kr.ActiveKeyID(), wantEnc[0])
	}
}

func TestReadKeyringFile(t *testing.T) {
	k1, k2, i1 := b64(32, 1), b64(32, 2), b64(32, 3)
	tests := []struct {
		name      string
		content   string
		wantEnc   []string
		wantIndex []string
		wantErr   string
	}{
		{name: "json", content: fmt.Sprintf(`{"encryption_keys":[{"id":"k2","key":%q},{"id":"k1","key":%q}],"index_keys":[{"id":"i1","key":%q}]}`, k2, k1, i1), wantEnc: []string{"k2", "k1"}, wantIndex: []string{"i1"}},
		{name: "json with leading whitespace", content: fmt.Sprintf("\n  {\"encryption_keys\":[{\"id\":\"k1\",\"key\":%q}],\"index_keys\":[{\"id\":\"i1\",\"key\":%q}]}\n", k1, i1), wantEnc: []string{"k1"}, wantIndex: []string{"i1"}},
		{name: "text lines", content: "k1:" + k1 + "\nindex:i1:" + i1 + "\n", wantEnc: []string{"k1"}, wantIndex: []string{"i1"}},
		{name: "json empty ring", content: `{"encryption_keys":[],"index_keys":[]}`, wantErr: "no encryption key"},
		// a typo must not silently drop keys
		{name: "json unknown field", content: fmt.Sprintf(`{"encryption_key":[{"id":"k1","key":%q}]}`, k1), wantErr: "unknown field"},
		{name: "json short key", content: fmt.Sprintf(`{"encryption_keys":[{"id":"k1","key":%q}],"index_keys":[{"id":"i1","key":%q}]}`, b64(31, 1), i1), wantErr: "31 bytes"},
		{name: "json trailing data", content: fmt.Sprintf(`{"encryption_keys":[{"id":"k1","key":%q}],"index_keys":[{"id":"i1","key":%q}]} {}`, k1, i1), wantErr: "trailing data"},
		{name: "json syntax", content: `{"encryption_keys":`, wantErr: "decode json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keys")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			kr, err := ReadKeyringFile(path)
			checkKeyring(t, kr, err, tt.wantEnc, tt.wantIndex, tt.wantErr)
		})
	}
	if _, err := ReadKeyringFile(filepath.Join(t.TempDir(), "missing")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestKeyringFromEnv(t *testing.T) {
	text := "k1:" + b64(32, 1) + ",index:i1:" + b64(32, 3)
	path := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{name: "inline", env: map[string]string{EnvKeys: text}},
		{name: "file", env: map[string]string{EnvKeysFile: path}},
		{name: "neither", env: nil, wantErr: "neither"},
		{name: "both", env: map[string]string{EnvKeys: text, EnvKeysFile: path}, wantErr: "not both"},
		// the error names the variable so an operator knows where to look
		{name: "inline invalid names the variable", env: map[string]string{EnvKeys: "k1:short"}, wantErr: EnvKeys},
		{name: "missing file", env: map[string]string{EnvKeysFile: path + ".nope"}, wantErr: "read key file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, err := KeyringFromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || kr.ActiveKeyID() != "k1" {
				t.Fatalf("keyring %v, err %v", kr, err)
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	k, err := GenerateKey("k2026")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseKey(k.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if parsed.ID != "k2026" || !bytes.Equal(parsed.Secret, k.Secret) {
		t.Fatal("Encode does not round-trip through ParseKey")
	}
	secret := base64.StdEncoding.EncodeToString(k.Secret)
	for _, s := range []string{k.String(), fmt.Sprint(k), fmt.Sprintf("%v %+v %#v", k, k, k)} {
		if strings.Contains(s, secret) {
			t.Fatalf("formatted key %q leaks the secret", s)
		}
	}

	random, err := GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	if len(random.ID) != 9 || !strings.HasPrefix(random.ID, "k") {
		t.Fatalf("generated id %q", random.ID)
	}
	if bytes.Equal(random.Secret, k.Secret) {
		t.Fatal("two generated keys are equal")
	}
	if _, err := GenerateKey("bad id"); !errors.Is(err, ErrKeyConfig) {
		t.Fatalf("bad id: %v", err)
	}

	// A generated set forms a keyring.
	idx, _ := GenerateKey("i1")
	if _, err := ParseKeyring(k.Encode() + ",index:" + idx.Encode()); err != nil {
		t.Fatal(err)
	}
}

func TestParseKeyList(t *testing.T) {
	k1, k2 := b64(32, 1), b64(32, 2)
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{name: "two keys", in: "a2:" + k2 + ",a1:" + k1, want: []string{"a2", "a1"}},
		{name: "empty", in: " ", wantErr: "no keys"},
		{name: "duplicate", in: "a1:" + k1 + ",a1:" + k2, wantErr: "duplicate"},
		{name: "short", in: "a1:" + b64(8, 1), wantErr: "8 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := ParseKeyList(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, k := range keys {
				ids = append(ids, k.ID)
			}
			if !slices.Equal(ids, tt.want) {
				t.Fatalf("ids %v, want %v", ids, tt.want)
			}
		})
	}
}

func TestNewKeyringCopiesAndValidates(t *testing.T) {
	tests := []struct {
		name    string
		enc     []Key
		index   []Key
		wantErr string
	}{
		{name: "short secret", enc: []Key{{ID: "k1", Secret: []byte("short")}}, index: []Key{testKey("i1", 3)}, wantErr: "5 bytes"},
		{name: "bad id", enc: []Key{testKey("k:1", 1)}, index: []Key{testKey("i1", 3)}, wantErr: "may only contain"},
		{name: "nil lists", wantErr: "no encryption key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewKeyring(tt.enc, tt.index)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrKeyConfig) {
				t.Fatalf("err = %v, want ErrKeyConfig containing %q", err, tt.wantErr)
			}
		})
	}

	// Changing the caller's slices afterwards does not change the keyring.
	idx := testKey("i1", 3)
	kr, err := NewKeyring([]Key{testKey("k1", 1)}, []Key{idx})
	if err != nil {
		t.Fatal(err)
	}
	before := kr.BlindIndex(ExactField("f"), "v")
	idx.Secret[0] ^= 0xff
	if kr.BlindIndex(ExactField("f"), "v") != before {
		t.Fatal("keyring shares the caller's index key bytes")
	}
}
