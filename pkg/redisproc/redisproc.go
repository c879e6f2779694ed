// Package redisproc runs a real redis-server as a child process on a free port of
// 127.0.0.1. Tests use it without persistence (pkg/testdeps); `helmdesk dev` uses it
// with an append-only file when redis-server is installed (pkg/devstack).
package redisproc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// readyTimeout bounds the wait for a started redis-server to answer PING (loading
	// a large append-only file counts).
	readyTimeout = 30 * time.Second
	// portAttempts is how many free ports are tried: another process can take the port
	// between choosing it and redis-server binding it.
	portAttempts = 3
)

// ErrNotInstalled is returned by Start when redis-server is not in PATH.
var ErrNotInstalled = errors.New("redis-server is not installed (Debian package redis-server)")

// Server is a running redis-server.
type Server struct {
	addr   string
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}

	stopOnce sync.Once
}

// Start runs redis-server with its working directory dir and the extra arguments
// (persistence settings, for example), waits until it answers PING and returns it.
// On Linux the server is killed if the calling process dies without stopping it.
func Start(dir string, args ...string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotInstalled, err)
	}
	var errs []error
	for range portAttempts {
		s, portTaken, err := start(bin, dir, args)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
		if !portTaken {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func start(bin, dir string, args []string) (s *Server, portTaken bool, err error) {
	port, err := freePort()
	if err != nil {
		return nil, false, fmt.Errorf("find a free port: %w", err)
	}
	s = &Server{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), out: &syncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, append([]string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--daemonize", "no",
	}, args...)...)
	s.cmd.Stdout = s.out
	s.cmd.Stderr = s.out
	s.cmd.SysProcAttr = childProcAttr()

	// The goroutine that starts the child stays on its OS thread until the child
	// exits: on Linux the parent-death signal fires when the thread that forked the
	// child ends, not the process.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := s.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	if err := <-started; err != nil {
		return nil, false, fmt.Errorf("start %s: %w", bin, err)
	}
	if err := waitForPing(s.addr, s.exited); err != nil {
		s.Kill()
		output := s.out.String()
		return nil, strings.Contains(output, "Address already in use"),
			fmt.Errorf("redis-server on %s: %w\noutput:\n%s", s.addr, err, output)
	}
	return s, false, nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr }

// Output is what the server wrote to stdout and stderr so far.
func (s *Server) Output() string { return s.out.String() }

// Kill stops the server at once (SIGKILL) and waits for it to exit.
func (s *Server) Kill() {
	s.stopOnce.Do(func() { _ = s.cmd.Process.Kill() })
	<-s.exited
}

// Stop asks the server to shut down (SIGTERM: it flushes its append-only file) and
// waits up to timeout before killing it. It reports an error when it had to kill.
func (s *Server) Stop(timeout time.Duration) error {
	var err error
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(timeout):
			_ = s.cmd.Process.Kill()
			<-s.exited
			err = fmt.Errorf("redis-server on %s did not shut down within %v and was killed", s.addr, timeout)
		}
	})
	<-s.exited
	return err
}

// waitForPing polls addr with PING until it answers +PONG (not -LOADING while it
// reads its append-only file), the process exits or readyTimeout passes. It speaks
// RESP directly: a client library would log every refused dial while the server
// starts.
func waitForPing(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	var last error
	for {
		if last = ping(addr); last == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited before answering PING")
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within %v: %w", readyTimeout, last)
		}
	}
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if reply != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(reply))
	}
	return nil
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

// syncBuffer collects the child's output; it writes while others may read.
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
