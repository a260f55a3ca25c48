//go:build reliability

package reliability_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/reliability/tasks"
	"github.com/taskgen/taskgen/runtime"
)

// chordApp returns a producer app on broker with the Redis result backend
// (which counts chords).
func chordApp(t *testing.T, name, broker, backend string) *runtime.App {
	t.Helper()
	log, _ := logger(t, name, 0)
	app, err := runtime.New(runtime.Config{Broker: broker, Backend: backend, Logger: log, Hostname: name + "-" + randID() + "@localhost", PublishTimeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	return app
}

// bodyLines returns the sink's "body <tag> ..." lines.
func bodyLines(s sink, tag string) []string {
	var out []string
	for line, n := range s.counts() {
		if strings.HasPrefix(line, "body "+tag+" ") {
			for range n {
				out = append(out, line)
			}
		}
	}
	return out
}

// TestChord_Crash: a chord of acks_late members on 3 worker processes, one
// SIGKILLed every 0.7 s and restarted while the members run: no member is
// lost, and the body runs, every time with every member's result. It
// usually runs once; a duplicate member that finishes while the chord's
// keys still exist (between the completing member's count and its deleting
// the keys after sending the body) sends it again, as docs/decisions.md
// says (seen once in CI, on Redis, on 2026-12-08: 2 bodies). The figure
// counts extra bodies as duplicates.
func TestChord_Crash(t *testing.T) {
	for _, b := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"redis", func(t *testing.T) string {
			_, url := privateRedis(t)
			return withQuery(url, "visibility_timeout=2s&restore_interval=300ms")
		}},
		{"rabbitmq", func(t *testing.T) string { return testenv.AMQPURL(t) }},
	} {
		t.Run(b.name, func(t *testing.T) {
			const members, memberMS, workers, killEvery = 1000, 80, 3, 700 * time.Millisecond
			name := b.name
			brokerURL := b.url(t)
			_, backend := privateRedis(t)
			queue := "rel.chord." + randID()
			s := newSink(t)
			app := chordApp(t, "chord-producer", brokerURL, backend)
			env := map[string]string{"BROKER": brokerURL, "BACKEND": backend, "SINK": s.path, "QUEUES": queue, "CONCURRENCY": "8", "SHUTDOWN": "5s"}
			procs := make([]*worker, workers)
			for i := range procs {
				procs[i] = startWorker(t, fmt.Sprintf("chord-%s-%d", name, i), env)
			}
			ctx := ctxT(t, 4*time.Minute)
			q := runtime.Queue(queue)
			sigs := make([]runtime.Signature[int64], members)
			var want int64
			for i := range sigs {
				sigs[i] = tasks.ChordMember.Sig(int64(i), memberMS).With(q)
				want += int64(i)
			}
			tag := randID()[:8]
			start := time.Now()
			res, err := runtime.Chord(runtime.Group(sigs...), tasks.ChordBody.Partial(tag).With(q)).With(runtime.WithApp(app)).Delay(ctx)
			require.NoError(t, err)

			kills, restart := 0, 0
			for len(bodyLines(s, tag)) == 0 && ctx.Err() == nil && time.Since(start) < 3*time.Minute {
				time.Sleep(killEvery)
				if len(bodyLines(s, tag)) > 0 {
					break
				}
				i := kills % workers
				procs[i].kill()
				kills++
				restart++
				procs[i] = startWorker(t, fmt.Sprintf("chord-%s-%d-r%d", name, i, restart), env)
			}
			got, err := res.Get(ctx)
			require.NoError(t, err)
			elapsed := time.Since(start)
			time.Sleep(3 * time.Second) // a duplicate body would show by now
			for _, p := range procs {
				_, err := p.stop(15 * time.Second)
				require.NoError(t, err, "worker %s", p.name)
			}
			bodies := bodyLines(s, tag)
			c := s.counts()
			lostMembers, dupMembers := 0, 0
			for i := range members {
				switch n := c[fmt.Sprintf("member %d", i)]; {
				case n == 0:
					lostMembers++
				case n > 1:
					dupMembers += n - 1
				}
			}
			t.Logf("%s: chord of %d, %d SIGKILLs, %v, bodies %d, members lost %d, members run twice %d", name, members, kills, elapsed.Round(time.Millisecond), len(bodies), lostMembers, dupMembers)
			report(t, figure{Scenario: "chord of 1 000, SIGKILL every 0.7 s (3 procs)", Broker: name, Tasks: members + 1, Lost: int64(lostMembers),
				Duplicates: int64(len(bodies) - 1 + dupMembers), Notes: fmt.Sprintf("%d SIGKILLs, body ran %d×, done in %.1f s", kills, len(bodies), elapsed.Seconds())})
			require.GreaterOrEqual(t, kills, 2, "the workers were killed while the chord ran")
			require.Equal(t, want, got)
			require.NotEmpty(t, bodies, "the body runs")
			for _, b := range bodies {
				require.Equal(t, fmt.Sprintf("body %s %d %d", tag, members, want), b, "the body runs with every member's result")
			}
			require.Zero(t, lostMembers)
		})
	}
}

// TestChord_TenThousand: a chord of 10 000 members completes, on both
// brokers, with the body getting every result in order.
func TestChord_TenThousand(t *testing.T) {
	for _, b := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"redis", func(t *testing.T) string { _, url := privateRedis(t); return url }},
		{"rabbitmq", func(t *testing.T) string { return testenv.AMQPURL(t) }},
	} {
		t.Run(b.name, func(t *testing.T) {
			const members = 10000
			brokerURL := b.url(t)
			_, backend := privateRedis(t)
			queue := "rel.chord10k." + randID()
			s := newSink(t)
			app := chordApp(t, "chord10k", brokerURL, backend)
			inProcessWorker(t, app, s, runtime.WorkerOptions{Queues: []string{queue}, Concurrency: 16})
			ctx := ctxT(t, 3*time.Minute)
			q := runtime.Queue(queue)
			sigs := make([]runtime.Signature[int64], members)
			var want int64
			for i := range sigs {
				sigs[i] = tasks.ChordMember.Sig(int64(i), 0).With(q)
				want += int64(i)
			}
			tag := randID()[:8]
			start := time.Now()
			res, err := runtime.Chord(runtime.Group(sigs...), tasks.ChordBody.Partial(tag).With(q)).With(runtime.WithApp(app)).Delay(ctx)
			require.NoError(t, err)
			got, err := res.Get(ctx)
			require.NoError(t, err)
			elapsed := time.Since(start)
			require.Equal(t, want, got)
			require.Eventually(t, func() bool { return len(bodyLines(s, tag)) == 1 }, 10*time.Second, 50*time.Millisecond)
			require.Equal(t, []string{fmt.Sprintf("body %s %d %d", tag, members, want)}, bodyLines(s, tag))
			t.Logf("%s: chord of %d members completed in %v", b.name, members, elapsed.Round(time.Millisecond))
			report(t, figure{Scenario: "chord of 10 000", Broker: b.name, Tasks: members + 1, Notes: fmt.Sprintf("completed in %.1f s", elapsed.Seconds())})
		})
	}
}
