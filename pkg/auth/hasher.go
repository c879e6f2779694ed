package auth

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/crypto/argon2"
)

// Password hashers. Both compute the same argon2id (RFC 9106), so hashes made by one
// verify with the other and the choice can change at any time.
const (
	// HasherAuto uses libsodium when the system has it, else Go.
	HasherAuto = "auto"
	// HasherGo uses golang.org/x/crypto/argon2 (SSE4.1 on amd64).
	HasherGo = "go"
	// HasherLibsodium uses the system's libsodium and fails to start without it. Its
	// argon2id picks AVX2 or AVX-512 at run time and takes 10-12 ms per hash where Go
	// takes 17-21 ms on the same core (see docs/benchmarks.md).
	HasherLibsodium = "libsodium"
)

// sodiumLib is a loaded libsodium.
type sodiumLib struct {
	version string
	// crypto_pwhash_argon2id(out, outlen, passwd, passwdlen, salt, opslimit, memlimit, alg)
	pwhash func(out *byte, outLen uint64, pw *byte, pwLen uint64, salt *byte, ops uint64, mem uintptr, alg int32) int32
}

// libsodium's limits for crypto_pwhash_argon2id with one lane; other hashes use Go.
const (
	sodiumSaltLen   = 16 // crypto_pwhash_argon2id_SALTBYTES
	sodiumMinKeyLen = 16 // crypto_pwhash_argon2id_BYTES_MIN
	sodiumMinMemKiB = 8  // crypto_pwhash_argon2id_MEMLIMIT_MIN / 1024
	sodiumArgon2id  = 2  // crypto_pwhash_argon2id_ALG_ARGON2ID13
)

var (
	hasherOnce sync.Once
	sodium     atomic.Pointer[sodiumLib] // nil: hash in Go

	// loadSodium loads libsodium once; the result is kept, failure included.
	loadSodium = sync.OnceValues(openSodium)
)

// CheckHasher reports whether name is a hasher UseHasher accepts.
func CheckHasher(name string) error {
	switch name {
	case HasherAuto, HasherGo, HasherLibsodium:
		return nil
	}
	return fmt.Errorf("unknown password hasher %q: use auto, go or libsodium", name)
}

// UseHasher selects the argon2id implementation (HasherAuto, HasherGo or
// HasherLibsodium) and returns a description of the one in effect. Without a call,
// the first hash chooses as HasherAuto does; so does an empty name.
func UseHasher(name string) (string, error) {
	if name == "" {
		name = HasherAuto
	}
	if err := CheckHasher(name); err != nil {
		return "", err
	}
	hasherOnce.Do(func() {})
	switch name {
	case HasherGo:
		sodium.Store(nil)
	case HasherAuto:
		useAuto()
	case HasherLibsodium:
		lib, err := loadSodium()
		if err != nil {
			return "", fmt.Errorf("password hasher libsodium: %w", err)
		}
		sodium.Store(lib)
	}
	return HasherInUse(), nil
}

// HasherInUse describes the implementation that hashes passwords now.
func HasherInUse() string {
	hasherOnce.Do(useAuto)
	if lib := sodium.Load(); lib != nil {
		return "libsodium " + lib.version
	}
	return "go"
}

func useAuto() {
	lib, _ := loadSodium()
	sodium.Store(lib)
}

// idKey is argon2.IDKey, computed by libsodium when it is in use and supports the
// parameters (one lane, a 16-byte salt), else by Go.
func idKey(pw, salt []byte, t, mem uint32, p uint8, n uint32) []byte {
	hasherOnce.Do(useAuto)
	hashSlots <- struct{}{}
	defer func() { <-hashSlots }()
	if lib := sodium.Load(); lib != nil && p == 1 && len(salt) == sodiumSaltLen && n >= sodiumMinKeyLen && t >= 1 && mem >= sodiumMinMemKiB {
		if key, ok := lib.idKey(pw, salt, t, mem, n); ok {
			return key
		}
	}
	return argon2.IDKey(pw, salt, t, mem, p, n)
}

// idKey runs crypto_pwhash_argon2id. It reports false when libsodium refuses (it
// cannot allocate the memory, for one); the caller then hashes in Go.
func (l *sodiumLib) idKey(pw, salt []byte, t, mem, n uint32) ([]byte, bool) {
	out := make([]byte, n)
	// An empty password is passed as a null pointer with length 0, which argon2 accepts.
	rc := l.pwhash(&out[0], uint64(n), unsafe.SliceData(pw), uint64(len(pw)), &salt[0], uint64(t), uintptr(mem)*1024, sodiumArgon2id)
	runtime.KeepAlive(pw) // C reads them until the call returns
	runtime.KeepAlive(salt)
	return out, rc == 0
}
