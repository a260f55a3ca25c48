package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// freePort returns a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// redisTopo is Redis processes this program started.
type redisTopo struct {
	procs []*exec.Cmd
	dir   string
}

func (t *redisTopo) stop() {
	for _, p := range t.procs {
		p.Process.Kill()
		p.Wait()
	}
	os.RemoveAll(t.dir)
}

// spawnRedis starts redis-server (or redis-sentinel with conf) and waits
// until it answers PING.
func (t *redisTopo) spawnRedis(bin string, port int, args ...string) error {
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w (is redis installed?)", bin, err)
	}
	t.procs = append(t.procs, cmd)
	c := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	defer c.Close()
	for range 100 {
		if c.Ping(context.Background()).Err() == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s on port %d does not answer PING", bin, port)
}

func nodeArgs(port int, dir string) []string {
	return []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir}
}

// startSingle starts a standalone redis-server configured as startSentinel's master.
func startSingle() (*redisTopo, string, error) {
	dir, err := os.MkdirTemp("", "scale-redis-")
	if err != nil {
		return nil, "", err
	}
	t := &redisTopo{dir: dir}
	p, err := freePort()
	if err != nil {
		return t, "", err
	}
	if err := t.spawnRedis("redis-server", p, nodeArgs(p, dir)...); err != nil {
		return t, "", err
	}
	return t, fmt.Sprintf("redis://127.0.0.1:%d/0", p), nil
}

// startSentinel starts a master, one replica and one sentinel and returns
// taskgen's sentinel:// URL for them.
func startSentinel() (*redisTopo, string, error) {
	dir, err := os.MkdirTemp("", "scale-sentinel-")
	if err != nil {
		return nil, "", err
	}
	t := &redisTopo{dir: dir}
	pm, _ := freePort()
	pr, _ := freePort()
	ps, _ := freePort()
	if err := t.spawnRedis("redis-server", pm, nodeArgs(pm, dir)...); err != nil {
		return t, "", err
	}
	rdir := filepath.Join(dir, "replica")
	os.MkdirAll(rdir, 0o755)
	if err := t.spawnRedis("redis-server", pr, append(nodeArgs(pr, rdir), "--replicaof", "127.0.0.1", strconv.Itoa(pm))...); err != nil {
		return t, "", err
	}
	rc := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", pr)})
	defer rc.Close()
	for i := 0; ; i++ {
		if s, _ := rc.Info(context.Background(), "replication").Result(); strings.Contains(s, "master_link_status:up") {
			break
		}
		if i > 200 {
			return t, "", fmt.Errorf("the replica does not sync with the master")
		}
		time.Sleep(50 * time.Millisecond)
	}
	conf := filepath.Join(dir, "sentinel.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor scale 127.0.0.1 %d 1\nsentinel down-after-milliseconds scale 5000\n", ps, dir, pm)), 0o644)
	if err := t.spawnRedis("redis-sentinel", ps, conf); err != nil {
		return t, "", err
	}
	sc := goredis.NewSentinelClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", ps)})
	defer sc.Close()
	for i := 0; ; i++ {
		if a, err := sc.GetMasterAddrByName(context.Background(), "scale").Result(); err == nil && len(a) == 2 {
			break
		}
		if i > 200 {
			return t, "", fmt.Errorf("the sentinel does not know the master")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return t, fmt.Sprintf("sentinel://127.0.0.1:%d/0?master_name=scale", ps), nil
}

func secHA(ctx context.Context, e *env, r *report) error {
	single, singleURL, err := startSingle()
	if single != nil {
		defer single.stop()
	}
	if err != nil {
		return err
	}
	sent, sentURL, err := startSentinel()
	if sent != nil {
		defer sent.stop()
	}
	if err != nil {
		return err
	}
	pid := os.Getpid()
	cases := []struct{ name, url, queue string }{
		{"RabbitMQ classic queue", e.amqpURL, fmt.Sprintf("scale.classic.%d", pid)},
		{"RabbitMQ quorum queue", e.amqpURL + "?queue_type=quorum", fmt.Sprintf("scale.quorum.%d", pid)},
		{"single Redis", singleURL, "scale.ha"},
		{"Redis Sentinel (master + 1 replica)", sentURL, "scale.ha"},
	}
	defer deleteAMQPQueues(e.amqpURL, cases[0].queue, cases[1].queue)
	n := *flagN
	enq := make([][]float64, len(cases))
	drn := make([][]float64, len(cases))
	for run := range *flagRuns {
		for i, c := range cases {
			tg, err := newTG(c.url, c.queue)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			var el time.Duration
			rate, _, err := drainRun(1, n, workerSpec{system: "taskgen", broker: c.url, queues: []string{c.queue}, conc: 8}, func(n int) error {
				var err error
				el, err = tg.fill(ctx, n, 64, tsArg)
				return err
			})
			tg.close()
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			fmt.Fprintf(os.Stderr, "ha run %d: %s enqueue %.0f/s drain %.0f/s\n", run, c.name, float64(n)/el.Seconds(), rate)
			enq[i] = append(enq[i], float64(n)/el.Seconds())
			drn[i] = append(drn[i], rate)
		}
	}
	r.printf("\nThe drain harness of the first section on each deployment: %d no-op tasks enqueued by 64 producers (confirmed publishes on RabbitMQ), "+
		"then drained by one worker process of concurrency 8. The quorum queue is declared by taskgen on the single testenv RabbitMQ node "+
		"(`?queue_type=quorum`; a one-member quorum, so it shows the queue type's cost without replication). The two Redis deployments are started by the "+
		"program with the same flags (no persistence): a standalone server, and a master with one replica and one sentinel, which taskgen reaches "+
		"through `sentinel://…?master_name=scale`. Median of %d runs, range in brackets.\n\n", n, *flagRuns)
	r.printf("| deployment | enqueue tasks/s | drain tasks/s |\n|---|---|---|\n")
	var cats []string
	var ey, dy []float64
	for i, c := range cases {
		es, ds := statsOf(enq[i]), statsOf(drn[i])
		r.printf("| taskgen, %s | %s | %s |\n", c.name, es.rateCell(), ds.rateCell())
		cats = append(cats, strings.Replace(strings.Replace(c.name, " (master + 1 replica)", "", 1), "RabbitMQ ", "", 1))
		ey, dy = append(ey, es.med), append(dy, ds.med)
	}
	file, link := r.plot("ha.png")
	if err := plotBars(file, "Quorum vs classic queues (RabbitMQ), Sentinel vs single Redis", "tasks/s (median)", cats,
		[]series{{name: "enqueue (64 producers)", y: ey}, {name: "drain (1 worker, c=8)", y: dy}}); err != nil {
		return err
	}
	r.printf("\n![quorum vs classic, Sentinel vs single](%s)\n", link)
	return nil
}
