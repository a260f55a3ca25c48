package testenv

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SentinelConfig shapes the deployment NewRedisSentinel starts. Zero fields
// take the defaults shown.
type SentinelConfig struct {
	// MasterName is the name the sentinels monitor the master under
	// (default "mymaster").
	MasterName string
	// Replicas is the number of replicas of the initial master (default 2).
	Replicas int
	// Sentinels is the number of sentinels (default 3).
	Sentinels int
	// Quorum is the number of sentinels that must agree the master is down
	// (default a majority of Sentinels).
	Quorum int
	// DownAfter is sentinel's down-after-milliseconds: how long the master
	// must not answer before a failover starts (default 1 s; Redis's
	// default is 30 s).
	DownAfter time.Duration
	// FailoverTimeout is sentinel's failover-timeout (default 5 s; Redis's
	// default is 3 min).
	FailoverTimeout time.Duration
	// Password, when not empty, is the data nodes' requirepass (and
	// masterauth, and the sentinels' auth-pass).
	Password string
	// SentinelPassword, when not empty, is the sentinels' requirepass (and
	// sentinel-pass, which they use among themselves).
	SentinelPassword string
	// TLS makes every node and sentinel listen with TLS only, with a
	// certificate for 127.0.0.1 and localhost signed by a CA of the
	// deployment's own (RedisSentinel.CAFile), and replicate and monitor
	// over TLS; clients need not present a certificate.
	TLS bool
	// ReplicaLink, when set, returns the address the replicas replicate the
	// initial master from, given its address: a proxy that delays or cuts
	// the replication stream, say. After a failover sentinel points the
	// replicas at the new master directly.
	ReplicaLink func(masterAddr string) string
	// NodeArgs are redis.conf directives added to every data node, in
	// NewRedisServer's extraArgs form (e.g. "appendonly yes").
	NodeArgs []string
	// SentinelArgs are directives added to every sentinel.conf.
	SentinelArgs []string
}

// RedisSentinel is a private Redis Sentinel deployment owned by one test,
// created by NewRedisSentinel: a master, its replicas and the sentinels
// monitoring them, each a process of its own on 127.0.0.1 with its own port
// and data directory. Nodes are RedisServers: Kill, Stop, Start and Restart
// act on one of them. Like RedisServer's, its methods report failures
// through the test passed to NewRedisSentinel, so call them from that test's
// goroutine.
type RedisSentinel struct {
	t         testing.TB
	cfg       SentinelConfig
	nodes     []*RedisServer // nodes[0] was the first master
	sentinels []*RedisServer
	tls       *tls.Config // the helper's own client configuration (SentinelConfig.TLS)
	caFile    string
}

const (
	sentinelReadyTimeout    = 30 * time.Second
	sentinelFailoverTimeout = 60 * time.Second
)

