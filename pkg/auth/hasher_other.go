//go:build !((linux || darwin) && (amd64 || arm64))

package auth

import "errors"

func openSodium() (*sodiumLib, error) {
	return nil, errors.New("libsodium is not supported on this platform")
}
