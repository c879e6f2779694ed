package auth

import (
	"fmt"
	"strings"
	"testing"
)

func TestPasswordRoundTrip(t *testing.T) {
	h, err := HashPassword("correct horse 1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=7168,t=5,p=1$") {
		t.Fatalf("unexpected hash format %q", h)
	}
	if err := VerifyPassword(h, "correct horse 1"); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if err := VerifyPassword(h, "correct horse 2"); err != ErrPasswordMismatch {
		t.Fatalf("wrong password: err = %v", err)
	}
	h2, _ := HashPassword("correct horse 1")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
	if NeedsRehash(h) {
		t.Fatal("a fresh hash needs rehashing")
	}
	salt := "c29tZXNhbHRzb21lc2FsdA"
	key := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	for _, bad := range []string{
		"", "$bcrypt$x", "$argon2id$v=19$m=x$a$b", "$argon2id$v=19$m=1,t=1,p=1$!!$b",
		"x$argon2id$v=19$m=7168,t=5,p=1$" + salt + "$" + key,   // junk before the scheme
		"$argon2id$v=16$m=7168,t=5,p=1$" + salt + "$" + key,    // argon2 1.0
		"$argon2id$v=19$m=4194304,t=1,p=1$" + salt + "$" + key, // 4 GiB: refused, not allocated
		"$argon2id$v=19$m=7168,t=1000,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=7168,t=0,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=7168,t=5,p=0$" + salt + "$" + key,
		"$argon2id$v=19$m=7168,t=5,p=1$" + salt + "$AAAA", // 3-byte hash
	} {
		if err := VerifyPassword(bad, "x"); err == nil || err == ErrPasswordMismatch {
			t.Fatalf("malformed hash %q: err = %v, want a format error", bad, err)
		}
		if !NeedsRehash(bad) {
			t.Fatalf("malformed hash %q does not need rehashing", bad)
		}
	}
}

// A hash made with the parameters used before (OWASP's 19 MiB / 2 passes) still
// verifies, and is flagged for an upgrade.
func TestPasswordOlderParameters(t *testing.T) {
	const old = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0etWWx3wz/vwTCwsi6MtO+yiVmVhuR/0+7g2/idgde8"
	if err := VerifyPassword(old, "correct horse 1"); err != nil {
		t.Fatalf("verify a 19 MiB hash: %v", err)
	}
	if err := VerifyPassword(old, "correct horse 2"); err != ErrPasswordMismatch {
		t.Fatalf("wrong password against a 19 MiB hash: err = %v", err)
	}
	if !NeedsRehash(old) {
		t.Fatal("a 19 MiB hash is not flagged for rehashing")
	}
}

// Many verifications at once all complete correctly with the hash slots bounded.
func TestPasswordConcurrent(t *testing.T) {
	h, err := HashPassword("correct horse 1")
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			pw := "correct horse 1"
			if i%2 == 1 {
				pw = "wrong horse 1"
			}
			err := VerifyPassword(h, pw)
			switch {
			case i%2 == 0 && err != nil:
				errs <- fmt.Errorf("right password: %v", err)
			case i%2 == 1 && err != ErrPasswordMismatch:
				errs <- fmt.Errorf("wrong password: err = %v", err)
			default:
				errs <- nil
			}
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestPasswordPolicy(t *testing.T) {
	tests := []struct {
		pw string
		ok bool
	}{
		{"short1", false},
		{"onlyletters", false},
		{"12345678", false},
		{"letters123", true},
		{"密码很长的密码abc!", true},
		{strings.Repeat("a1", 65), false},
	}
	for _, tt := range tests {
		if got := CheckPasswordPolicy(tt.pw) == ""; got != tt.ok {
			t.Errorf("CheckPasswordPolicy(%q) ok = %v, want %v", tt.pw, got, tt.ok)
		}
	}
}

func TestToken(t *testing.T) {
	plain, digest, err := NewToken(PrefixUserToken)
	if err != nil {
		t.Fatal(err)
	}
	if !WellFormed(plain, PrefixUserToken) || WellFormed(plain, PrefixCustomerToken) {
		t.Fatalf("WellFormed wrong for %q", plain)
	}
	if Digest(plain) != digest || strings.Contains(digest, plain) || len(digest) != 64 {
		t.Fatal("digest mismatch")
	}
	if WellFormed("hdu_short", PrefixUserToken) || WellFormed("hdu_"+strings.Repeat("*", 43), PrefixUserToken) {
		t.Fatal("malformed token accepted")
	}
}
