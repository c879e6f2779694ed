// Package auth holds Helmdesk's credential primitives: argon2id password hashes in PHC
// string format, opaque bearer tokens (random, at least 128 bits, stored only as a
// SHA-256 digest), and the role model shared by the gateway's access checks.
package auth
