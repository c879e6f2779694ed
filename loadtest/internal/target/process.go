//go:build unix

package target

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is one helmdesk process the tool started and may restart.
type Process struct {
	Name     string
	args     []string
	env      []string // added to the tool's environment
	readyURL string   // GET returns 200 when ready; "" when readiness is the caller's business
	logPath  string
	bin      string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when the current run has exited
	starts int
	// onLine, when set, sees every line the process writes to stdout (devstack prints
	// its addresses there).
	onLine func(string)
}

// start runs the process once more (same arguments, environment and ports).
func (p *Process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.starts++
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log of %s: %w", p.Name, err)
	}
	fmt.Fprintf(logf, "\n=== loadtest: start %d of %s at %s: %s %s\n", p.starts, p.Name, time.Now().Format(time.RFC3339Nano), p.bin, strings.Join(p.args, " "))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stderr = logf
	cmd.SysProcAttr = procAttr()
	var stdout *os.File
	if p.onLine != nil {
		r, w, err := os.Pipe()
		if err != nil {
			logf.Close()
			return err
		}
		cmd.Stdout, stdout = w, r
		defer w.Close() // the child holds its own copy
	} else {
		cmd.Stdout = logf
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		if stdout != nil {
			stdout.Close()
		}
		return fmt.Errorf("start %s (%s): %w", p.Name, p.bin, err)
	}
	if stdout != nil {
		onLine := p.onLine
		go func() {
			defer stdout.Close()
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				fmt.Fprintln(logf, sc.Text())
				onLine(sc.Text())
			}
		}()
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(logf, "=== loadtest: %s exited at %s: %v\n", p.Name, time.Now().Format(time.RFC3339Nano), err)
		logf.Close()
		close(done)
	}()
	return nil
}

// PID returns the process id of the current run (0 when not running).
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil || isClosed(p.done) {
		return 0
	}
	return p.cmd.Process.Pid
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// signal sends sig to the process's whole group and waits up to wait for it to exit.
func (p *Process) signal(sig syscall.Signal, wait time.Duration) bool {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return true
	}
	if isClosed(done) {
		return true
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
		return true
	case <-time.After(wait):
		return false
	}
}

// kill SIGKILLs the process group and waits for the exit.
func (p *Process) kill() error {
	if !p.signal(syscall.SIGKILL, 10*time.Second) {
		return fmt.Errorf("%s did not exit 10s after SIGKILL", p.Name)
	}
	return nil
}

// stop asks the group to stop (SIGTERM), then kills it after grace.
func (p *Process) stop(grace time.Duration) {
	if !p.signal(syscall.SIGTERM, grace) {
		_ = p.kill()
	}
}

// waitReady polls the readiness URL until it answers 200, the process exits or the
// timeout passes.
func (p *Process) waitReady(ctx context.Context, timeout time.Duration) error {
	if p.readyURL == "" {
		return nil
	}
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.readyURL, nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited before it was ready (see %s)", p.Name, p.logPath)
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s not ready after %s at %s (see %s)", p.Name, timeout, p.readyURL, p.logPath)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// portTaken reports whether the process's log says a port it was to listen on was in
// use.
func (p *Process) portTaken() bool {
	b, err := os.ReadFile(p.logPath)
	return err == nil && bytes.Contains(b, []byte("address already in use"))
}

// RSS returns the resident memory of the process in bytes (0 when unknown).
func (p *Process) RSS() int64 {
	pid := p.PID()
	if pid == 0 {
		return 0
	}
	return RSSOf(pid)
}

// RSSOf reads a process's resident memory from /proc (Linux); 0 when unknown.
func RSSOf(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// CPU returns the CPU time (user + system) the process has used, or 0 when unknown.
func (p *Process) CPU() time.Duration {
	pid := p.PID()
	if pid == 0 {
		return 0
	}
	return CPUOf(pid)
}

// CPUOf reads a process's CPU time (user + system) from /proc (Linux, 100 ticks a
// second); 0 when unknown.
func CPUOf(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name may hold spaces: fields start after its closing parenthesis.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
