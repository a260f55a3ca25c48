//go:build reliability

package reliability_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/reliability/internal/faultproxy"
)

// haN is the number of confirmed tasks of each failover stream
// (RELIABILITY_HA_N, default 20 000).
func haN() int64 {
	if n, err := strconv.Atoi(os.Getenv("RELIABILITY_HA_N")); err == nil && n > 0 {
		return int64(n)
	}
	return 20000
}

// haFault is one fault of a failover stream: at a share of the stream's
// confirmations, kill the broker node holding the queue (it returns a
// description, the instant of the kill and a function restarting the
// node).
type haFault struct {
	at   float64
	kill func(t *testing.T) (victim string, killed time.Time, restart func(t *testing.T))
}

// haScenario is a failover stream: worker processes started once, one
// producer app, the faults, then the counts.
type haScenario struct {
	name, broker string
	workerURL    string // relworker's broker URL
	producerURL  string
	queue        string
	total        int64 // confirmations of the stream; 0: haN()
	workers      int
	pace         time.Duration // after each confirmed Delay, per producer goroutine
	faults       []haFault
	// lossy: the broker may lose confirmed tasks (asynchronous
	// replication); measure the loss instead of failing on it.
	lossy bool
	// describe, when set, reports the deployment's state for a failure
	// message.
	describe func() string
}

func runHA(t *testing.T, sc haScenario) {
	total := sc.total
	if total == 0 {
		total = haN()
	}
	ctx := ctxT(t, 5*time.Minute)
	s := newSink(t)
	tl := newTailer(t, s)
	env := map[string]string{"BROKER": sc.workerURL, "SINK": s.path, "QUEUES": sc.queue, "CONCURRENCY": "8", "SHUTDOWN": "5s", "LOG_INFO": "1"}
	var procs []*worker
	for i := range sc.workers {
		procs = append(procs, startWorker(t, fmt.Sprintf("ha-%s-%d", sc.name, i), env))
	}
	app, plog := newApp(t, "producer", sc.producerURL)
	stop := make(chan struct{})
	start := time.Now()
	st := runHAStream(ctx, app, sc.queue, 8, sc.pace, 15*time.Second, stop, plog)
	stopped := false
	defer func() {
		if !stopped {
			close(stop)
			st.wait()
		}
	}()

	var kills []time.Time
	var notes []string
	var lastFaultDone time.Time
	for i, f := range sc.faults {
		at := int64(f.at * float64(total))
		require.True(t, st.waitConfirmed(at, 3*time.Minute), "the stream did not reach %d confirmations (has %d)", at, st.confirms.Load())
		before := st.confirms.Load()
		victim, killed, restart := f.kill(t)
		fmt.Fprintf(plog, "%s fault %d: killed %s\n", killed.Format("15:04:05.000"), i+1, victim)
		kills = append(kills, killed)
		r, ok := awaitResume(st, tl, killed, 2*time.Minute)
		if !ok && sc.describe != nil {
			t.Logf("deployment after killing %s:\n%s", victim, sc.describe())
		}
		require.True(t, ok, "no task confirmed and run within 2 min of killing %s (confirmed since: %d)", victim, st.confirms.Load()-before)
		t.Logf("HA-RESUME scenario=%s fault=%d victim=%s confirmed_before=%d kill_to_confirm_ms=%d kill_to_run_ms=%d",
			sc.name, i+1, victim, before, ms(r.confirm), ms(r.run))
		notes = append(notes, fmt.Sprintf("kill %d → confirm %.2f s, → run %.2f s", i+1, r.confirm.Seconds(), r.run.Seconds()))
		if restart != nil {
			restart(t)
			fmt.Fprintf(plog, "%s fault %d: restarted %s\n", time.Now().Format("15:04:05.000"), i+1, victim)
		}
		lastFaultDone = time.Now()
	}
	// The stream goes on to its total, with at least a few seconds after
	// the last fault was repaired.
	require.True(t, st.waitConfirmed(total, 3*time.Minute), "the stream did not reach %d confirmations (has %d)", total, st.confirms.Load())
	for time.Since(lastFaultDone) < 3*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	st.wait()
	stopped = true
	elapsed := time.Since(start)

	confirmed, failed := st.ids()
	after := st.confirmedAfter(lastFaultDone)
	var afterIDs []string
	for _, c := range after {
		afterIDs = append(afterIDs, c.id)
	}
	quiet := time.Duration(0)
	if sc.lossy {
		quiet = 15 * time.Second // what has not run by then was lost
	}
	lost, dups := tl.waitAll(confirmed, 3*time.Minute, quiet)
	lostAfter, _ := tl.tally(afterIDs)
	ranFailed := tl.ran(failed)
	// A failed Delay that ran anyway and ran twice is a duplicate too.
	_, dupsFailed := tl.tally(failed)
	dups += dupsFailed

	// The loss window: how long before the kill the oldest lost task was
	// confirmed (negative: its confirmation came after the SIGKILL was
	// sent, the reply already on its way).
	var window time.Duration
	if len(lost) > 0 && len(kills) > 0 {
		at := map[string]time.Time{}
		st.mu.Lock()
		for _, c := range st.confirmed {
			at[c.id] = c.at
		}
		st.mu.Unlock()
		window = -time.Hour
		for _, id := range lost {
			for _, k := range kills {
				if d := k.Sub(at[id]); d > window && d > -5*time.Second {
					window = d
				}
			}
		}
	}
	for i, p := range procs {
		select {
		case <-p.done:
			t.Errorf("worker process %d exited during the stream: %v", i, p.err)
		default:
		}
	}
	t.Logf("HA-RESULT scenario=%s broker=%s confirmed=%d lost=%d duplicates=%d confirmed_before_first_fault=%d failed_delays=%d failed_that_ran=%d confirmed_after_last_fault=%d lost_after_last_fault=%d loss_window_us=%d elapsed_ms=%d rate_per_s=%.0f",
		sc.name, sc.broker, len(confirmed), len(lost), dups, confirmedBefore(st, kills[0]), len(failed), ranFailed, len(after), len(lostAfter), window.Microseconds(), ms(elapsed), float64(len(confirmed))/elapsed.Seconds())
	if sc.lossy {
		notes = append(notes, fmt.Sprintf("lost %d (of %d confirmed before the kill), oldest lost confirmed %.1f ms before the kill", len(lost), confirmedBefore(st, kills[0]), float64(window.Microseconds())/1000))
	}
	report(t, figure{Scenario: "HA " + sc.name, Broker: sc.broker, Tasks: int64(len(confirmed)), Lost: int64(len(lost)), Duplicates: int64(dups),
		Surfaced: int64(len(failed)), Notes: strings.Join(notes, "; ") + fmt.Sprintf("; %d failed Delays ran anyway; %.0f tasks/s", ranFailed, float64(len(confirmed))/elapsed.Seconds())})

	require.GreaterOrEqual(t, int64(len(confirmed)), total)
	require.Len(t, kills, len(sc.faults))
	require.NotEmpty(t, after, "no task confirmed after the last fault")
	require.Empty(t, lostAfter, "tasks confirmed after the last fault never ran: the workers stopped consuming (first 10: %v)", head(lostAfter, 10))
	if !sc.lossy {
		require.Empty(t, lost, "confirmed tasks never ran (first 10: %v)", head(lost, 10))
	}
	for _, p := range procs {
		_, err := p.stop(20 * time.Second)
		require.NoError(t, err, "worker %s", p.name)
	}
}

