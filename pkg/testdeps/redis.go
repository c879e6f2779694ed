package testdeps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// redisReadyTimeout bounds the wait for a started redis-server to
	// answer PING.
	redisReadyTimeout = 10 * time.Second
	// redisPortAttempts is how many free ports are tried: another process
	// can take the port between choosing it and redis-server binding it.
	redisPortAttempts = 3
)

// Redis starts a real redis-server child process without persistence on a
// free port of 127.0.0.1, waits until it answers PING and returns its
// address. The process is killed at cleanup.
//
// It needs the redis-server binary in PATH (Debian package redis-server);
// without it the test fails.
func Redis(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("testdeps: redis-server not found (%v): run `make test`, which installs it, "+
			"or `apt-get install redis-server`", err)
	}

	var errs []error
	for range redisPortAttempts {
		addr, portTaken, err := startRedisServer(t, bin)
		if err == nil {
			return addr
		}
		errs = append(errs, err)
		if !portTaken {
			break
		}
	}
	t.Fatalf("testdeps: %v", errors.Join(errs...))
	return ""
}

// startRedisServer runs one redis-server and waits for it. On success the
// process is owned by t's cleanup; on error it has been stopped, and
// portTaken tells whether another process took the port first.
func startRedisServer(t testing.TB, bin string) (addr string, portTaken bool, err error) {
	port, err := freePort()
	if err != nil {
		return "", false, fmt.Errorf("find a free port: %w", err)
	}
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

	out := &syncBuffer{}
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", t.TempDir(),
		"--daemonize", "no",
	)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = childProcAttr()

	// The goroutine that starts the child stays on its OS thread until the
	// child exits: on Linux the parent-death signal fires when the thread
	// that forked the child ends, not the process.
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return "", false, fmt.Errorf("start %s: %w", bin, err)
	}
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}

	if err := waitForPing(addr, exited); err != nil {
		stop()
		output := out.String()
		return "", strings.Contains(output, "Address already in use"),
			fmt.Errorf("redis-server on %s: %w\noutput:\n%s", addr, err, output)
	}

	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("testdeps: redis-server on %s output:\n%s", addr, out.String())
		}
	})
	return addr, false, nil
}

// waitForPing polls addr with PING until it answers, the process exits or
// redisReadyTimeout passes. go-redis retries a failed dial after 100 ms by
// default, which would make up most of the start time; the loop polls
// faster.
func waitForPing(addr string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), redisReadyTimeout)
	defer cancel()

	c := redis.NewClient(&redis.Options{
		Addr:               addr,
		DialTimeout:        200 * time.Millisecond,
		DialerRetries:      1,
		DialerRetryBackoff: func(int) time.Duration { return time.Millisecond },
		MaxRetries:         -1,
	})
	defer c.Close()

	ticker := time.NewTicker(2 * time.Millisecond)
	defer ticker.Stop()
	for {
		err := c.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited before answering PING")
		case <-ctx.Done():
			return fmt.Errorf("no answer to PING within %v: %w", redisReadyTimeout, err)
		case <-ticker.C:
		}
	}
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// syncBuffer collects a child process's output; the process writes while the
// test may read.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