// NewRedisSentinel starts a master, cfg.Replicas replicas of it (waiting
// until each has synchronised) and cfg.Sentinels sentinels monitoring it as
// cfg.MasterName, and returns once every sentinel knows every replica and
// every other sentinel, so that a failover can start at once. Everything is
// stopped and removed by t.Cleanup. It typically takes 2–4 s (sentinels
// find each other through hello messages sent every 2 s).
//
// The data nodes run as NewRedisServer's do (no persistence: a killed
// node restarts empty, and sentinel makes it a replica of the current
// master) with "repl-diskless-sync yes" and "repl-diskless-sync-delay 0"
// for quick resynchronisation; cfg.NodeArgs add to or override that.
//
// redis-server and redis-sentinel (Debian's redis-sentinel package) must be
// on PATH; if not, the test is skipped, or fails when the CI environment
// variable is non-empty.
func NewRedisSentinel(t testing.TB, cfg SentinelConfig) *RedisSentinel {
	t.Helper()
	if cfg.MasterName == "" {
		cfg.MasterName = "mymaster"
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 2
	}
	if cfg.Sentinels <= 0 {
		cfg.Sentinels = 3
	}
	if cfg.Quorum <= 0 {
		cfg.Quorum = cfg.Sentinels/2 + 1
	}
	if cfg.DownAfter <= 0 {
		cfg.DownAfter = time.Second
	}
	if cfg.FailoverTimeout <= 0 {
		cfg.FailoverTimeout = 5 * time.Second
	}
	sentinelBin, err := exec.LookPath("redis-sentinel")
	if err != nil {
		missing(t, "redis-sentinel not found on PATH (Debian package redis-sentinel; scripts/testenv.sh install)")
	}
	s := &RedisSentinel{t: t, cfg: cfg}
	var tlsArgs []string
	if cfg.TLS {
		tlsArgs = s.makeCerts()
	}
	nodeAuth := redisAuth{cfg.Password, s.tls}
	nodeArgs := append([]string{"repl-diskless-sync yes", "repl-diskless-sync-delay 0"}, tlsArgs...)
	if cfg.Password != "" {
		nodeArgs = append(nodeArgs, "requirepass "+redisQuote(cfg.Password), "masterauth "+redisQuote(cfg.Password))
	}
	nodeArgs = append(nodeArgs, cfg.NodeArgs...)
	master := newRedisServer(t, nodeAuth, nodeArgs)
	s.nodes = append(s.nodes, master)
	link := master.Addr()
	if cfg.ReplicaLink != nil {
		link = cfg.ReplicaLink(link)
	}
	linkHost, linkPort, err := net.SplitHostPort(link)
	if err != nil {
		t.Fatalf("testenv: SentinelConfig.ReplicaLink returned %q: %v", link, err)
	}
	for range cfg.Replicas {
		s.nodes = append(s.nodes, newRedisServer(t, nodeAuth, append(slices.Clone(nodeArgs), "replicaof "+linkHost+" "+linkPort)))
	}
	deadline := time.Now().Add(sentinelReadyTimeout)
	for _, r := range s.nodes[1:] {
		s.waitFor(deadline, "replica "+r.Addr()+" synchronised", func() (bool, error) {
			info, err := s.info(r.Addr(), "replication")
			return info["master_link_status"] == "up", err
		})
	}
	extra := slices.Clone(tlsArgs)
	if cfg.Password != "" {
		extra = append(extra, fmt.Sprintf("sentinel auth-pass %s %s", cfg.MasterName, redisQuote(cfg.Password)))
	}
	if cfg.SentinelPassword != "" {
		extra = append(extra, "requirepass "+redisQuote(cfg.SentinelPassword), "sentinel sentinel-pass "+redisQuote(cfg.SentinelPassword))
	}
	extra = append(extra, redisConfigLines(cfg.SentinelArgs)...)
	proc := redisProc{bin: sentinelBin, prefix: "sentinel-", conf: "sentinel.conf", argv: []string{"--sentinel"}, auth: redisAuth{cfg.SentinelPassword, s.tls}}
	for range cfg.Sentinels {
		s.sentinels = append(s.sentinels, newRedisProcess(t, proc, func(port int) []string {
			conf := []string{
				"# written by internal/testenv.NewRedisSentinel",
				"bind 127.0.0.1",
				"port " + strconv.Itoa(port),
				"dir ./",
				"daemonize no",
				"logfile redis.log",
				"pidfile redis.pid",
				fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d", cfg.MasterName, master.Port(), cfg.Quorum),
				fmt.Sprintf("sentinel down-after-milliseconds %s %d", cfg.MasterName, cfg.DownAfter.Milliseconds()),
				fmt.Sprintf("sentinel failover-timeout %s %d", cfg.MasterName, cfg.FailoverTimeout.Milliseconds()),
				fmt.Sprintf("sentinel parallel-syncs %s %d", cfg.MasterName, cfg.Replicas),
			}
			return append(conf, extra...)
		}))
	}
	for _, sn := range s.sentinels {
		s.waitFor(deadline, "sentinel "+sn.Addr()+" knows the topology", func() (bool, error) {
			return s.sentinelReady(sn.Addr())
		})
	}
	return s
}

