package auth

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

// requireSodium returns libsodium, skipping the test where it is not installed unless
// HELMDESK_REQUIRE_LIBSODIUM is set (as `make test` does), in which case it fails.
func requireSodium(t testing.TB) *sodiumLib {
	t.Helper()
	lib, err := loadSodium()
	if err != nil {
		if os.Getenv("HELMDESK_REQUIRE_LIBSODIUM") != "" {
			t.Fatalf("libsodium is required here: %v", err)
		}
		t.Skipf("libsodium is not installed: %v", err)
	}
	return lib
}

// useHasher selects a hasher for one test and restores automatic choice after it.
func useHasher(t testing.TB, name string) {
	t.Helper()
	if _, err := UseHasher(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = UseHasher(HasherAuto) })
}

func random(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// libsodium and Go compute the same argon2id over the parameters libsodium takes.
func TestLibsodiumAgreesWithGo(t *testing.T) {
	lib := requireSodium(t)
	passwords := [][]byte{nil, []byte(""), []byte("correct horse 1"), []byte(strings.Repeat("密码🔑", 32)), random(t, 4*MaxPasswordLen)}
	for _, pr := range []struct{ t, mem, n uint32 }{
		{1, 8, 16}, {2, 64, 32}, {3, 1024, 64}, {argonTime, argonMemory, argonKeyLen}, {1, 19456, 32},
	} {
		for i, pw := range passwords {
			salt := random(t, sodiumSaltLen)
			got, ok := lib.idKey(pw, salt, pr.t, pr.mem, pr.n)
			want := argon2.IDKey(pw, salt, pr.t, pr.mem, 1, pr.n)
			if !ok || !bytes.Equal(got, want) {
				t.Fatalf("t=%d m=%d n=%d password %d: libsodium %x (ok %v), Go %x", pr.t, pr.mem, pr.n, i, got, ok, want)
			}
		}
	}
}

// A hash made by either implementation verifies with the other.
func TestHashesVerifyAcrossHashers(t *testing.T) {
	requireSodium(t)
	for _, pair := range [][2]string{{HasherGo, HasherLibsodium}, {HasherLibsodium, HasherGo}} {
		useHasher(t, pair[0])
		h, err := HashPassword("correct horse 1")
		if err != nil {
			t.Fatal(err)
		}
		useHasher(t, pair[1])
		if err := VerifyPassword(h, "correct horse 1"); err != nil {
			t.Fatalf("hashed with %s, verified with %s: %v", pair[0], pair[1], err)
		}
		if err := VerifyPassword(h, "correct horse 2"); err != ErrPasswordMismatch {
			t.Fatalf("hashed with %s, wrong password verified with %s: %v", pair[0], pair[1], err)
		}
	}
	if got := HasherInUse(); !strings.HasPrefix(got, "go") {
		t.Fatalf("hasher in use after choosing go: %q", got)
	}
}

// Hashes libsodium cannot compute (two lanes, a salt of another length) are verified
// in Go while libsodium is in use.
func TestParametersLibsodiumLacksFallBackToGo(t *testing.T) {
	requireSodium(t)
	useHasher(t, HasherLibsodium)
	if got := HasherInUse(); !strings.HasPrefix(got, "libsodium ") {
		t.Fatalf("hasher in use: %q", got)
	}
	b64 := base64.RawStdEncoding
	for _, pr := range []struct {
		p       uint8
		saltLen int
	}{{2, 16}, {1, 8}, {1, 32}} {
		salt := random(t, pr.saltLen)
		key := argon2.IDKey([]byte("correct horse 1"), salt, 2, 64, pr.p, 32)
		h := fmt.Sprintf("$argon2id$v=19$m=64,t=2,p=%d$%s$%s", pr.p, b64.EncodeToString(salt), b64.EncodeToString(key))
		if err := VerifyPassword(h, "correct horse 1"); err != nil {
			t.Fatalf("p=%d, %d-byte salt: %v", pr.p, pr.saltLen, err)
		}
		if err := VerifyPassword(h, "correct horse 2"); err != ErrPasswordMismatch {
			t.Fatalf("p=%d, %d-byte salt, wrong password: %v", pr.p, pr.saltLen, err)
		}
	}
}

func TestUseHasherRejectsUnknownNames(t *testing.T) {
	t.Cleanup(func() { _, _ = UseHasher(HasherAuto) })
	if _, err := UseHasher("bcrypt"); err == nil || !strings.Contains(err.Error(), "auto, go or libsodium") {
		t.Fatalf("unknown hasher: %v", err)
	}
}

// BenchmarkHashPassword hashes with each implementation, as many at once as there
// are hash slots (the processors).
func BenchmarkHashPassword(b *testing.B) {
	for _, name := range []string{HasherGo, HasherLibsodium} {
		b.Run(name, func(b *testing.B) {
			if name == HasherLibsodium {
				requireSodium(b)
			}
			useHasher(b, name)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := HashPassword("correct horse 1"); err != nil {
						b.Error(err)
					}
				}
			})
		})
	}
}
