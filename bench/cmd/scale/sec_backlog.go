package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	goredis "github.com/redis/go-redis/v9"
)

// celeryMessage is a tiny Python script: Celery 5 sends one bench.noop to
// the Redis broker of argv[1], as `noop.delay(argv[2])` does.
const celeryMessage = `import sys
from celery import Celery
app = Celery("bench", broker=sys.argv[1])
app.conf.broker_connection_retry_on_startup = True
@app.task(name="bench.noop", ignore_result=True)
def noop(ts):
    pass
noop.delay(sys.argv[2])
`

type backlogRow struct {
	name           string
	n              int
	msgBytes       int64
	perTask        float64 // used_memory delta / n
	enq, drain     time.Duration
	enqNA, drainNA string
}

func secBacklog(ctx context.Context, e *env, r *report) error {
	rdbFor := func(db int) *goredis.Client { return goredis.NewClient(&goredis.Options{Addr: e.redisAddr, DB: db}) }
	var rows []backlogRow
	n := *flagBack

	// taskgen
	{
		flushDB(ctx, e.redisAddr, dbBacklog)
		c := rdbFor(dbBacklog)
		defer c.Close()
		q := "scale.backlog"
		tg, err := newTG(e.redisURL(dbBacklog), q)
		if err != nil {
			return err
		}
		m0, err := usedMemory(ctx, c)
		if err != nil {
			return err
		}
		el, err := tg.fill(ctx, n, 64, tsArg)
		tg.close()
		if err != nil {
			return fmt.Errorf("taskgen enqueue: %w", err)
		}
		m1, _ := usedMemory(ctx, c)
		var size int64
		if s, err := c.LIndex(ctx, q, 0).Result(); err == nil {
			size = int64(len(s))
		}
		row := backlogRow{name: "taskgen", n: n, msgBytes: size, perTask: float64(m1-m0) / float64(n), enq: el}
		fmt.Fprintf(os.Stderr, "backlog taskgen: enqueue %s, %.0f B/task\n", el, row.perTask)
		rate, _, err := drainRun(1, n, workerSpec{system: "taskgen", broker: e.redisURL(dbBacklog), queues: []string{q}, conc: 8},
			func(int) error { return nil })
		if err != nil {
			return fmt.Errorf("taskgen drain: %w", err)
		}
		row.drain = time.Duration(float64(n) / rate * 1e9)
		fmt.Fprintf(os.Stderr, "backlog taskgen: drain %s\n", row.drain)
		rows = append(rows, row)
		flushDB(ctx, e.redisAddr, dbBacklog)
	}

	// Celery's envelope: one message sent by Celery, stored n times.
	{
		flushDB(ctx, e.redisAddr, dbBacklogC)
		c := rdbFor(dbBacklogC)
		defer c.Close()
		script := filepath.Join(os.TempDir(), fmt.Sprintf("scale-celery-%d.py", os.Getpid()))
		if err := os.WriteFile(script, []byte(celeryMessage), 0o644); err != nil {
			return err
		}
		defer os.Remove(script)
		out, err := exec.CommandContext(ctx, e.python, script, e.redisURL(dbBacklogC), now()).CombinedOutput()
		if err != nil {
			return fmt.Errorf("celery: %v: %s", err, out)
		}
		msg, err := c.LIndex(ctx, "celery", 0).Result()
		if err != nil {
			return fmt.Errorf("celery's message: %w", err)
		}
		flushDB(ctx, e.redisAddr, dbBacklogC)
		m0, _ := usedMemory(ctx, c)
		vals := make([]any, 1000)
		for i := range vals {
			vals[i] = msg
		}
		for i := 0; i < n; i += 10 * len(vals) {
			p := c.Pipeline()
			for j := i; j < min(n, i+10*len(vals)); j += len(vals) {
				p.LPush(ctx, "celery", vals[:min(len(vals), n-j)]...)
			}
			if _, err := p.Exec(ctx); err != nil {
				return err
			}
		}
		m1, _ := usedMemory(ctx, c)
		rows = append(rows, backlogRow{name: "Celery 5 envelope (kombu)", n: n, msgBytes: int64(len(msg)), perTask: float64(m1-m0) / float64(n),
			enqNA: "not timed (copies of one message sent by Celery)", drainNA: "not timed"})
		flushDB(ctx, e.redisAddr, dbBacklogC)
	}

	// asynq
	if na := *flagBackA; na > 0 {
		flushDB(ctx, e.redisAddr, dbBacklogA)
		c := rdbFor(dbBacklogA)
		defer c.Close()
		opt, _ := asynqOpt(e.redisURL(dbBacklogA))
		ac := asynq.NewClient(opt)
		m0, _ := usedMemory(ctx, c)
		el, err := asynqFill(ctx, ac, "scalebacklog", na, 64, tsArg)
		ac.Close()
		if err != nil {
			return fmt.Errorf("asynq enqueue: %w", err)
		}
		m1, _ := usedMemory(ctx, c)
		var size int64
		if ids, _ := c.LRange(ctx, "asynq:{scalebacklog}:pending", 0, 0).Result(); len(ids) == 1 {
			size = c.MemoryUsage(ctx, "asynq:{scalebacklog}:t:"+ids[0]).Val()
		}
		row := backlogRow{name: "asynq", n: na, msgBytes: size, perTask: float64(m1-m0) / float64(na), enq: el}
		fmt.Fprintf(os.Stderr, "backlog asynq: enqueue %s, %.0f B/task\n", el, row.perTask)
		rate, _, err := drainRun(1, na, workerSpec{system: "asynq", broker: e.redisURL(dbBacklogA), queues: []string{"scalebacklog"}, conc: 8},
			func(int) error { return nil })
		if err != nil {
			row.drainNA = "failed: " + err.Error()
		} else {
			row.drain = time.Duration(float64(na) / rate * 1e9)
		}
		rows = append(rows, row)
		flushDB(ctx, e.redisAddr, dbBacklogA)
	}

	r.printf("\nA backlog of N no-op tasks queued on one Redis (64 producers), then drained by one worker process of concurrency 8. " +
		"Memory per task is the growth of INFO memory's `used_memory` over the N tasks divided by N; message size is one stored message " +
		"(taskgen, Celery: the list element; asynq: `MEMORY USAGE` of its task hash, which its pending list references). " +
		"Celery's row stores N copies of one message that Celery 5.2 itself sent (`noop.delay(ts)` on the same Redis), so it shows its envelope's footprint, not Celery's speed. One run.\n\n")
	r.printf("| system | N | message size | broker memory per task | enqueue | enqueue rate | drain | drain rate |\n|---|---|---|---|---|---|---|---|\n")
	var cats []string
	var ys []float64
	for _, row := range rows {
		enq, enqRate, drain, drainRate := row.enqNA, "", row.drainNA, ""
		if row.enq > 0 {
			enq, enqRate = row.enq.Round(10*time.Millisecond).String(), fmtRate(float64(row.n)/row.enq.Seconds())+"/s"
		}
		if row.drain > 0 {
			drain, drainRate = row.drain.Round(10*time.Millisecond).String(), fmtRate(float64(row.n)/row.drain.Seconds())+"/s"
		}
		r.printf("| %s | %d | %d B | %.0f B | %s | %s | %s | %s |\n", row.name, row.n, row.msgBytes, row.perTask, enq, enqRate, drain, drainRate)
		cats = append(cats, strings.TrimSuffix(row.name, " (kombu)"))
		ys = append(ys, row.perTask)
	}
	file, link := r.plot("backlog.png")
	if err := plotBars(file, fmt.Sprintf("Redis memory per queued task (backlog of %d)", n), "bytes per task (used_memory delta / N)", cats, []series{{name: "bytes per queued task", y: ys}}); err != nil {
		return err
	}
	r.printf("\n![Redis memory per queued task](%s)\n", link)
	return nil
}
