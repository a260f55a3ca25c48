package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Credentials of the RabbitCluster nodes, the same as those of the shared
// test RabbitMQ (scripts/testenv.sh).
const (
	clusterUser     = "taskgen"
	clusterPassword = "taskgen-secret"
	clusterVhost    = "taskgen"
	clusterBootWait = 2 * time.Minute
)

// RabbitCluster is a RabbitMQ cluster private to one test, on loopback: n
// nodes with distinct node names, AMQP and distribution ports and data
// directories, one Erlang cookie, and an epmd of its own on a port of its
// own (nothing touches a system RabbitMQ or epmd). Each node runs as the
// test's user from /usr/lib/rabbitmq/bin, as scripts/testenv.sh runs the
// shared node. The cluster has the shared node's user "taskgen" (password
// "taskgen-secret", administrator) with every permission on the vhost
// "taskgen". Nodes are killed with the test binary (a parent-death signal),
// and stopped and removed when the test ends.
//
// Its methods take the calling test's t, so subtests may use them; they are
// safe for concurrent use.
type RabbitCluster struct {
	dir      string
	bin      string // directory of rabbitmq-server, rabbitmqctl, rabbitmq-queues
	home     string // HOME of nodes and CLI tools: holds .erlang.cookie
	epmdPort int
	epmd     *exec.Cmd
	nodes    []*rabbitNode
}

// rabbitNode is one node of a RabbitCluster.
type rabbitNode struct {
	c        *RabbitCluster
	index    int
	name     string // Erlang node name, e.g. tgc-ab12-1@localhost
	port     int    // AMQP
	distPort int
	dir      string

	mu     sync.Mutex
	cmd    *exec.Cmd     // the running VM (nil when stopped)
	exited chan struct{} // closed when cmd has exited
}

