package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"
)

var flagCeleryPool = flag.String("celery-pool", "prefork", "pool of the Celery worker (prefork, threads)")

// celeryDir finds bench/celery from the working directory (bench/ or the
// repository root).
func celeryDir() (string, error) {
	for _, d := range []string{"celery", "bench/celery"} {
		if _, err := os.Stat(filepath.Join(d, "benchtasks.py")); err == nil {
			return filepath.Abs(d)
		}
	}
	return "", errors.New("bench/celery/benchtasks.py not found: run from the repository root or bench/")
}

// celerySys drives Python Celery 5.2: a producer script and a worker
// subprocess (threads pool), counters kept in Redis by the worker.
type celerySys struct {
	e      *env
	kind   string // redis or amqp
	dir    string
	broker string
	queue  string
	prefix string
	stats  *goredis.Client
	rdb    *goredis.Client  // Redis broker DB
	conn   *amqp.Connection // RabbitMQ
}

func celeryRun(kind string) func(context.Context, *env, int, *Result) error {
	return func(ctx context.Context, e *env, run int, r *Result) error {
		dir, err := celeryDir()
		if err != nil {
			return err
		}
		s := &celerySys{e: e, kind: kind, dir: dir,
			queue:  fmt.Sprintf("bench.celery.%d.%d", run, os.Getpid()),
			prefix: fmt.Sprintf("bench.%d.%d", run, os.Getpid()),
			stats:  goredis.NewClient(&goredis.Options{Addr: e.redisAddr, DB: dbCeleryStats})}
		defer s.close(context.Background())
		if kind == "redis" {
			s.broker = fmt.Sprintf("redis://%s/%d", e.redisAddr, dbCelery)
			s.rdb = goredis.NewClient(&goredis.Options{Addr: e.redisAddr, DB: dbCelery})
			if err := s.rdb.FlushDB(ctx).Err(); err != nil {
				return err
			}
		} else {
			s.broker = e.amqpURL
			if s.conn, err = amqp.Dial(e.amqpURL); err != nil {
				return err
			}
		}
		n := *flagNCelery
		if phase("enqueue") {
			el, err := s.produce(ctx, n, 8)
			if err != nil {
				return fmt.Errorf("enqueue: %w", err)
			}
			r.Enq8 = float64(n) / el
			if err := s.purge(ctx); err != nil {
				return err
			}
		}
		if phase("drain") {
			for _, c := range []int{8, 32} {
				rate, rss, err := s.drain(ctx, n, c)
				if err != nil {
					return fmt.Errorf("drain c=%d: %w", c, err)
				}
				if c == 8 {
					r.Drain8 = rate
				} else {
					r.Drain32, r.RSS = rate, rss
				}
				if err := s.purge(ctx); err != nil {
					return err
				}
			}
		}
		if phase("latency") {
			lat, err := s.latency(ctx, *flagRate, *flagLatDur)
			if err != nil {
				return fmt.Errorf("latency: %w", err)
			}
			r.LatN = len(lat)
			r.P50, r.P99 = percentiles(lat)
		}
		return nil
	}
}

func (s *celerySys) cmd(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, s.e.python, args...)
	c.Dir = s.dir
	c.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "BENCH_BROKER="+s.broker, "BENCH_QUEUE="+s.queue,
		fmt.Sprintf("BENCH_STATS=redis://%s/%d", s.e.redisAddr, dbCeleryStats), "BENCH_PREFIX="+s.prefix)
	c.Stderr = os.Stderr
	return c
}

// produce runs producer.py enqueue (n+1 messages: one to connect) and
// returns the seconds it measured for n.
func (s *celerySys) produce(ctx context.Context, n, threads int) (float64, error) {
	out, err := s.cmd(ctx, "producer.py", "enqueue", strconv.Itoa(n), strconv.Itoa(threads)).Output()
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
}

func (s *celerySys) purge(ctx context.Context) error {
	if s.rdb != nil {
		return s.rdb.FlushDB(ctx).Err()
	}
	ch, err := s.conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	_, err = ch.QueuePurge(s.queue, false)
	return err
}

