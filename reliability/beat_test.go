//go:build reliability

package reliability_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/beat"
	"github.com/taskgen/taskgen/runtime/driver"
)

var (
	beatBinOnce sync.Once
	beatBin     string
)

// beatSetup is one broker configuration of the beat tests: the broker, and
// the backend holding the schedule's state ("" for the broker itself).
type beatSetup struct {
	name, broker, backend string
}

func beatSetups(t *testing.T) []beatSetup {
	_, redisURL := privateRedis(t)
	_, backend := privateRedis(t)
	return []beatSetup{
		{"redis", redisURL, ""},                   // the Redis broker holds the state
		{"rabbitmq", testenv.AMQPURL(t), backend}, // RabbitMQ + the Redis result backend
	}
}

type beatProc struct {
	holder string
	cmd    *exec.Cmd
	done   chan struct{}
}

func startBeat(t *testing.T, s beatSetup, key, queue, holder, entries string) *beatProc {
	t.Helper()
	beatBinOnce.Do(func() {
		beatBin = filepath.Join(suiteDir, "relbeat")
		out, err := exec.Command("go", "build", "-o", beatBin, "./internal/relbeat").CombinedOutput()
		require.NoError(t, err, "%s", out)
	})
	cmd := exec.Command(beatBin)
	cmd.Env = append(os.Environ(), "RELBEAT_BROKER="+s.broker, "RELBEAT_BACKEND="+s.backend, "RELBEAT_KEY="+key,
		"RELBEAT_HOLDER="+holder, "RELBEAT_QUEUE="+queue, "RELBEAT_LEASE=3s", "RELBEAT_EVERY=1s", "RELBEAT_ENTRIES="+entries)
	cmd.Stderr = logFile(t, "beat-"+holder)
	require.NoError(t, cmd.Start())
	p := &beatProc{holder: holder, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.signal(syscall.SIGCONT); p.signal(syscall.SIGKILL); <-p.done })
	return p
}

func (p *beatProc) signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(sig)
	}
}

func (p *beatProc) stop(t *testing.T) {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("scheduler %s did not stop on SIGTERM", p.holder)
		p.signal(syscall.SIGKILL)
	}
}

// received is a message the test's consumer took from the queue.
type received struct {
	id string
	at time.Time
}

