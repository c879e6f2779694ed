// Package crypto encrypts sensitive fields at rest (phone numbers, e-mail addresses,
// anything a customer would not want in a database dump) and computes blind indexes so
// that records can still be found by those fields.
//
// # Keys
//
// A [Keyring] holds two lists of 32-byte keys, each key named by a short id
// ([A-Za-z0-9._-], at most 64 characters):
//
//   - encryption keys (AES-256-GCM). The first is active and encrypts every new value;
//     the others only decrypt, so a key can be rotated without rewriting the data first.
//   - blind index keys (HMAC-SHA256). The first is active and computes the index value
//     stored with a record; lookups compute the value under every index key.
//
// A key is never used for both purposes and no key material may appear twice.
//
// The text format, used by the environment variable HELMDESK_ENCRYPTION_KEYS and by
// key files that are not JSON, is a list of entries separated by commas or newlines:
//
//	k2:<base64 key>            an encryption key (the first one listed is active)
//	k1:<base64 key>            an older encryption key, still decrypts
//	index:i1:<base64 key>      a blind index key (the first one listed is active)
//	# a comment line           ignored, as are blank entries
//
// For example HELMDESK_ENCRYPTION_KEYS="k2:AAA…=,k1:BBB…=,index:i1:CCC…=". Keys are
// standard base64 (padded or not; URL-safe is accepted too) of exactly 32 bytes, as
// printed by [GenerateKey] or `openssl rand -base64 32`.
//
// A JSON key file has the same content:
//
//	{
//	  "encryption_keys": [{"id": "k2", "key": "<base64>"}, {"id": "k1", "key": "<base64>"}],
//	  "index_keys":      [{"id": "i1", "key": "<base64>"}]
//	}
//
// HELMDESK_ENCRYPTION_KEYS_FILE names such a file (JSON when it starts with "{",
// otherwise the text format); [KeyringFromEnv] reads either variable, never both.
//
// # Ciphertexts
//
// [Keyring.Encrypt] returns a string
//
//	v1:<key id>:<base64url, unpadded(nonce(12) | ciphertext | tag(16))>
//
// sealed with a random 96-bit nonce. The version, the key id and the caller's additional
// authenticated data (AAD) are authenticated: the AAD binds a ciphertext to its record
// and field (use [FieldAAD]: "customers/<id>/phone"), so a ciphertext copied into another
// record or field does not decrypt. [Keyring.Decrypt] fails with [ErrMalformed],
// [ErrUnknownKey] or [ErrAuthentication] and never returns unauthenticated bytes.
// A random nonce allows about 2^32 encryptions per key; rotate well before that.
//
// Rotation: put a new key first, deploy, then run a re-encrypt job that rewrites every
// value for which [Keyring.NeedsReencrypt] is true using [Keyring.Reencrypt]. When no
// value needs re-encryption the old key can be removed.
//
// # Blind indexes
//
// [Keyring.BlindIndex] is HMAC-SHA256, under the active index key, of the field name and
// the normalised value, written "<index key id>:<base64url(mac)>". Store it next to the
// ciphertext and look records up with [Keyring.BlindIndexes], which returns the value
// under every index key (query with $in), so rows written before an index key rotation
// are still found. A re-index job recomputes the values for which
// [Keyring.NeedsReindex] is true (decrypting the field to do so); after it the old
// index key can be removed. The field name separates domains: the same phone number
// indexes differently as "customers.phone" and "agents.phone".
//
// Normalisation (see [Field]): phone numbers drop spaces, dashes, dots, slashes and
// parentheses and keep a leading "+" ("+86 138-0013-8000" and "+8613800138000" are
// equal); e-mail addresses are trimmed and lower-cased. Only the index is normalised;
// the encrypted value keeps what the user typed.
//
// A blind index reveals which records share a value (that is its purpose); it does not
// reveal the value without the index key. Keyrings are immutable and safe for
// concurrent use.
package crypto