// confirmedBefore counts the Delays confirmed before at.
func confirmedBefore(st *haStream, at time.Time) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	n := 0
	for _, c := range st.confirmed {
		if c.at.Before(at) {
			n++
		}
	}
	return n
}

// TestHA is the high-availability proof (docs/RELIABILITY.md §High
// availability): streams of acks_late tasks through SIGKILLs of the broker
// node holding the queue, with worker processes and a producer that are
// never restarted.
func TestHA(t *testing.T) {
	t.Run("rabbitmq", func(t *testing.T) {
		c := testenv.NewRabbitCluster(t, 3)
		const query = "queue_type=quorum&heartbeat=2s&connect_timeout=3s"
		t.Run("failover", func(t *testing.T) { haRabbitFailover(t, c, query) })
		t.Run("partition", func(t *testing.T) { haRabbitPartition(t, c, query) })
	})
	t.Run("sentinel", func(t *testing.T) {
		t.Run("min_replicas=1", func(t *testing.T) { haSentinel(t, 1, 0) })
		t.Run("async", func(t *testing.T) { haSentinel(t, 0, 0) })
		t.Run("async-link-lag-10ms", func(t *testing.T) { haSentinel(t, 0, 10*time.Millisecond) })
	})
}

// rabbitList is the URL list of c's nodes, order first, query on the
// first URL; a host of proxies replaces that node's address.
func rabbitList(c *testenv.RabbitCluster, query string, order []int, proxies map[int]string) string {
	urls := make([]string, len(order))
	for i, n := range order {
		u := c.URL(n)
		if p, ok := proxies[n]; ok {
			u = strings.Replace(u, "127.0.0.1:"+strconv.Itoa(c.Port(n)), p, 1)
		}
		urls[i] = u
	}
	urls[0] = withQuery(urls[0], query)
	return strings.Join(urls, ";")
}

// declareQueue publishes one task to queue (which declares it) and
// returns the node holding its leader.
func declareQueue(t *testing.T, c *testenv.RabbitCluster, query, queue string) int {
	app, _ := newApp(t, "declare", rabbitList(c, query, leaderFirst(c, 0), nil))
	_, err := recordStub(app, queue).Delay(ctxT(t, 30*time.Second), "warm-up", 0)
	require.NoError(t, err)
	app.Close()
	return c.QueueLeader(t, queue)
}

// leaderFirst is every node index, leader first.
func leaderFirst(c *testenv.RabbitCluster, leader int) []int {
	order := []int{leader}
	for i := range c.Size() {
		if i != leader {
			order = append(order, i)
		}
	}
	return order
}

