package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/helmdesk/helmdesk/pkg/app"
	"github.com/helmdesk/helmdesk/pkg/fault"
	"github.com/helmdesk/helmdesk/pkg/logkey"
)

const errorDomain = "helmdesk.io"

// NewServer returns a gRPC server with tracing, metrics, recovery and error mapping.
// creds may be nil for plaintext.
func NewServer(rt *app.Runtime, creds credentials.TransportCredentials) *grpc.Server {
	opts := []grpc.ServerOption{
		grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(rt.Tracer), otelgrpc.WithPropagators(propagator()))),
		grpc.ChainUnaryInterceptor(serverInterceptor(rt)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	return grpc.NewServer(opts...)
}

func serverInterceptor(rt *app.Runtime) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				rt.Logger.ErrorContext(ctx, "grpc handler panicked", slog.String(logkey.Method, info.FullMethod), slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
				err = status.Error(codes.Internal, "internal error")
			}
			rt.Metrics.GRPCServerDuration.WithLabelValues(info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
		}()
		resp, err = handler(ctx, req)
		if err != nil {
			fe := fault.As(err)
			if fe.Kind == fault.Internal || fe.Kind == fault.Unavailable {
				rt.Logger.ErrorContext(ctx, "grpc call failed", slog.String(logkey.Method, info.FullMethod), slog.Any(logkey.Error, err))
			}
			err = ToStatus(err)
		}
		return resp, err
	}
}

// Dial returns a client connection to target with tracing and metrics. creds may be nil
// for plaintext.
func Dial(rt *app.Runtime, target string, creds credentials.TransportCredentials) (*grpc.ClientConn, error) {
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(creds),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(rt.Tracer), otelgrpc.WithPropagators(propagator()))),
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			start := time.Now()
			err := invoker(ctx, method, req, reply, cc, opts...)
			rt.Metrics.GRPCClientDuration.WithLabelValues(method, status.Code(err).String()).Observe(time.Since(start).Seconds())
			return FromStatus(err)
		}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
	)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", target, err)
	}
	return conn, nil
}

var kindToCode = map[fault.Kind]codes.Code{
	fault.Internal:         codes.Internal,
	fault.InvalidArgument:  codes.InvalidArgument,
	fault.Unauthenticated:  codes.Unauthenticated,
	fault.PermissionDenied: codes.PermissionDenied,
	fault.NotFound:         codes.NotFound,
	fault.Conflict:         codes.AlreadyExists,
	fault.TooLarge:         codes.ResourceExhausted,
	fault.RateLimited:      codes.ResourceExhausted,
	fault.Unavailable:      codes.Unavailable,
}

// ToStatus converts an error to a gRPC status error carrying the fault code.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !isFault(err) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, "canceled")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	fe := fault.As(err)
	st := status.New(kindToCode[fe.Kind], fe.Message)
	md := map[string]string{"kind": fe.Kind.String()}
	if fe.Field != "" {
		md["field"] = fe.Field
	}
	if withDetails, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: fe.Code, Domain: errorDomain, Metadata: md}); derr == nil {
		st = withDetails
	}
	return st.Err()
}

func isFault(err error) bool {
	var fe *fault.Error
	return errors.As(err, &fe)
}

// FromStatus converts a gRPC status error back into a fault error, so that callers
// across the network see the same typed error the service returned.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == errorDomain {
			kind := fault.Internal
			for k, c := range kindToCode {
				if c == st.Code() && k.String() == info.GetMetadata()["kind"] {
					kind = k
				}
			}
			return &fault.Error{Kind: kind, Code: info.GetReason(), Message: st.Message(), Field: info.GetMetadata()["field"]}
		}
	}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded:
		return &fault.Error{Kind: fault.Unavailable, Code: "unavailable", Message: "a backend service is unavailable, try again", Err: err}
	case codes.Canceled:
		return context.Canceled
	}
	return err
}

// Serve runs a gRPC server on ln until ctx is done, then stops it gracefully.
func Serve(ctx context.Context, srv *grpc.Server, ln net.Listener, logger *slog.Logger) error {
	errc := make(chan error, 1)
	go func() {
		logger.Info("grpc server listening", slog.String(logkey.Addr, ln.Addr().String()))
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve grpc: %w", err)
	case <-ctx.Done():
	}
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		srv.Stop()
	}
	<-errc
	return nil
}
