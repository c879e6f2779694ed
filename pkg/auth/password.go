package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters. OWASP's Password Storage Cheat Sheet lists five configurations
// that "provide an equal level of defense" and differ only in how they trade memory
// for passes (46 MiB/1, 19 MiB/2, 12 MiB/3, 9 MiB/4, 7 MiB/5, one lane each). We use
// 7 MiB with 5 passes: on the servers we measured it is the cheapest of the five
// (with Go's implementation, about 12 ms per hash with two running at once, against
// 17 ms for 19 MiB/2, because two hashes' memory stays within the processor's cache),
// and it bounds the memory a burst of sign-ins can take. Hashes made with other
// parameters still verify; NeedsRehash tells the caller to upgrade them on the next
// successful sign-in. hasher.go chooses who computes the hash (libsodium or Go).
const (
	argonMemory  = 7 * 1024
	argonTime    = 5
	argonThreads = 1
	argonKeyLen  = 32
	saltLen      = 16
)

// Bounds on the parameters VerifyPassword accepts from a stored hash, so that a
// corrupted or hostile hash cannot make one sign-in allocate gigabytes or spin.
const (
	maxArgonMemory  = 256 * 1024
	maxArgonTime    = 16
	maxArgonThreads = 8
	minArgonKeyLen  = 16
	maxArgonKeyLen  = 64
)

// hashSlots bounds how many hashes run at once to the number of processors. More at
// once would not finish sooner (argon2 is CPU and memory-bandwidth bound) but would
// multiply the memory held: a thousand parallel sign-ins would otherwise ask for
// 7 GiB. Waiters are served in arrival order.
var hashSlots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))

// Password length bounds, in characters. The upper bound stops hashing megabytes.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 128
)

// ErrPasswordMismatch is returned when a password does not match its hash.
var ErrPasswordMismatch = errors.New("password does not match")

// CheckPasswordPolicy returns a description of what is wrong with a new password, or "".
func CheckPasswordPolicy(pw string) string {
	n := utf8.RuneCountInString(pw)
	switch {
	case n < MinPasswordLen:
		return fmt.Sprintf("password must be at least %d characters", MinPasswordLen)
	case n > MaxPasswordLen:
		return fmt.Sprintf("password must be at most %d characters", MaxPasswordLen)
	}
	var letter, other bool
	for _, r := range pw {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			letter = true
		} else {
			other = true
		}
	}
	if !letter || !other {
		return "password must mix letters with digits or symbols"
	}
	return ""
}

// HashPassword returns an argon2id hash in PHC string format.
func HashPassword(pw string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("read salt: %w", err)
	}
	key := idKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// phc is a parsed argon2id hash.
type phc struct {
	mem, t     uint32
	p          uint8
	salt, want []byte
}

func parsePHC(hash string) (phc, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return phc{}, errors.New("unsupported password hash format")
	}
	var version int
	var h phc
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return phc{}, errors.New("unsupported argon2 version")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &h.mem, &h.t, &h.p); err != nil {
		return phc{}, fmt.Errorf("parse argon2 parameters: %w", err)
	}
	if h.t < 1 || h.t > maxArgonTime || h.p < 1 || h.p > maxArgonThreads || h.mem < 8*uint32(h.p) || h.mem > maxArgonMemory {
		return phc{}, fmt.Errorf("argon2 parameters m=%d,t=%d,p=%d are out of range", h.mem, h.t, h.p)
	}
	b64 := base64.RawStdEncoding
	var err error
	if h.salt, err = b64.DecodeString(parts[4]); err != nil {
		return phc{}, fmt.Errorf("decode salt: %w", err)
	}
	if h.want, err = b64.DecodeString(parts[5]); err != nil {
		return phc{}, fmt.Errorf("decode hash: %w", err)
	}
	if len(h.want) < minArgonKeyLen || len(h.want) > maxArgonKeyLen {
		return phc{}, fmt.Errorf("argon2 hash is %d bytes, want %d to %d", len(h.want), minArgonKeyLen, maxArgonKeyLen)
	}
	return h, nil
}

// VerifyPassword checks pw against a hash made by HashPassword, in constant time.
func VerifyPassword(hash, pw string) error {
	h, err := parsePHC(hash)
	if err != nil {
		return err
	}
	got := idKey([]byte(pw), h.salt, h.t, h.mem, h.p, uint32(len(h.want)))
	if subtle.ConstantTimeCompare(got, h.want) != 1 {
		return ErrPasswordMismatch
	}
	return nil
}

// NeedsRehash reports whether hash was made with other parameters than HashPassword
// uses now; after a successful VerifyPassword the caller should store a new hash.
func NeedsRehash(hash string) bool {
	h, err := parsePHC(hash)
	return err != nil || h.mem != argonMemory || h.t != argonTime || h.p != argonThreads ||
		len(h.want) != argonKeyLen || len(h.salt) != saltLen
}
