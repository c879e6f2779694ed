// Command helmdesk is Helmdesk's single binary.
//
//	helmdesk serve [service...]   run services against external MongoDB, Kafka and Redis
//	helmdesk dev                  run every service on embedded dependencies
//	helmdesk devstack             run only the embedded dependencies (for several serve processes)
//	helmdesk config               print the reference of every setting (Markdown)
//	helmdesk version              print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	_ "time/tzdata" // routing rules may use any time zone, also in minimal images

	"github.com/helmdesk/helmdesk/pkg/config"
	"github.com/helmdesk/helmdesk/pkg/devstack"
	"github.com/helmdesk/helmdesk/pkg/observability"
	"github.com/helmdesk/helmdesk/pkg/tlsconfig"
	"github.com/helmdesk/helmdesk/services/gateway"
	"github.com/helmdesk/helmdesk/services/platform"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "helmdesk:", err)
		}
		os.Exit(2)
	}
}

const usage = `helmdesk — customer-service platform

Usage:
  helmdesk serve [gateway|session|routing|all]...   run services on external dependencies
  helmdesk dev [flags]                              run everything on embedded dependencies
  helmdesk devstack [flags]                         run only the embedded dependencies and print
                                                    their addresses as environment variables
  helmdesk config                                   print every setting as Markdown
  helmdesk keys generate                            print new encryption and audit keys
  helmdesk keys reencrypt [flags]                   after a key rotation, rewrite data under the active keys
  helmdesk permissions                              print the permission matrix (Markdown)
  helmdesk version                                  print the version

Every setting is a flag and an environment variable; see 'helmdesk config'.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr, getenv)
	case "dev":
		return dev(ctx, args[1:], stderr, getenv)
	case "devstack":
		return devStackOnly(ctx, args[1:], stdout, stderr, getenv)
	case "config":
		set, _, _ := settings()
		fmt.Fprint(stdout, set.Markdown())
		return nil
	case "permissions":
		fmt.Fprint(stdout, gateway.PermissionsMarkdown())
		return nil
	case "keys":
		if len(args) >= 2 && args[1] == "reencrypt" {
			_, cfg, _, err := parse(args[2:], stderr, getenv)
			if err != nil {
				return err
			}
			res, err := platform.Reencrypt(ctx, *cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "re-encrypted %d fields and %d blind indexes in %d documents\n", res.Fields, res.Indexes, res.Documents)
			return nil
		}
		if len(args) != 2 || args[1] != "generate" {
			return errors.New("usage: helmdesk keys generate | helmdesk keys reencrypt [flags]")
		}
		enc, audit, err := platform.GenerateKeys()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "HELMDESK_ENCRYPTION_KEYS=%s\nHELMDESK_AUDIT_KEYS=%s\n", enc, audit)
		return nil
	case "version":
		fmt.Fprintln(stdout, version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

// settings declares every setting of the binary in one set: the reference page is
// generated from it.
func settings() (*config.Set, *platform.Config, *devConfig) {
	set := config.NewSet("helmdesk")
	var cfg platform.Config
	cfg.Declare(set)
	var dc devConfig
	dc.declare(set)
	return set, &cfg, &dc
}

type devConfig struct {
	dataDir string
	tls     bool
	redis   string
}

func (d *devConfig) declare(s *config.Set) {
	s.Group("Development mode (helmdesk dev)")
	s.String(&d.dataDir, "data-dir", "HELMDESK_DATA_DIR", ".helmdesk", "Folder holding the embedded MongoDB (FerretDB/SQLite), Kafka (kfake) and Redis data; keep it to keep every conversation across restarts.")
	s.String(&d.redis, "redis", "HELMDESK_DEV_REDIS", devstack.RedisAuto, "Redis of the development stack: auto (redis-server when installed, else the embedded miniredis), server (require redis-server) or embedded (miniredis, for a few hundred live conversations).")
	s.Bool(&d.tls, "tls", "HELMDESK_DEV_TLS", false, "Serve HTTPS with a self-signed certificate for localhost (kept in the data folder).")
}

func parse(args []string, stderr io.Writer, getenv func(string) string) ([]string, *platform.Config, *devConfig, error) {
	set, cfg, dc := settings()
	rest, err := set.Parse(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		set.FlagSet().SetOutput(stderr)
		set.FlagSet().PrintDefaults()
		return nil, nil, nil, err
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("configuration: %w", err)
	}
	return rest, cfg, dc, nil
}

func serve(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) error {
	services, cfg, _, err := parse(args, stderr, getenv)
	if err != nil {
		return err
	}
	p, err := platform.New(ctx, *cfg, services, stderr, getenv)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

func dev(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) error {
	rest, cfg, dc, err := parse(args, stderr, getenv)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("dev runs every service; unexpected arguments %v", rest)
	}
	logger, err := observability.NewLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	if getenv("GOGC") == "" {
		// One process hosts every service and their databases: trade memory (plenty on
		// a developer's machine) for a quarter of the garbage collector's CPU.
		debug.SetGCPercent(400)
	}
	stack, err := devstack.Start(ctx, devstack.Options{DataDir: dc.dataDir, Logger: logger, Redis: dc.redis})
	if err != nil {
		return err
	}
	defer stack.Close()
	cfg.MongoURI = stack.MongoURI
	cfg.KafkaBrokers = stack.KafkaBrokers
	cfg.RedisAddr = stack.RedisAddr
	cfg.RedisPassword = ""
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.SessionAddr, cfg.RoutingAddr = "", ""
	cfg.InboundPartitions = platform.InboundPartitions(cfg.InboundPartitions, true)
	if cfg.EncryptionKeys == "" && cfg.EncryptionKeysFile == "" && cfg.AuditKeys == "" && cfg.AuditKeysFile == "" {
		if cfg.EncryptionKeysFile, cfg.AuditKeysFile, err = platform.EnsureDevKeys(dc.dataDir); err != nil {
			return err
		}
	}
	if dc.tls && cfg.TLSCert == "" {
		if cfg.TLSCert, cfg.TLSKey, err = tlsconfig.SelfSigned(nil, filepath.Join(dc.dataDir, "tls")); err != nil {
			return err
		}
	}
	p, err := platform.New(ctx, *cfg, nil, stderr, getenv)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "\n  Helmdesk is running at %s://%s  (data in %s; Ctrl-C to stop)\n\n", p.Scheme(), displayAddr(p.HTTPAddr()), dc.dataDir)
	return p.Run(ctx)
}

func displayAddr(addr string) string {
	if len(addr) > 0 && addr[0] == '[' {
		// [::]:8080 → localhost:8080
		for i := len(addr) - 1; i >= 0; i-- {
			if addr[i] == ':' {
				return "localhost" + addr[i:]
			}
		}
	}
	if len(addr) > 8 && addr[:8] == "0.0.0.0:" {
		return "localhost" + addr[7:]
	}
	return addr
}

// devStackOnly runs the embedded dependencies alone, so that several `helmdesk serve`
// processes can share them (the load tester's chaos mode kills and restarts those).
// It prints the settings that point a process at them, one VAR=value per line.
func devStackOnly(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	_, cfg, dc, err := parse(args, stderr, getenv)
	if err != nil {
		return err
	}
	logger, err := observability.NewLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	stack, err := devstack.Start(ctx, devstack.Options{DataDir: dc.dataDir, Logger: logger, Redis: dc.redis})
	if err != nil {
		return err
	}
	defer stack.Close()
	encFile, auditFile, err := platform.EnsureDevKeys(dc.dataDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "HELMDESK_MONGO_URI=%s\nHELMDESK_KAFKA_BROKERS=%s\nHELMDESK_REDIS_ADDR=%s\nHELMDESK_ENCRYPTION_KEYS_FILE=%s\nHELMDESK_AUDIT_KEYS_FILE=%s\n",
		stack.MongoURI, strings.Join(stack.KafkaBrokers, ","), stack.RedisAddr, encFile, auditFile)
	if f, ok := stdout.(interface{ Sync() error }); ok {
		_ = f.Sync()
	}
	<-ctx.Done()
	return nil
}