// NewRabbitCluster starts a RabbitMQ cluster of n nodes (1-9) for t and
// returns once every node runs and the cluster has formed (about 12 s for
// 3 nodes on 2 shared cores; the time is logged). The first node boots
// alone, then the others together, finding it by RabbitMQ's classic peer
// discovery and joining it. The cluster is stopped and its directory removed
// when t ends. Missing RabbitMQ or epmd: skip, or fail under CI (see
// RedisURL).
func NewRabbitCluster(t testing.TB, n int) *RabbitCluster {
	t.Helper()
	if n < 1 || n > 9 {
		t.Fatalf("testenv: NewRabbitCluster(%d): want 1-9 nodes", n)
	}
	if !haveRabbitMQ() {
		missing(t, "rabbitmq-server is not installed")
	}
	epmd, err := exec.LookPath("epmd")
	if err != nil {
		missing(t, "epmd not found on PATH (erlang-base missing?)")
	}
	start := time.Now()
	dir, err := os.MkdirTemp("", "taskgen-rabbitcluster.")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	c := &RabbitCluster{dir: dir, bin: rabbitBinDir(), home: filepath.Join(dir, "home")}
	t.Cleanup(func() { c.shutdown(t) })
	ports, err := pickPorts(1 + 2*n)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	c.epmdPort = ports[0]
	suffix := strings.TrimPrefix(filepath.Base(dir), "taskgen-rabbitcluster.")
	suffix = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return 'x'
	}, suffix)
	for i := range n {
		c.nodes = append(c.nodes, &rabbitNode{c: c, index: i, name: fmt.Sprintf("tgc-%s-%d@localhost", suffix, i+1),
			port: ports[1+2*i], distPort: ports[2+2*i], dir: filepath.Join(dir, fmt.Sprintf("node%d", i+1))})
	}
	if err := c.writeFiles(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	c.epmd = exec.Command(epmd, "-address", "127.0.0.1", "-port", strconv.Itoa(c.epmdPort))
	c.epmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if c.epmd.Stderr, err = os.Create(filepath.Join(dir, "epmd.log")); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := c.epmd.Start(); err != nil {
		t.Fatalf("testenv: start epmd: %v", err)
	}
	if err := waitPort(c.epmdPort, 10*time.Second); err != nil {
		t.Fatalf("testenv: epmd: %v", err)
	}

	// The first node boots alone (peer discovery would wait 5 s for the
	// others), then the others boot together and join it.
	if err := c.nodes[0].start(); err != nil {
		t.Fatalf("testenv: RabbitMQ cluster in %s: %v", dir, err)
	}
	first := time.Since(start)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, nd := range c.nodes[1:] {
		wg.Go(func() { errs[i] = nd.start() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("testenv: RabbitMQ cluster in %s: %v", dir, err)
	}
	booted := time.Since(start)
	if err := c.awaitCluster(clusterBootWait); err != nil {
		t.Fatalf("testenv: RabbitMQ cluster in %s: %v", dir, err)
	}
	if err := c.addUser(); err != nil {
		t.Fatalf("testenv: RabbitMQ cluster in %s: %v", dir, err)
	}
	t.Logf("testenv: RabbitMQ cluster of %d nodes (%s) in %s ready in %v (first node booted in %v, all in %v)", n, c.describe(), dir,
		time.Since(start).Round(time.Millisecond), first.Round(time.Millisecond), booted.Round(time.Millisecond))
	return c
}

// rabbitBinDir is where the real RabbitMQ scripts are (Debian's /usr/sbin
// ones su to the rabbitmq user and insist on /var/lib/rabbitmq).
func rabbitBinDir() string {
	if _, err := os.Stat("/usr/lib/rabbitmq/bin/rabbitmq-server"); err == nil {
		return "/usr/lib/rabbitmq/bin"
	}
	p, err := exec.LookPath("rabbitmq-server")
	if err != nil {
		return ""
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	return filepath.Dir(p)
}

func portOpen(port int) bool {
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

func waitPort(port int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for !portOpen(port) {
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on 127.0.0.1:%d after %v", port, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func (c *RabbitCluster) describe() string {
	var s []string
	for _, nd := range c.nodes {
		s = append(s, fmt.Sprintf("%s on 127.0.0.1:%d", nd.name, nd.port))
	}
	return strings.Join(s, ", ")
}

// writeFiles writes the cookie and each node's configuration.
func (c *RabbitCluster) writeFiles() error {
	if err := os.MkdirAll(c.home, 0o755); err != nil {
		return err
	}
	var cookie [24]byte
	if _, err := readRandom(cookie[:]); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.home, ".erlang.cookie"), fmt.Appendf(nil, "%X", cookie), 0o400); err != nil {
		return err
	}
	// Every node but the first finds the first by classic peer discovery
	// and joins it; the first, which boots before them, lists none.
	peers := "cluster_formation.peer_discovery_backend = classic_config\n" +
		"cluster_formation.discovery_retry_interval = 200\n" +
		"cluster_formation.classic_config.nodes.1 = " + c.nodes[0].name + "\n"
	for i, nd := range c.nodes {
		discovery := peers
		if i == 0 {
			discovery = ""
		}
		for _, d := range []string{"mnesia", "log"} {
			if err := os.MkdirAll(filepath.Join(nd.dir, d), 0o755); err != nil {
				return err
			}
		}
		conf := fmt.Sprintf(`# taskgen test cluster node %s: AMQP 0-9-1 on 127.0.0.1:%d only, no plugins
listeners.tcp.1 = 127.0.0.1:%d
loopback_users.guest = true
log.console = false
log.file.level = info
disk_free_limit.absolute = 10MB
%s`, nd.name, nd.port, nd.port, discovery)
		files := map[string]string{"rabbitmq.conf": conf, "enabled_plugins": "[].\n", "advanced.config": "[].\n", "rabbitmq-env.conf": ""}
		for name, text := range files {
			if err := os.WriteFile(filepath.Join(nd.dir, name), []byte(text), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

func readRandom(b []byte) (int, error) {
	f, err := os.Open("/dev/urandom")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Read(b)
}

// env is the environment of node nd's VM and of CLI tools talking to it.
func (nd *rabbitNode) env() []string {
	c := nd.c
	return append(os.Environ(),
		"HOME="+c.home,
		"ERL_EPMD_PORT="+strconv.Itoa(c.epmdPort),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"ERL_CRASH_DUMP="+filepath.Join(nd.dir, "log", "erl_crash.dump"),
		"ERL_CRASH_DUMP_SECONDS=0",
		"RABBITMQ_NODENAME="+nd.name,
		"RABBITMQ_USE_LONGNAME=false",
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(nd.port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(nd.distPort),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(nd.dir, "rabbitmq-env.conf"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(nd.dir, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(nd.dir, "advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(nd.dir, "enabled_plugins"),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(nd.dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(nd.dir, "log"),
		"RABBITMQ_PID_FILE="+nd.pidFile(),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
		"RABBITMQ_CTL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
		"RABBITMQ_CTL_DIST_PORT_MIN=0",
		"RABBITMQ_CTL_DIST_PORT_MAX=0",
		// The rabbitmq-server script then execs the VM instead of running
		// it in the background: the process started is the VM itself, so
		// the parent-death signal and SIGKILL reach it.
		"RUNNING_UNDER_SYSTEMD=true",
	)
}

func (nd *rabbitNode) pidFile() string { return filepath.Join(nd.dir, "rabbitmq.pid") }

// start boots nd (a no-op when it runs) and returns once its rabbit
// application runs.
func (nd *rabbitNode) start() error {
	nd.mu.Lock()
	if nd.cmd != nil {
		nd.mu.Unlock()
		return nil
	}
	_ = os.Remove(nd.pidFile())
	out, err := os.OpenFile(filepath.Join(nd.dir, "log", "server.out"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		nd.mu.Unlock()
		return err
	}
	cmd := exec.Command(filepath.Join(nd.c.bin, "rabbitmq-server"))
	cmd.Env = nd.env()
	cmd.Dir = nd.dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		nd.mu.Unlock()
		return fmt.Errorf("start %s: %w", nd.name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(exited)
	}()
	nd.cmd, nd.exited = cmd, exited
	nd.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), clusterBootWait)
	defer cancel()
	// "rabbitmqctl wait" returns when the rabbit application runs and fails
	// early if the OS process goes away.
	if _, err := nd.ctl(ctx, "rabbitmqctl", "-q", "wait", "--timeout", strconv.Itoa(int(clusterBootWait/time.Second)-10), nd.pidFile()); err != nil {
		select {
		case <-exited:
			err = fmt.Errorf("%w (the VM exited)", err)
		default:
		}
		return fmt.Errorf("node %s did not boot: %w\n%s", nd.name, err, nd.logTail())
	}
	if err := waitPort(nd.port, 10*time.Second); err != nil {
		return fmt.Errorf("node %s booted but %w", nd.name, err)
	}
	return nil
}

// logTail is the end of nd's logs, for errors.
func (nd *rabbitNode) logTail() string {
	var b strings.Builder
	for _, name := range []string{"server.out", nd.name + ".log"} {
		data, _ := os.ReadFile(filepath.Join(nd.dir, "log", name))
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		fmt.Fprintf(&b, "--- %s:\n%s\n", name, strings.Join(lines, "\n"))
	}
	return b.String()
}

// signal sends sig to nd's VM (and with kill to its whole process group)
// and waits up to within for it to exit. It reports whether it was running.
func (nd *rabbitNode) signal(sig syscall.Signal, group bool, within time.Duration) (bool, error) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		return false, nil
	}
	pid := nd.cmd.Process.Pid
	if group {
		_ = syscall.Kill(-pid, sig)
	} else {
		_ = syscall.Kill(pid, sig)
	}
	select {
	case <-nd.exited:
	case <-time.After(within):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-nd.exited
		if sig != syscall.SIGKILL {
			return true, fmt.Errorf("node %s ignored %v for %v and was killed", nd.name, sig, within)
		}
	}
	// What the VM spawned (erl_child_setup, inet_gethost) goes with it.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	nd.cmd = nil
	return true, nil
}

// ctl runs a RabbitMQ CLI tool (rabbitmqctl, rabbitmq-queues, ...)
// against nd and returns its standard output.
func (nd *rabbitNode) ctl(ctx context.Context, tool string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(nd.c.bin, tool), append([]string{"-n", nd.name}, args...)...)
	cmd.Env = nd.env()
	cmd.Dir = nd.c.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v: %s%s", tool, strings.Join(args, " "), err, bytes.TrimSpace(stdout.Bytes()), bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

// awaitCluster waits until the first running node sees every node running.
func (c *RabbitCluster) awaitCluster(within time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var last error
	for {
		running, err := c.runningNodes(ctx)
		if err == nil && len(running) == len(c.nodes) {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("running nodes %v, want %d", running, len(c.nodes))
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("the cluster did not form: %w", last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// runningNodes asks the first running node which cluster nodes run.
func (c *RabbitCluster) runningNodes(ctx context.Context) ([]string, error) {
	var nd *rabbitNode
	for _, n := range c.nodes {
		if c.running(n) {
			nd = n
			break
		}
	}
	if nd == nil {
		return nil, errors.New("no node runs")
	}
	out, err := nd.ctl(ctx, "rabbitmqctl", "-q", "cluster_status", "--formatter", "json")
	if err != nil {
		return nil, err
	}
	var st struct {
		RunningNodes []string `json:"running_nodes"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, fmt.Errorf("cluster_status: %v: %q", err, out)
	}
	return st.RunningNodes, nil
}

func (c *RabbitCluster) running(nd *rabbitNode) bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.cmd != nil
}

// addUser adds the test user and vhost (cluster-wide) through the first
// node, the commands of Celery's RabbitMQ guide.
func (c *RabbitCluster) addUser() error {
	ctx, cancel := context.WithTimeout(context.Background(), rabbitMQCtlBudget)
	defer cancel()
	nd := c.nodes[0]
	// Each call boots a CLI VM: independent ones run two at a time.
	for _, pair := range [][2][]string{
		{{"add_user", clusterUser, clusterPassword}, {"add_vhost", clusterVhost}},
		{{"set_user_tags", clusterUser, "administrator"}, {"set_permissions", "-p", clusterVhost, clusterUser, ".*", ".*", ".*"}},
	} {
		var errs [2]error
		var wg sync.WaitGroup
		for i, args := range pair {
			wg.Go(func() { _, errs[i] = nd.ctl(ctx, "rabbitmqctl", append([]string{"-q"}, args...)...) })
		}
		wg.Wait()
		if err := errors.Join(errs[:]...); err != nil {
			return err
		}
	}
	return nil
}

// shutdown stops every node and epmd and removes the directory (kept, with
// its logs, when the test failed or TESTENV_KEEP=1, as scripts/testenv.sh).
func (c *RabbitCluster) shutdown(t testing.TB) {
	var wg sync.WaitGroup
	for _, nd := range c.nodes {
		wg.Go(func() {
			if _, err := nd.signal(syscall.SIGTERM, false, 30*time.Second); err != nil {
				t.Logf("testenv: %v", err)
			}
		})
	}
	wg.Wait()
	if c.epmd != nil && c.epmd.Process != nil {
		_ = syscall.Kill(-c.epmd.Process.Pid, syscall.SIGKILL)
		_ = c.epmd.Wait()
	}
	if t.Failed() || os.Getenv("TESTENV_KEEP") == "1" {
		t.Logf("testenv: RabbitMQ cluster logs kept in %s", c.dir)
		return
	}
	_ = os.RemoveAll(c.dir)
}

func (c *RabbitCluster) node(t testing.TB, i int) *rabbitNode {
	t.Helper()
	if i < 0 || i >= len(c.nodes) {
		t.Fatalf("testenv: no node %d in a cluster of %d", i, len(c.nodes))
	}
	return c.nodes[i]
}

// Size is the number of nodes.
func (c *RabbitCluster) Size() int { return len(c.nodes) }

// NodeName is the Erlang node name of node i (0-based), e.g.
// "tgc-ab12-1@localhost".
func (c *RabbitCluster) NodeName(i int) string { return c.nodes[i].name }

// Port is node i's AMQP port on 127.0.0.1.
func (c *RabbitCluster) Port(i int) int { return c.nodes[i].port }

// URL is the AMQP URL of node i as user taskgen on vhost taskgen.
func (c *RabbitCluster) URL(i int) string {
	return fmt.Sprintf("amqp://%s:%s@127.0.0.1:%d/%s", clusterUser, clusterPassword, c.nodes[i].port, clusterVhost)
}

// URLs is the failover URL list of every node, in order:
// "amqp://…:p1/taskgen;amqp://…:p2/taskgen;…".
func (c *RabbitCluster) URLs() string {
	urls := make([]string, len(c.nodes))
	for i := range c.nodes {
		urls[i] = c.URL(i)
	}
	return strings.Join(urls, ";")
}

// Running reports whether node i's VM runs (was started and not stopped or
// killed since).
func (c *RabbitCluster) Running(i int) bool { return c.running(c.nodes[i]) }

// Kill kills node i's VM with SIGKILL, as a crash or a power cut would:
// clients and the other nodes see its connections drop at once. It fails
// the test when the node does not run.
func (c *RabbitCluster) Kill(t testing.TB, i int) {
	t.Helper()
	nd := c.node(t, i)
	start := time.Now()
	ok, err := nd.signal(syscall.SIGKILL, true, 10*time.Second)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if !ok {
		t.Fatalf("testenv: Kill: node %s does not run", nd.name)
	}
	t.Logf("testenv: killed %s (SIGKILL) in %v", nd.name, time.Since(start).Round(time.Millisecond))
}

// Stop stops node i cleanly (SIGTERM; RabbitMQ shuts down and leaves the
// cluster's running nodes), a no-op when it does not run.
func (c *RabbitCluster) Stop(t testing.TB, i int) {
	t.Helper()
	nd := c.node(t, i)
	start := time.Now()
	if _, err := nd.signal(syscall.SIGTERM, false, 30*time.Second); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Logf("testenv: stopped %s in %v", nd.name, time.Since(start).Round(time.Millisecond))
}

// Start starts node i again after Kill or Stop (same node name, ports and
// data directory, so it rejoins the cluster with its queues) and returns
// once it runs and the cluster sees every running node. A no-op when it
// runs.
func (c *RabbitCluster) Start(t testing.TB, i int) {
	t.Helper()
	nd := c.node(t, i)
	start := time.Now()
	if err := nd.start(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := c.awaitRunning(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Logf("testenv: started %s in %v", nd.name, time.Since(start).Round(time.Millisecond))
}

// awaitRunning waits until the cluster reports every node whose VM runs.
func (c *RabbitCluster) awaitRunning() error {
	want := 0
	for _, nd := range c.nodes {
		if c.running(nd) {
			want++
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterBootWait)
	defer cancel()
	for {
		running, err := c.runningNodes(ctx)
		if err == nil && len(running) == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: running nodes %v (err %v), want %d", running, err, want)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// StopAll stops every node cleanly, concurrently.
func (c *RabbitCluster) StopAll(t testing.TB) {
	t.Helper()
	start := time.Now()
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, nd := range c.nodes {
		wg.Go(func() { _, errs[i] = nd.signal(syscall.SIGTERM, false, 30*time.Second) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Logf("testenv: stopped the cluster in %v", time.Since(start).Round(time.Millisecond))
}

// StartAll starts every stopped node, concurrently (a cluster whose nodes
// all stopped must boot them together: each waits for the others), and
// returns once the cluster has formed again.
func (c *RabbitCluster) StartAll(t testing.TB) {
	t.Helper()
	start := time.Now()
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, nd := range c.nodes {
		wg.Go(func() { errs[i] = nd.start() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := c.awaitCluster(clusterBootWait); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Logf("testenv: started the cluster in %v", time.Since(start).Round(time.Millisecond))
}

// Ctl runs rabbitmqctl against node i with args, e.g. Ctl(t, 0, "-q",
// "list_queues", "-p", "taskgen", "name", "type"), and returns its
// standard output. Each call boots a CLI VM (~0.5-1 s). It fails the test
// on error.
func (c *RabbitCluster) Ctl(t testing.TB, i int, args ...string) string {
	t.Helper()
	return c.tool(t, i, "rabbitmqctl", args...)
}

// Queues runs rabbitmq-queues against node i with args, e.g. Queues(t, 0,
// "quorum_status", "celery", "--vhost", "taskgen"). It fails the test on
// error.
func (c *RabbitCluster) Queues(t testing.TB, i int, args ...string) string {
	t.Helper()
	return c.tool(t, i, "rabbitmq-queues", args...)
}

func (c *RabbitCluster) tool(t testing.TB, i int, tool string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rabbitMQCtlBudget)
	defer cancel()
	out, err := c.node(t, i).ctl(ctx, tool, args...)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return out
}

// QueueLeader returns the index of the node hosting the leader of quorum
// queue queue on vhost taskgen, as a running node reports it (rabbitmqctl
// list_queues name leader). It waits (up to 30 s) while the queue has no
// leader on a running node, as during an election after the leader's node
// died.
func (c *RabbitCluster) QueueLeader(t testing.TB, queue string) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for {
		for i := range c.nodes {
			if !c.Running(i) {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), rabbitMQCtlBudget)
			out, err := c.nodes[i].ctl(ctx, "rabbitmqctl", "-q", "list_queues", "-p", clusterVhost, "name", "leader", "--formatter", "json")
			cancel()
			if err != nil {
				last = err.Error()
				continue
			}
			var rows []struct{ Name, Leader string }
			if err := json.Unmarshal([]byte(out), &rows); err != nil {
				last = fmt.Sprintf("list_queues: %v: %q", err, out)
				continue
			}
			for _, r := range rows {
				if r.Name != queue {
					continue
				}
				last = fmt.Sprintf("queue %s has leader %q", queue, r.Leader)
				for j, nd := range c.nodes {
					if nd.name == r.Leader && c.Running(j) {
						return j
					}
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: no leader of %s on a running node: %s", queue, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