// consume acks every message on queue and records its task id.
func consume(t *testing.T, app *runtime.App, queue string) func() []received {
	ctx, cancel := context.WithCancel(context.Background())
	ds, err := app.Broker().Consume(ctx, []string{queue}, 64)
	require.NoError(t, err)
	var mu sync.Mutex
	var got []received
	done := make(chan struct{})
	go func() {
		defer close(done)
		for d := range ds {
			if m := d.Message(); m != nil {
				mu.Lock()
				got = append(got, received{m.Headers.ID, time.Now()})
				mu.Unlock()
			}
			_ = d.Ack()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func() []received {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

// slotsOf maps the received task ids back to entry's slots (ids are
// beat.SlotID(key, entry, slot)), counting those received twice.
func slotsOf(got []received, key, entry string, from, to time.Time) (slots []time.Time, dups int) {
	byID := map[string]time.Time{}
	for t := from.Truncate(time.Second); !t.After(to); t = t.Add(time.Second) {
		byID[beat.SlotID(key, entry, t)] = t
	}
	seen := map[string]bool{}
	for _, r := range got {
		slot, ok := byID[r.id]
		if !ok {
			continue
		}
		if seen[r.id] {
			dups++
			continue
		}
		seen[r.id] = true
		slots = append(slots, slot)
	}
	slices.SortFunc(slots, func(a, b time.Time) int { return a.Compare(b) })
	return slots, dups
}

func maxGap(slots []time.Time) time.Duration {
	var g time.Duration
	for i := 1; i < len(slots); i++ {
		g = max(g, slots[i].Sub(slots[i-1]))
	}
	return g
}

func scheduleStore(t *testing.T, app *runtime.App) driver.ScheduleStore {
	if st, ok := app.Backend().(driver.ScheduleStore); ok {
		return st
	}
	st, ok := app.Broker().(driver.ScheduleStore)
	require.True(t, ok)
	return st
}

func beatApp(t *testing.T, s beatSetup) *runtime.App {
	log, _ := logger(t, "beat-consumer", 0)
	app, err := runtime.New(runtime.Config{Broker: s.broker, Backend: s.backend, Logger: log, PublishTimeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	return app
}

func leaderOf(t *testing.T, st driver.ScheduleStore, key string, procs []*beatProc) *beatProc {
	for range 100 {
		l, err := st.LeaseInfo(context.Background(), key)
		require.NoError(t, err)
		for _, p := range procs {
			if p.holder == l.Holder {
				return p
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no scheduler holds the lease")
	return nil
}

// TestBeat_FailOver: three scheduler processes run one schedule with an
// entry every second for two minutes; the leader is SIGKILLed at 30 s (and
// replaced), the next leader SIGSTOPped at 60 s for 8 s (its 3 s lease
// expires, another takes over, then it resumes) and the leader then is
// SIGKILLed at 90 s. Each slot is sent at most once, and the longest gap
// between sent slots is at most the lease time plus one interval.
func TestBeat_FailOver(t *testing.T) {
	for _, s := range beatSetups(t) {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			const lease = 3 * time.Second
			key, queue := "rel-"+randID(), "rel.beat."+randID()
			app := beatApp(t, s)
			st := scheduleStore(t, app)
			got := consume(t, app, queue)
			start := time.Now()
			procs := []*beatProc{
				startBeat(t, s, key, queue, "s0", "tick:once"),
				startBeat(t, s, key, queue, "s1", "tick:once"),
				startBeat(t, s, key, queue, "s2", "tick:once"),
			}
			at := func(d time.Duration) { time.Sleep(time.Until(start.Add(d))) }

			at(30 * time.Second)
			killed := leaderOf(t, st, key, procs)
			killed.signal(syscall.SIGKILL)
			t.Logf("30 s: SIGKILL leader %s", killed.holder)
			procs = append(procs, startBeat(t, s, key, queue, "s3", "tick:once"))

			at(60 * time.Second)
			paused := leaderOf(t, st, key, procs)
			require.NotEqual(t, killed.holder, paused.holder)
			paused.signal(syscall.SIGSTOP)
			t.Logf("60 s: SIGSTOP leader %s for 8 s", paused.holder)
			at(68 * time.Second)
			paused.signal(syscall.SIGCONT)

			at(90 * time.Second)
			second := leaderOf(t, st, key, procs)
			second.signal(syscall.SIGKILL)
			t.Logf("90 s: SIGKILL leader %s", second.holder)

			at(120 * time.Second)
			for _, p := range procs {
				p.stop(t)
			}
			time.Sleep(2 * time.Second)
			slots, dups := slotsOf(got(), key, "tick", start.Add(-time.Second), time.Now())
			gap := maxGap(slots)
			t.Logf("%d slots sent, %d twice, longest gap %v", len(slots), dups, gap)
			assert.Zero(t, dups, "slots sent twice")
			assert.Equal(t, len(slots), len(got()), "messages that are no slot of the entry, or duplicates")
			assert.LessOrEqual(t, gap, lease+time.Second, "gap at take-over")
			assert.GreaterOrEqual(t, len(slots), 100, "too few slots in two minutes")
			report(t, figure{Scenario: "beat: 3 schedulers, entry every 1 s for 2 min; leader SIGKILLed twice, one SIGSTOPped 8 s", Broker: s.name,
				Tasks: int64(len(slots)), Duplicates: int64(dups), Notes: fmt.Sprintf("longest gap between slots %v (lease %v)", gap, lease)})
		})
	}
}

// TestBeat_RestartCatchUp: three schedulers run entries with each
// catch-up policy; all stop for 6 s, then three start again. skip sends
// none of the slots missed while down, once exactly one, all every one.
func TestBeat_RestartCatchUp(t *testing.T) {
	for _, s := range beatSetups(t) {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			key, queue := "rel-"+randID(), "rel.beat."+randID()
			app := beatApp(t, s)
			got := consume(t, app, queue)
			const entries = "skip:skip,once:once,all:all"
			start := time.Now()
			var procs []*beatProc
			for i := range 3 {
				procs = append(procs, startBeat(t, s, key, queue, fmt.Sprintf("a%d", i), entries))
			}
			time.Sleep(8 * time.Second)
			for _, p := range procs {
				p.stop(t)
			}
			// Restart half-way between two slots, so the slots sent at
			// take-over (catch-up: late by about half a second or more)
			// stand apart from the slots sent on time.
			time.Sleep(time.Until(time.Now().Add(6 * time.Second).Truncate(time.Second).Add(500 * time.Millisecond)))
			restart := time.Now()
			before := got()
			for i := range 3 {
				procs = append(procs, startBeat(t, s, key, queue, fmt.Sprintf("b%d", i), entries))
			}
			time.Sleep(6 * time.Second)
			for _, p := range procs[3:] {
				p.stop(t)
			}
			time.Sleep(time.Second)
			all := got()
			for _, entry := range []string{"skip", "once", "all"} {
				pre, _ := slotsOf(before, key, entry, start.Add(-time.Second), restart)
				require.NotEmpty(t, pre, entry)
				last := pre[len(pre)-1]
				slots, dups := slotsOf(all, key, entry, start.Add(-time.Second), time.Now())
				assert.Zero(t, dups, entry)
				// Catch-up messages: slots after the stop, received more
				// than 300 ms after their time.
				recv := map[string]time.Time{}
				for _, r := range all {
					if _, ok := recv[r.id]; !ok {
						recv[r.id] = r.at
					}
				}
				var down int
				for _, sl := range slots {
					if sl.After(last) && recv[beat.SlotID(key, entry, sl)].Sub(sl) > 300*time.Millisecond {
						down++
					}
				}
				missed := int(restart.Sub(last) / time.Second)
				t.Logf("%s: %d of the %d slots missed while down sent at take-over", entry, down, missed)
				switch entry {
				case "skip":
					assert.Zero(t, down, "skip sent missed slots")
				case "once":
					assert.Equal(t, 1, down, "once must send exactly one of the missed slots")
				case "all":
					assert.Equal(t, time.Second, maxGap(slots), "all must send every missed slot")
					assert.GreaterOrEqual(t, down, 5)
				}
				report(t, figure{Scenario: "beat: restart of all schedulers after 6 s, catch-up " + entry, Broker: s.name,
					Tasks: int64(len(slots)), Duplicates: int64(dups), Notes: fmt.Sprintf("%d of %d missed slots sent", down, missed)})
			}
		})
	}
}