// sentinelReady reports whether the sentinel at addr sees the master up
// and knows every replica and every other sentinel.
func (s *RedisSentinel) sentinelReady(addr string) (bool, error) {
	m, err := s.sentinelDo(addr, "SENTINEL", "MASTER", s.cfg.MasterName)
	if err != nil {
		return false, err
	}
	fields := pairs(m)
	return fields["num-slaves"] == strconv.Itoa(s.cfg.Replicas) &&
		fields["num-other-sentinels"] == strconv.Itoa(s.cfg.Sentinels-1) &&
		!strings.Contains(fields["flags"], "down"), nil
}

// makeCerts writes a CA and a server certificate for 127.0.0.1 and
// localhost signed by it into a private directory, sets the helper's own
// client configuration, and returns the redis.conf directives of TLS.
func (s *RedisSentinel) makeCerts() []string {
	s.t.Helper()
	dir := privateDir(s.t, "sentinel-tls-")
	fail := func(err error) {
		s.t.Helper()
		if err != nil {
			s.t.Fatalf("testenv: sentinel TLS certificates: %v", err)
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	fail(err)
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "taskgen testenv CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	fail(err)
	caCert, err := x509.ParseCertificate(caDER)
	fail(err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	fail(err)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	fail(err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	fail(err)
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		fail(os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return path
	}
	s.caFile = write("ca.crt", "CERTIFICATE", caDER)
	certFile := write("server.crt", "CERTIFICATE", leafDER)
	keyFile := write("server.key", "EC PRIVATE KEY", keyDER)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	s.tls = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return []string{
		"tls-cert-file " + redisQuote(certFile),
		"tls-key-file " + redisQuote(keyFile),
		"tls-ca-cert-file " + redisQuote(s.caFile),
		"tls-auth-clients no",
		"tls-replication yes",
	}
}

// CAFile returns the PEM file of the CA that signed the deployment's
// certificates (SentinelConfig.TLS), for a client's ssl_ca_certs; "" without
// TLS.
func (s *RedisSentinel) CAFile() string { return s.caFile }

// MasterName returns the name the sentinels monitor the master under.
func (s *RedisSentinel) MasterName() string { return s.cfg.MasterName }

// URL returns the deployment's URL in kombu's form, query included:
// sentinel://127.0.0.1:P1;sentinel://127.0.0.1:P2;sentinel://127.0.0.1:P3/0?master_name=NAME.
//
// With SentinelConfig.TLS the query also has ssl_ca_certs=CAFile().
func (s *RedisSentinel) URL() string {
	parts := make([]string, len(s.sentinels))
	for i, sn := range s.sentinels {
		parts[i] = "sentinel://" + sn.Addr()
	}
	u := strings.Join(parts, ";") + "/0?master_name=" + s.cfg.MasterName
	if s.caFile != "" {
		u += "&ssl_ca_certs=" + url.QueryEscape(s.caFile)
	}
	return u
}

// SentinelAddrs returns the sentinels' addresses (127.0.0.1:PORT).
func (s *RedisSentinel) SentinelAddrs() []string {
	addrs := make([]string, len(s.sentinels))
	for i, sn := range s.sentinels {
		addrs[i] = sn.Addr()
	}
	return addrs
}

// Nodes returns the data nodes (master and replicas); Nodes()[0] is the
// node that was master at the start.
func (s *RedisSentinel) Nodes() []*RedisServer { return slices.Clone(s.nodes) }

// Sentinels returns the sentinel processes.
func (s *RedisSentinel) Sentinels() []*RedisServer { return slices.Clone(s.sentinels) }

// MasterAddr returns the address of the current master according to a
// majority of the sentinels that answer; it fails the test when no majority
// agrees.
func (s *RedisSentinel) MasterAddr() string {
	s.t.Helper()
	addr, err := s.masterAddr()
	if err != nil {
		s.t.Fatalf("testenv: sentinel master address: %v", err)
	}
	return addr
}

func (s *RedisSentinel) masterAddr() (string, error) {
	votes := map[string]int{}
	var errs []error
	for _, sn := range s.sentinels {
		v, err := s.sentinelDo(sn.Addr(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.cfg.MasterName)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", sn.Addr(), err))
			continue
		}
		hp, ok := v.([]any)
		if !ok || len(hp) != 2 {
			errs = append(errs, fmt.Errorf("%s: GET-MASTER-ADDR-BY-NAME answered %v", sn.Addr(), v))
			continue
		}
		votes[net.JoinHostPort(fmt.Sprint(hp[0]), fmt.Sprint(hp[1]))]++
	}
	for addr, n := range votes {
		if n > len(s.sentinels)/2 {
			return addr, nil
		}
	}
	return "", fmt.Errorf("no majority of %d sentinels agrees (votes %v; %v)", len(s.sentinels), votes, errors.Join(errs...))
}

// Master returns the node that is master according to a majority of the
// sentinels (see MasterAddr).
func (s *RedisSentinel) Master() *RedisServer {
	s.t.Helper()
	return s.node(s.MasterAddr())
}

func (s *RedisSentinel) node(addr string) *RedisServer {
	s.t.Helper()
	for _, n := range s.nodes {
		if n.Addr() == addr {
			return n
		}
	}
	s.t.Fatalf("testenv: sentinel names %s, which is none of the deployment's nodes", addr)
	return nil
}

// KillMaster SIGKILLs the current master (see Master) and returns it. The
// sentinels start a failover after SentinelConfig.DownAfter; WaitFailover
// waits for it.
func (s *RedisSentinel) KillMaster() *RedisServer {
	s.t.Helper()
	m := s.Master()
	m.Kill()
	return m
}

// WaitFailover waits until a majority of the sentinels names a master other
// than old (an address, e.g. the Addr of the node KillMaster returned), that
// node answers ROLE as master, and every other running data node replicates
// from it with its link up. The master is read again on every poll: should
// the sentinels fail over a second time meanwhile (a failover that timed out
// on a loaded machine is retried, possibly to another replica), it waits for
// the master they settle on. It returns the new master, and fails the test,
// describing every node and sentinel, after a minute.
func (s *RedisSentinel) WaitFailover(old string) *RedisServer {
	s.t.Helper()
	addr := s.waitSettled(time.Now().Add(sentinelFailoverTimeout), "a failover away from "+old, func(a string) error {
		if a == old {
			return fmt.Errorf("the sentinels still name %s", old)
		}
		return nil
	})
	return s.node(addr)
}

// WaitReplicas waits until every running data node other than master (an
// address) is a replica of master with its link up. It fails the test after
// a minute.
func (s *RedisSentinel) WaitReplicas(master string) {
	s.t.Helper()
	deadline := time.Now().Add(sentinelFailoverTimeout)
	s.waitFor(deadline, "the replicas of "+master, func() (bool, error) {
		err := s.replicating(master)
		return err == nil, err
	})
}

// replicating returns nil when every running data node other than master is
// a replica of master with its link up, or else an error that says which
// node is not and what it reports instead.
func (s *RedisSentinel) replicating(master string) error {
	host, port, _ := net.SplitHostPort(master)
	for _, n := range s.nodes {
		if n.Addr() == master || !n.running() {
			continue
		}
		info, err := s.info(n.Addr(), "replication")
		if err != nil {
			return fmt.Errorf("%s: %w", n.Addr(), err)
		}
		elsewhere := info["role"] != "slave" || info["master_host"] != host || info["master_port"] != port
		if elsewhere || info["master_link_status"] != "up" {
			return &notReplicating{node: n.Addr(), master: master, elsewhere: elsewhere, state: fmt.Sprintf("role=%s master=%s:%s link=%s sync_in_progress=%s",
				info["role"], info["master_host"], info["master_port"], info["master_link_status"], info["master_sync_in_progress"])}
		}
	}
	return nil
}

// notReplicating: node is not (yet) a replica of master with its link up.
type notReplicating struct {
	node, master, state string
	elsewhere           bool // it names another master, or none
}

func (e *notReplicating) Error() string {
	return fmt.Sprintf("%s is not replicating from %s: %s", e.node, e.master, e.state)
}

// waitSettled waits until a majority of the sentinels names a master that
// check accepts, which answers ROLE as master, and of which every other
// running data node is a replica with its link up; it returns that master.
// A node that names another master for more than nudgeAfter while the
// sentinels agree is pointed at theirs with REPLICAOF (as the sentinels do
// at their next poll of it, which on a loaded machine can take long).
func (s *RedisSentinel) waitSettled(deadline time.Time, what string, check func(master string) error) string {
	s.t.Helper()
	const nudgeAfter = 10 * time.Second
	var addr string
	astray := map[string]time.Time{} // node → since when it names another master
	var seen string                  // the last master check accepted
	s.waitFor(deadline, what, func() (bool, error) {
		a, err := s.masterAddr()
		if err != nil {
			return false, err
		}
		if err := check(a); err != nil {
			return false, err
		}
		if seen != "" && a != seen {
			// Writes the first one took meanwhile are lost when it
			// resynchronises from the second: say so in the test log.
			s.t.Logf("testenv: sentinel deployment: the sentinels failed over again, from %s to %s, while waiting for %s", seen, a, what)
		}
		seen = a
		role, err := s.nodeDo(a, "ROLE")
		if err != nil {
			return false, fmt.Errorf("%s: %w", a, err)
		}
		if r, ok := role.([]any); !ok || len(r) == 0 || r[0] != "master" {
			return false, fmt.Errorf("the sentinels name %s, which answers ROLE %v", a, role)
		}
		err = s.replicating(a)
		var nr *notReplicating
		if errors.As(err, &nr) && nr.elsewhere {
			since, ok := astray[nr.node+">"+a]
			if !ok {
				astray[nr.node+">"+a] = time.Now()
			} else if time.Since(since) > nudgeAfter {
				host, port, _ := net.SplitHostPort(a)
				_, rerr := s.nodeDo(nr.node, "REPLICAOF", host, port)
				s.t.Logf("testenv: sentinel deployment: %s still names another master %v after the sentinels named %s; sent REPLICAOF %s %s (err %v)",
					nr.node, nudgeAfter, a, host, port, rerr)
				delete(astray, nr.node+">"+a)
			}
		}
		if err != nil {
			return false, err
		}
		addr = a
		return true, nil
	})
	return addr
}

// Restart starts node again after Kill or Stop (see RedisServer.Start) and
// waits until it is back in the deployment: a replica of the current master
// with its link up (sentinel reconfigures an old master that comes back).
func (s *RedisSentinel) Restart(node *RedisServer) {
	s.t.Helper()
	node.Start()
	// A restarted old master comes back believing it is the master, and
	// the sentinels reconfigure it only at their next poll of it (every
	// 10 s, slower on a loaded machine): point it at the current master
	// now, as the sentinels would.
	if master := s.MasterAddr(); master != node.Addr() {
		host, port, _ := strings.Cut(master, ":")
		if _, err := s.nodeDo(node.Addr(), "REPLICAOF", host, port); err != nil {
			s.t.Fatalf("testenv: sentinel deployment: REPLICAOF on restarted %s: %v", node.Addr(), err)
		}
	}
	s.waitSettled(time.Now().Add(sentinelFailoverTimeout), node.Addr()+" back as a replica", func(string) error { return nil })
}

// waitFor polls cond every 50 ms until it holds, failing the test with the
// last error when deadline passes.
func (s *RedisSentinel) waitFor(deadline time.Time, what string, cond func() (bool, error)) {
	s.t.Helper()
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("testenv: sentinel deployment: timed out waiting for %s (last error: %v)\n%s", what, last, s.Describe())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Describe reports, for a failure message, what every data node and
// sentinel says: each node's replication role, master and link, the master
// each sentinel names, and the end of the first sentinel's log (its
// failover events: +sdown, +odown, +switch-master, +slave-reconf-*).
func (s *RedisSentinel) Describe() string {
	var b strings.Builder
	for _, n := range s.nodes {
		if !n.running() {
			fmt.Fprintf(&b, "  node %s: not running\n", n.Addr())
			continue
		}
		info, err := s.info(n.Addr(), "replication")
		if err != nil {
			fmt.Fprintf(&b, "  node %s: %v\n", n.Addr(), err)
			continue
		}
		fmt.Fprintf(&b, "  node %s: role=%s master=%s:%s link=%s sync_in_progress=%s connected_slaves=%s offset=%s\n", n.Addr(),
			info["role"], info["master_host"], info["master_port"], info["master_link_status"], info["master_sync_in_progress"],
			info["connected_slaves"], info["master_repl_offset"])
	}
	for _, sn := range s.sentinels {
		v, err := s.sentinelDo(sn.Addr(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.cfg.MasterName)
		fmt.Fprintf(&b, "  sentinel %s: master %v (err %v)\n", sn.Addr(), v, err)
	}
	if len(s.sentinels) > 0 {
		fmt.Fprintf(&b, "  sentinel %s %s\n", s.sentinels[0].Addr(), s.sentinels[0].logTail())
	}
	return b.String()
}

// sentinelDo sends one command to the sentinel at addr.
func (s *RedisSentinel) sentinelDo(addr string, args ...string) (any, error) {
	return redisDo(addr, redisAuth{s.cfg.SentinelPassword, s.tls}, time.Second, args...)
}

// nodeDo sends one command to the data node at addr.
func (s *RedisSentinel) nodeDo(addr string, args ...string) (any, error) {
	return redisDo(addr, redisAuth{s.cfg.Password, s.tls}, time.Second, args...)
}

// info returns the fields of INFO section of the data node at addr.
func (s *RedisSentinel) info(addr, section string) (map[string]string, error) {
	v, err := s.nodeDo(addr, "INFO", section)
	if err != nil {
		return nil, err
	}
	text, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("INFO answered %v", v)
	}
	m := map[string]string{}
	for l := range strings.SplitSeq(text, "\r\n") {
		if k, val, ok := strings.Cut(l, ":"); ok && !strings.HasPrefix(l, "#") {
			m[k] = val
		}
	}
	return m, nil
}

// pairs turns a flat RESP array [k1 v1 k2 v2 …] into a map.
func pairs(v any) map[string]string {
	m := map[string]string{}
	a, _ := v.([]any)
	for i := 0; i+1 < len(a); i += 2 {
		m[fmt.Sprint(a[i])] = fmt.Sprint(a[i+1])
	}
	return m
}

// redisDo sends one command on a fresh connection (TLS when auth.tls is
// set; after AUTH when auth.password is not empty) and returns its reply: string, int64, nil,
// []any, or an error for an error reply.
func redisDo(addr string, auth redisAuth, timeout time.Duration, args ...string) (any, error) {
	password := auth.password
	d := &net.Dialer{Timeout: timeout}
	var c net.Conn
	var err error
	if auth.tls != nil {
		c, err = tls.DialWithDialer(d, "tcp", addr, auth.tls)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	var b strings.Builder
	writeCmd := func(args ...string) {
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	if password != "" {
		writeCmd("AUTH", password)
	}
	writeCmd(args...)
	if _, err := io.WriteString(c, b.String()); err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	if password != "" {
		if _, err := readRESP(r); err != nil {
			return nil, fmt.Errorf("AUTH: %w", err)
		}
	}
	return readRESP(r)
}

// readRESP reads one RESP2 reply.
func readRESP(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty RESP line")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, errors.New(line[1:])
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		a := make([]any, n)
		for i := range a {
			if a[i], err = readRESP(r); err != nil {
				return nil, err
			}
		}
		return a, nil
	}
	return nil, fmt.Errorf("unexpected RESP line %q", line)
}