func (s *celerySys) done(ctx context.Context) int64 {
	v, _ := s.stats.Get(ctx, s.prefix+":done").Int64()
	return v
}

type celeryWorker struct{ cmd *exec.Cmd }

func (s *celerySys) startWorker(ctx context.Context, conc int) (*celeryWorker, error) {
	s.stats.Del(ctx, s.prefix+":done")
	c := s.cmd(context.Background(), "-m", "celery", "-A", "benchtasks", "worker", "-P", *flagCeleryPool,
		"-c", strconv.Itoa(conc), "-Q", s.queue, "--without-heartbeat", "--without-gossip", "--without-mingle",
		"-l", "WARNING", "-n", fmt.Sprintf("bench%d@localhost", os.Getpid()))
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		return nil, err
	}
	return &celeryWorker{cmd: c}, nil
}

// rss is the worker's proportional set size (PSS) plus its children's, so
// that pages shared after fork count once.
func (w *celeryWorker) rss() float64 {
	pid := w.cmd.Process.Pid
	total := pidPSS(pid)
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)); err == nil {
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				total += pidPSS(c)
			}
		}
	}
	return total
}

func (w *celeryWorker) stop() {
	w.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { w.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// drain pre-fills n tasks, starts a worker and times from its first task to
// its last (its start-up is not counted).
func (s *celerySys) drain(ctx context.Context, n, conc int) (float64, float64, error) {
	if _, err := s.produce(ctx, n, 8); err != nil {
		return 0, 0, fmt.Errorf("fill: %w", err)
	}
	total := int64(n + 1)
	w, err := s.startWorker(ctx, conc)
	if err != nil {
		return 0, 0, err
	}
	defer w.stop()
	deadline := time.Now().Add(120 * time.Second)
	var t0 time.Time
	var v0 int64
	for {
		v := s.done(ctx)
		if v > 0 && t0.IsZero() {
			t0, v0 = time.Now(), v
		}
		if v >= total {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("%d of %d tasks ran", v, total)
		}
		time.Sleep(time.Millisecond)
	}
	el := time.Since(t0)
	return float64(total-v0) / el.Seconds(), w.rss(), nil
}

func (s *celerySys) latency(ctx context.Context, rate int, dur time.Duration) ([]int64, error) {
	w, err := s.startWorker(ctx, 8)
	if err != nil {
		return nil, err
	}
	defer w.stop()
	// Wait until the worker runs a task, then let it idle.
	if _, err := s.produce(ctx, 0, 1); err != nil {
		return nil, err
	}
	for i := 0; s.done(ctx) < 1; i++ {
		if i > 30000 {
			return nil, errors.New("worker did not start")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	s.stats.Del(ctx, s.prefix+":lat")
	if err := s.cmd(ctx, "producer.py", "latency", strconv.Itoa(rate), fmt.Sprint(dur.Seconds())).Run(); err != nil {
		return nil, err
	}
	total := int64(float64(rate)*dur.Seconds()) + 1
	deadline := time.Now().Add(60 * time.Second)
	for s.stats.LLen(ctx, s.prefix+":lat").Val() < total {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d latency tasks ran", s.stats.LLen(ctx, s.prefix+":lat").Val(), total)
		}
		time.Sleep(5 * time.Millisecond)
	}
	vals, err := s.stats.LRange(ctx, s.prefix+":lat", 0, -1).Result()
	if err != nil {
		return nil, err
	}
	lat := make([]int64, 0, len(vals))
	for _, v := range vals {
		if x, err := strconv.ParseInt(v, 10, 64); err == nil {
			lat = append(lat, x)
		}
	}
	return lat, nil
}

func (s *celerySys) close(ctx context.Context) {
	s.stats.Del(ctx, s.prefix+":done", s.prefix+":lat")
	s.stats.Close()
	if s.rdb != nil {
		s.rdb.FlushDB(ctx)
		s.rdb.Close()
	}
	if s.conn != nil {
		if ch, err := s.conn.Channel(); err == nil {
			ch.QueueDelete(s.queue, false, false, false)
			ch.ExchangeDelete(s.queue, false, false)
		}
		s.conn.Close()
	}
}
