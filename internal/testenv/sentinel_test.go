package testenv_test

import (
	"strings"
	"testing"
	"time"

	"github.com/taskgen/taskgen/internal/testenv"
)

// TestNewRedisSentinel starts the deployment, SIGKILLs the master, waits
// for the failover and brings the old master back as a replica.
func TestNewRedisSentinel(t *testing.T) {
	t.Parallel()
	start := time.Now()
	s := testenv.NewRedisSentinel(t, testenv.SentinelConfig{})
	t.Logf("NewRedisSentinel took %v", time.Since(start).Round(time.Millisecond))
	if n := len(s.Nodes()); n != 3 {
		t.Fatalf("%d nodes, want 3", n)
	}
	if n := len(s.SentinelAddrs()); n != 3 {
		t.Fatalf("%d sentinels, want 3", n)
	}
	want := "sentinel://" + strings.Join(s.SentinelAddrs(), ";sentinel://") + "/0?master_name=mymaster"
	if s.URL() != want {
		t.Errorf("URL = %s, want %s", s.URL(), want)
	}
	first := s.Nodes()[0]
	if m := s.Master(); m != first {
		t.Fatalf("master is %s, want the first node %s", m.Addr(), first.Addr())
	}
	if got := redisDo(t, first.Addr(), "SET", "k", "v"); got != "+OK" {
		t.Fatalf("SET on the master = %q", got)
	}
	if got := redisDo(t, first.Addr(), "WAIT", "2", "5000"); got != ":2" {
		t.Fatalf("WAIT 2 = %q, want :2", got)
	}

	start = time.Now()
	old := s.KillMaster()
	if old != first {
		t.Fatalf("KillMaster killed %s, want %s", old.Addr(), first.Addr())
	}
	m := s.WaitFailover(old.Addr())
	t.Logf("failover took %v", time.Since(start).Round(time.Millisecond))
	if m == old {
		t.Fatal("WaitFailover returned the killed master")
	}
	if got := redisDo(t, m.Addr(), "GET", "k"); got != "v" {
		t.Errorf("GET k on the new master = %q, want v", got)
	}

	start = time.Now()
	s.Restart(old)
	t.Logf("the old master rejoined as a replica in %v", time.Since(start).Round(time.Millisecond))
	if got := redisDo(t, old.Addr(), "GET", "k"); got != "v" {
		t.Errorf("GET k on the restarted old master = %q, want v (resynchronised)", got)
	}
	if s.Master() != m {
		t.Errorf("the master changed again to %s", s.Master().Addr())
	}
}

// TestNewRedisSentinelPasswords: data nodes and sentinels with passwords of
// their own.
func TestNewRedisSentinelPasswords(t *testing.T) {
	t.Parallel()
	s := testenv.NewRedisSentinel(t, testenv.SentinelConfig{Password: "node-secret", SentinelPassword: "sentinel-secret", Replicas: 1})
	if got := redisDo(t, s.MasterAddr(), "PING"); !strings.HasPrefix(got, "-NOAUTH") {
		t.Errorf("PING without AUTH on the master = %q, want -NOAUTH", got)
	}
	if got := redisDo(t, s.SentinelAddrs()[0], "PING"); !strings.HasPrefix(got, "-NOAUTH") {
		t.Errorf("PING without AUTH on a sentinel = %q, want -NOAUTH", got)
	}
	old := s.KillMaster()
	s.WaitFailover(old.Addr())
}

// TestNewRedisSentinelTLS: TLS only, nodes and sentinels; a failover still
// happens (sentinels monitor and replicas replicate over TLS).
func TestNewRedisSentinelTLS(t *testing.T) {
	t.Parallel()
	s := testenv.NewRedisSentinel(t, testenv.SentinelConfig{TLS: true, Replicas: 1})
	if s.CAFile() == "" || !strings.Contains(s.URL(), "ssl_ca_certs=") {
		t.Fatalf("CAFile %q, URL %s", s.CAFile(), s.URL())
	}
	if _, err := tryRedisDo(s.MasterAddr(), "PING"); err == nil {
		t.Error("a plain-text PING to the master got an answer")
	}
	if !strings.HasPrefix(s.Master().URL(), "rediss://") {
		t.Errorf("node URL %s", s.Master().URL())
	}
	old := s.KillMaster()
	s.WaitFailover(old.Addr())
}
