//go:build unix

package target

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Layout is how the target's services are spread over processes.
type Layout string

// Layouts.
const (
	// Dev is one `helmdesk dev` process.
	Dev Layout = "dev"
	// Split is `helmdesk devstack` + `helmdesk serve session routing` + `helmdesk serve gateway`.
	Split Layout = "split"
)

// Process names, as -chaos takes them.
const (
	ProcDev      = "dev"
	ProcDevstack = "devstack"
	ProcSession  = "session"
	ProcGateway  = "gateway"
)

// Options configures [Start].
type Options struct {
	Binary string // the helmdesk binary
	Layout Layout
	// Dir receives data/ (the embedded dependencies' data) and logs/ (one file per
	// process). Empty means a new temporary folder, removed by Stop except its logs.
	Dir string
	// ReadyTimeout bounds each wait for readiness (default 90s).
	ReadyTimeout time.Duration
	// Logf receives status lines (nil: none).
	Logf func(format string, args ...any)
}

// Cluster is a running target the tool started.
type Cluster struct {
	URL    string // the gateway's base URL
	Dir    string
	LogDir string

	opts    Options
	tempDir bool
	procs   []*Process // in start order
	stopped sync.Once
}

// ChaosEvent is one kill and restart.
type ChaosEvent struct {
	Process   string
	KilledAt  time.Time // SIGKILL sent
	StartedAt time.Time // started again
	ReadyAt   time.Time // ready again (zero when it never was)
	Err       error
}

// Downtime is the time from the kill to readiness.
func (e ChaosEvent) Downtime() time.Duration {
	if e.ReadyAt.IsZero() {
		return 0
	}
	return e.ReadyAt.Sub(e.KilledAt)
}

