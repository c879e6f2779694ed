package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/helmdesk/helmdesk/pkg/logkey"
)

// HTTPServer serves an http.Handler on a listener until ctx ends, then shuts down
// gracefully: it stops accepting, calls OnShutdown hooks (to close hijacked
// connections such as WebSockets), and waits up to ShutdownTimeout for requests.
type HTTPServer struct {
	Name            string
	Listener        net.Listener
	Handler         http.Handler
	TLSConfig       *tls.Config
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
	OnShutdown      []func()
}

// Listen opens a TCP listener, wrapping the error with the address.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// Run serves until ctx is done.
func (s *HTTPServer) Run(ctx context.Context) error {
	srv := &http.Server{
		Handler:           s.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		TLSConfig:         s.TLSConfig,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		// Handshake failures of clients (old TLS versions, scanners) are not our errors.
		ErrorLog: slog.NewLogLogger(s.Logger.Handler(), slog.LevelDebug),
	}
	for _, f := range s.OnShutdown {
		srv.RegisterOnShutdown(f)
	}
	errc := make(chan error, 1)
	go func() {
		s.Logger.Info("http server listening", slog.String(logkey.Component, s.Name), slog.String(logkey.Addr, s.Listener.Addr().String()))
		var err error
		if s.TLSConfig != nil {
			err = srv.ServeTLS(s.Listener, "", "")
		} else {
			err = srv.Serve(s.Listener)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s http: %w", s.Name, err)
	case <-ctx.Done():
	}
	timeout := s.ShutdownTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	if err != nil {
		return fmt.Errorf("shut down %s http: %w", s.Name, err)
	}
	return nil
}
