package testenv_test

import (
	"strings"
	"testing"
	"time"

	"github.com/taskgen/taskgen/internal/testenv"
)

// TestRabbitCluster: three nodes form one cluster on loopback; the test user
// exists on every node; a quorum queue has a leader that Kill takes down,
// another node takes over, and the killed node rejoins after Start.
func TestRabbitCluster(t *testing.T) {
	testenv.SkipIfShort(t, "starts a 3-node RabbitMQ cluster")
	start := time.Now()
	c := testenv.NewRabbitCluster(t, 3)
	t.Logf("cluster up in %v", time.Since(start).Round(time.Millisecond))
	if c.Size() != 3 {
		t.Fatalf("Size = %d", c.Size())
	}
	names := map[string]bool{}
	for i := range 3 {
		if err := amqpConnectionStart(amqpAddr(t, c.URL(i))); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		names[c.NodeName(i)] = true
	}
	if len(names) != 3 {
		t.Fatalf("node names %v", names)
	}
	if !strings.Contains(c.URLs(), ";") || strings.Count(c.URLs(), "amqp://") != 3 {
		t.Fatalf("URLs = %s", c.URLs())
	}
	status := c.Ctl(t, 2, "-q", "cluster_status")
	for n := range names {
		if !strings.Contains(status, n) {
			t.Fatalf("cluster_status of node 3 lacks %s:\n%s", n, status)
		}
	}
	c.Ctl(t, 1, "authenticate_user", "taskgen", "taskgen-secret")
	c.Queues(t, 0, "check_if_node_is_quorum_critical")

	c.Ctl(t, 0, "-q", "eval", `rabbit_amqqueue:declare(rabbit_misc:r(<<"taskgen">>, queue, <<"tq">>), true, false, [{<<"x-queue-type">>, longstr, <<"quorum">>}], none, <<"test">>).`)
	leader := c.QueueLeader(t, "tq")
	c.Kill(t, leader)
	if c.Running(leader) {
		t.Fatal("Running after Kill")
	}
	next := c.QueueLeader(t, "tq")
	if next == leader {
		t.Fatalf("the leader stayed on the killed node %d", leader)
	}
	start = time.Now()
	c.Start(t, leader)
	t.Logf("killed node back in %v", time.Since(start).Round(time.Millisecond))
	if err := amqpConnectionStart(amqpAddr(t, c.URL(leader))); err != nil {
		t.Fatalf("restarted node: %v", err)
	}
	if out := c.Queues(t, next, "quorum_status", "tq", "--vhost", "taskgen"); !strings.Contains(out, c.NodeName(leader)) {
		t.Fatalf("quorum_status lacks the restarted node:\n%s", out)
	}
}