// Start starts the layout and returns once every process is ready. On failure,
// whatever was started is stopped.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 90 * time.Second
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	bin, err := filepath.Abs(opts.Binary)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		return nil, fmt.Errorf("helmdesk binary %s not found (build it with `make build`): %v", opts.Binary, err)
	}
	opts.Binary = bin
	c := &Cluster{opts: opts}
	if opts.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "helmdesk-loadtest-"); err != nil {
			return nil, err
		}
		c.tempDir = true
	} else {
		c.Dir = opts.Dir
	}
	c.LogDir = filepath.Join(c.Dir, "logs")
	if err := os.MkdirAll(c.LogDir, 0o755); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	opts.Logf("starting helmdesk (%s layout) from %s; process logs in %s", opts.Layout, bin, c.LogDir)
	switch opts.Layout {
	case Dev:
		err = c.startDev(ctx)
	case Split:
		err = c.startSplit(ctx)
	default:
		err = fmt.Errorf("unknown layout %q (dev or split)", opts.Layout)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func freePorts(n int) ([]int, error) {
	// Hold all listeners until every port is chosen, so they differ.
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (c *Cluster) newProcess(name string, args, env []string, readyURL string) *Process {
	p := &Process{Name: name, args: args, env: append([]string{"HELMDESK_INSTANCE=" + name}, env...), readyURL: readyURL,
		logPath: filepath.Join(c.LogDir, name+".log"), bin: c.opts.Binary}
	c.procs = append(c.procs, p)
	return p
}

func (c *Cluster) run(ctx context.Context, p *Process) error {
	if err := p.start(); err != nil {
		return err
	}
	if err := p.waitReady(ctx, c.opts.ReadyTimeout); err != nil {
		return err
	}
	c.opts.Logf("%s ready (pid %d)", p.Name, p.PID())
	return nil
}

func (c *Cluster) startDev(ctx context.Context) error {
	return c.runFresh(ctx, func() (*Process, error) {
		addr, err := c.pickGatewayAddr()
		if err != nil {
			return nil, err
		}
		return c.newProcess(ProcDev, []string{"dev"}, []string{
			"HELMDESK_HTTP_ADDR=" + addr,
			"HELMDESK_DATA_DIR=" + filepath.Join(c.Dir, "data"),
		}, c.URL+"/readyz"), nil
	})
}

// pickGatewayAddr chooses a free loopback address for the gateway's HTTP server and
// makes it the cluster's URL.
func (c *Cluster) pickGatewayAddr() (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	c.URL = "http://" + addr
	return addr, nil
}

// runFresh starts the process mk makes and waits until it is ready. A port is chosen
// free and bound only later by the process; in between another process, or the kernel
// handing out an ephemeral port, can take it. When that is why the start failed, mk
// makes the process again on fresh ports (three attempts in all).
func (c *Cluster) runFresh(ctx context.Context, mk func() (*Process, error)) error {
	for attempt := 1; ; attempt++ {
		p, err := mk()
		if err != nil {
			return err
		}
		err = c.run(ctx, p)
		if err == nil || attempt == 3 || !p.portTaken() {
			return err
		}
		c.procs = slices.DeleteFunc(c.procs, func(q *Process) bool { return q == p })
		c.opts.Logf("%s: a port chosen for it was taken meanwhile; starting it again on fresh ports", p.Name)
	}
}

// depsVars are the settings devstack must print before the services can start.
var depsVars = []string{"HELMDESK_MONGO_URI", "HELMDESK_KAFKA_BROKERS", "HELMDESK_REDIS_ADDR"}

func (c *Cluster) startSplit(ctx context.Context) error {

	// The embedded dependencies, whose settings come on stdout as HELMDESK_*=value
	// lines: the addresses below, and whatever else the version prints (for
	// example the files holding the encryption keys); all are passed on.
	var mu sync.Mutex
	var order []string
	deps := map[string]string{}
	got := make(chan struct{})
	ds := c.newProcess(ProcDevstack, []string{"devstack"}, []string{"HELMDESK_DATA_DIR=" + filepath.Join(c.Dir, "data")}, "")
	ds.onLine = func(line string) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || !strings.HasPrefix(k, "HELMDESK_") || strings.ContainsAny(k, " \t{\"") {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if _, seen := deps[k]; seen {
			return
		}
		deps[k] = v
		order = append(order, k)
		for _, want := range depsVars {
			if _, ok := deps[want]; !ok {
				return
			}
		}
		if !isClosed(got) {
			close(got)
		}
	}
	if err := ds.start(); err != nil {
		return err
	}
	select {
	case <-got:
	case <-ds.done:
		return fmt.Errorf("devstack exited before printing its addresses (see %s)", ds.logPath)
	case <-time.After(c.opts.ReadyTimeout):
		return fmt.Errorf("devstack did not print its addresses within %s (see %s)", c.opts.ReadyTimeout, ds.logPath)
	case <-ctx.Done():
		return ctx.Err()
	}
	// The lines are printed together; give the ones after the addresses a moment.
	time.Sleep(300 * time.Millisecond)
	var env []string
	mu.Lock()
	for _, k := range order {
		env = append(env, k+"="+deps[k])
	}
	mu.Unlock()
	c.opts.Logf("devstack ready (pid %d): %s", ds.PID(), strings.Join(env, " "))

	var grpcAddr string
	err := c.runFresh(ctx, func() (*Process, error) {
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		grpcAddr = "127.0.0.1:" + strconv.Itoa(ports[0])
		opsAddr := "127.0.0.1:" + strconv.Itoa(ports[1])
		return c.newProcess(ProcSession, []string{"serve", "session", "routing"},
			append(slices.Clone(env), "HELMDESK_GRPC_ADDR="+grpcAddr, "HELMDESK_OPS_ADDR="+opsAddr), "http://"+opsAddr+"/readyz"), nil
	})
	if err != nil {
		return err
	}
	return c.runFresh(ctx, func() (*Process, error) {
		httpAddr, err := c.pickGatewayAddr()
		if err != nil {
			return nil, err
		}
		return c.newProcess(ProcGateway, []string{"serve", "gateway"},
			append(slices.Clone(env), "HELMDESK_SESSION_ADDR="+grpcAddr, "HELMDESK_ROUTING_ADDR="+grpcAddr,
				"HELMDESK_HTTP_ADDR="+httpAddr, "HELMDESK_OPS_ADDR="), c.URL+"/readyz"), nil
	})
}

// Process returns the process called name, or nil.
func (c *Cluster) Process(name string) *Process {
	for _, p := range c.procs {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Processes returns every process, in start order.
func (c *Cluster) Processes() []*Process { return slices.Clone(c.procs) }

// Killable lists the processes chaos may kill in a layout.
func Killable(l Layout) []string {
	if l == Dev {
		return []string{ProcDev}
	}
	return []string{ProcSession, ProcGateway}
}

// Chaos SIGKILLs the named process's group, waits down, starts it again with the
// same environment and ports, and waits until it is ready.
func (c *Cluster) Chaos(ctx context.Context, name string, down time.Duration) ChaosEvent {
	ev := ChaosEvent{Process: name}
	p := c.Process(name)
	if p == nil || !slices.Contains(Killable(c.opts.Layout), name) {
		ev.Err = fmt.Errorf("no process %q to kill in the %s layout (choose from %v)", name, c.opts.Layout, Killable(c.opts.Layout))
		return ev
	}
	ev.KilledAt = time.Now()
	if ev.Err = p.kill(); ev.Err != nil {
		return ev
	}
	select {
	case <-time.After(down):
	case <-ctx.Done():
	}
	ev.StartedAt = time.Now()
	if ev.Err = p.start(); ev.Err != nil {
		return ev
	}
	// Restarting must not be cut short by the run ending: a half-started target
	// would leave clients nothing to resume against.
	if ev.Err = p.waitReady(context.WithoutCancel(ctx), c.opts.ReadyTimeout); ev.Err == nil {
		ev.ReadyAt = time.Now()
	}
	return ev
}

// Stop stops every process (SIGTERM to its group, SIGKILL after a grace period),
// last started first, and removes the data of a temporary folder (logs are kept).
// It is safe to call more than once.
func (c *Cluster) Stop() {
	c.stopped.Do(func() {
		for i := len(c.procs) - 1; i >= 0; i-- {
			c.procs[i].stop(5 * time.Second)
		}
		if c.tempDir {
			if err := os.RemoveAll(filepath.Join(c.Dir, "data")); err != nil && !errors.Is(err, os.ErrNotExist) {
				c.opts.Logf("remove %s: %v", filepath.Join(c.Dir, "data"), err)
			}
		}
	})
}
