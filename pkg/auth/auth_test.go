package auth

import (
	"strings"
	"testing"
)

func TestPasswordRoundTrip(t *testing.T) {
	h, err := HashPassword("correct horse 1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
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
	for _, bad := range []string{"", "$bcrypt$x", "$argon2id$v=19$m=x$a$b", "$argon2id$v=19$m=1,t=1,p=1$!!$b"} {
		if err := VerifyPassword(bad, "x"); err == nil {
			t.Fatalf("malformed hash %q accepted", bad)
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
