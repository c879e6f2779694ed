package platform

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.opentelemetry.io/otel/trace/noop"

	"github.com/helmdesk/helmdesk/pkg/crypto"
	"github.com/helmdesk/helmdesk/pkg/observability"
	"github.com/helmdesk/helmdesk/pkg/store"
	"github.com/helmdesk/helmdesk/services/session"
)

// Secrets are the keys a process needs: field encryption and blind indexes (session
// service) and the audit chain (gateway).
type Secrets struct {
	Keyring   *crypto.Keyring
	AuditKeys []crypto.Key
}

// loadSecrets reads the keys named by the configuration (inline or from files).
func loadSecrets(cfg Config) (Secrets, error) {
	var s Secrets
	var err error
	switch {
	case cfg.EncryptionKeys != "" && cfg.EncryptionKeysFile != "":
		return s, errors.New("set HELMDESK_ENCRYPTION_KEYS or HELMDESK_ENCRYPTION_KEYS_FILE, not both")
	case cfg.EncryptionKeys != "":
		s.Keyring, err = crypto.ParseKeyring(cfg.EncryptionKeys)
	case cfg.EncryptionKeysFile != "":
		s.Keyring, err = crypto.ReadKeyringFile(cfg.EncryptionKeysFile)
	default:
		err = errors.New("no encryption keys: set HELMDESK_ENCRYPTION_KEYS or HELMDESK_ENCRYPTION_KEYS_FILE (generate them with `helmdesk keys generate`)")
	}
	if err != nil {
		return s, fmt.Errorf("encryption keys: %w", err)
	}
	text := cfg.AuditKeys
	if cfg.AuditKeysFile != "" {
		if text != "" {
			return s, errors.New("set HELMDESK_AUDIT_KEYS or HELMDESK_AUDIT_KEYS_FILE, not both")
		}
		b, err := os.ReadFile(cfg.AuditKeysFile)
		if err != nil {
			return s, fmt.Errorf("read audit keys: %w", err)
		}
		text = string(b)
	}
	if text == "" {
		return s, errors.New("no audit chain key: set HELMDESK_AUDIT_KEYS or HELMDESK_AUDIT_KEYS_FILE (generate it with `helmdesk keys generate`)")
	}
	if s.AuditKeys, err = crypto.ParseKeyList(text); err != nil {
		return s, fmt.Errorf("audit keys: %w", err)
	}
	return s, nil
}

// GenerateKeys returns fresh settings for HELMDESK_ENCRYPTION_KEYS and HELMDESK_AUDIT_KEYS.
func GenerateKeys() (encryption, audit string, err error) {
	enc, err := crypto.GenerateKey("")
	if err != nil {
		return "", "", err
	}
	idx, err := crypto.GenerateKey("")
	if err != nil {
		return "", "", err
	}
	chain, err := crypto.GenerateKey("")
	if err != nil {
		return "", "", err
	}
	return enc.Encode() + ",index:" + idx.Encode(), chain.Encode(), nil
}

// EnsureDevKeys makes (once) and returns key files under dir for development mode,
// so a restarted `helmdesk dev` still reads what it encrypted.
func EnsureDevKeys(dir string) (encryptionFile, auditFile string, err error) {
	keyDir := filepath.Join(dir, "keys")
	encryptionFile, auditFile = filepath.Join(keyDir, "encryption.keys"), filepath.Join(keyDir, "audit.keys")
	if _, err := os.Stat(encryptionFile); err == nil {
		if _, err := os.Stat(auditFile); err == nil {
			return encryptionFile, auditFile, nil
		}
	}
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		return "", "", fmt.Errorf("create key folder: %w", err)
	}
	enc, audit, err := GenerateKeys()
	if err != nil {
		return "", "", err
	}
	header := "# development keys made by helmdesk dev; never use them in production\n"
	if err := os.WriteFile(encryptionFile, []byte(header+strings.ReplaceAll(enc, ",", "\n")+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("write development keys: %w", err)
	}
	if err := os.WriteFile(auditFile, []byte(header+audit+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("write development keys: %w", err)
	}
	return encryptionFile, auditFile, nil
}

// Reencrypt connects to MongoDB with the process configuration and rewrites data
// encrypted or indexed under keys that are no longer active (see session.Reencrypt).
func Reencrypt(ctx context.Context, cfg Config) (session.ReencryptResult, error) {
	sec, err := loadSecrets(cfg)
	if err != nil {
		return session.ReencryptResult{}, err
	}
	client, db, err := store.Connect(ctx, store.Config{URI: cfg.MongoURI, Database: cfg.MongoDatabase}, observability.NewMetrics(), noop.NewTracerProvider())
	if err != nil {
		return session.ReencryptResult{}, err
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	return session.Reencrypt(ctx, db, sec.Keyring)
}
