//go:build (linux || darwin) && (amd64 || arm64)

package auth

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/ebitengine/purego"
)

// sodiumNames are the file names libsodium is looked for under, in the dynamic
// linker's search path: Debian and Ubuntu's libsodium23, other sonames, macOS.
func sodiumNames() []string {
	if runtime.GOOS == "darwin" {
		return []string{"libsodium.dylib", "/opt/homebrew/lib/libsodium.dylib", "/usr/local/lib/libsodium.dylib"}
	}
	return []string{"libsodium.so.23", "libsodium.so.26", "libsodium.so"}
}

// openSodium loads libsodium with the dynamic linker (no cgo needed at build time).
func openSodium() (*sodiumLib, error) {
	var errs []error
	for _, name := range sodiumNames() {
		h, err := purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_LOCAL)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		lib := &sodiumLib{}
		var initFn func() int32
		var version func() string
		if err := register(h, map[string]any{"sodium_init": &initFn, "sodium_version_string": &version, "crypto_pwhash_argon2id": &lib.pwhash}); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if initFn() < 0 {
			return nil, fmt.Errorf("%s: sodium_init failed", name)
		}
		lib.version = version()
		return lib, nil
	}
	return nil, fmt.Errorf("libsodium not found (install libsodium23): %w", errors.Join(errs...))
}

// register binds each named symbol of h to its function pointer.
func register(h uintptr, fns map[string]any) error {
	for sym, fn := range fns {
		addr, err := purego.Dlsym(h, sym)
		if err != nil {
			return err
		}
		purego.RegisterFunc(fn, addr)
	}
	return nil
}