// haRabbitFailover: 2 worker processes and the producer reach the cluster
// through a URL list that names the node of the queue's leader first, so
// that every client is on the node killed first. The leader's node is
// SIGKILLed at 25 % of the stream and restarted once tasks run again; the
// node holding the new leader is killed at 60 % and restarted.
func haRabbitFailover(t *testing.T, c *testenv.RabbitCluster, query string) {
	q := "rel.ha." + randID()
	leader := declareQueue(t, c, query, q)
	raw := rabbitList(c, query, leaderFirst(c, leader), nil)
	t.Logf("queue %s: leader on node %d; clients list it first", q, leader)
	kill := func(t *testing.T) (string, time.Time, func(*testing.T)) {
		n := c.QueueLeader(t, q)
		at := time.Now()
		c.Kill(t, n)
		return fmt.Sprintf("node%d(leader)", n), at, func(t *testing.T) { c.Start(t, n) }
	}
	runHA(t, haScenario{name: "rabbitmq-failover", broker: "rabbitmq 3-node cluster, quorum queue", workerURL: raw, producerURL: raw, queue: q,
		workers: 2, pace: 8 * time.Millisecond, faults: []haFault{{at: 0.25, kill: kill}, {at: 0.60, kill: kill}}})
}

// haRabbitPartition: a worker process and the producer reach the node of
// the queue's leader through the fault proxy (listed first) and the other
// nodes directly. The proxy black-holes the node for 8 s (no byte, no
// close passes either way; new connections hang), then heals: a partition
// between the clients and one node, not between nodes.
func haRabbitPartition(t *testing.T, c *testenv.RabbitCluster, query string) {
	q := "rel.hap." + randID()
	leader := declareQueue(t, c, query, q)
	proxy, err := faultproxy.New("127.0.0.1:" + strconv.Itoa(c.Port(leader)))
	require.NoError(t, err)
	t.Cleanup(func() { proxy.Close() })
	raw := rabbitList(c, query, leaderFirst(c, leader), map[int]string{leader: proxy.Addr()})
	t.Logf("queue %s: leader on node %d, reached through the proxy %s", q, leader, proxy.Addr())
	const partition = 8 * time.Second
	cut := func(t *testing.T) (string, time.Time, func(*testing.T)) {
		at := time.Now()
		proxy.Blackhole(true)
		return fmt.Sprintf("node%d(leader)-partitioned-%v", leader, partition), at, func(t *testing.T) {
			time.Sleep(partition) // the stream goes on meanwhile
			proxy.Blackhole(false)
		}
	}
	runHA(t, haScenario{name: "rabbitmq-partition", broker: "rabbitmq 3-node cluster, quorum queue", workerURL: raw, producerURL: raw, queue: q,
		total: haN() / 2, workers: 1, pace: 8 * time.Millisecond, faults: []haFault{{at: 0.3, kill: cut}}})
}

// haSentinel: master + 2 replicas + 3 sentinels; 2 worker processes and
// the producer follow the master through the sentinels. The master is
// SIGKILLed at 25 % of the stream and restarted (as a replica) after
// tasks run again; with min_replicas=1 the new master is killed at 60 %
// too. Without min_replicas (async) the tasks lost are counted, with the
// replicas on loopback as they are, and with lag > 0 with their link to the
// first master through a proxy that delays it by lag and drops what it
// holds when the master dies (a master whose host dies with the bytes in
// flight to replicas lag away).
func haSentinel(t *testing.T, minReplicas int, lag time.Duration) {
	cfg := testenv.SentinelConfig{}
	if lag > 0 {
		cfg.ReplicaLink = func(master string) string { return testenv.LagProxy(t, master, lag) }
	}
	d := testenv.NewRedisSentinel(t, cfg)
	q := "rel.ha." + randID()
	raw := withQuery(d.URL(), fmt.Sprintf("min_replicas=%d&visibility_timeout=3&restore_interval=250ms&publish_timeout=5s", minReplicas))
	kill := func(t *testing.T) (string, time.Time, func(*testing.T)) {
		old := d.Master()
		at := time.Now()
		old.Kill()
		return "master " + old.Addr(), at, func(t *testing.T) {
			nm := d.WaitFailover(old.Addr())
			t.Logf("sentinels promoted %s", nm.Addr())
			d.Restart(old)
		}
	}
	name := fmt.Sprintf("sentinel-min_replicas=%d", minReplicas)
	if lag > 0 {
		name += fmt.Sprintf("-link-lag-%v", lag)
	}
	sc := haScenario{name: name, broker: "redis sentinel (master + 2 replicas, 3 sentinels)",
		workerURL: raw, producerURL: raw, queue: q, workers: 2, pace: 8 * time.Millisecond, describe: d.Describe,
		faults: []haFault{{at: 0.25, kill: kill}, {at: 0.60, kill: kill}}}
	if minReplicas == 0 {
		// Full speed, one kill: the loss window of asynchronous replication.
		sc.lossy, sc.pace, sc.faults = true, 0, sc.faults[:1]
		sc.total, sc.faults[0].at = haN()/2, 0.8
	}
	runHA(t, sc)
}
