package beat_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/beat"
	_ "github.com/taskgen/taskgen/runtime/memory"
	_ "github.com/taskgen/taskgen/runtime/redis"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkScheduler_10kEntries runs one scheduler with 10 000 entries for
// 20 s and reports the fire lateness (publish time minus slot time) p50,
// p99 and max, the slots sent per second, and the process CPU time per
// wall second (the scheduler, its Redis client and the publishes). Run with
// -benchtime=1x (each iteration is a 20 s run):
//
//	scripts/testenv.sh run -- go test -run '^$' -bench Scheduler_10k -benchtime=1x ./runtime/beat/
func BenchmarkScheduler_10kEntries(b *testing.B) {
	for _, c := range []struct {
		name   string
		every  time.Duration
		broker func(b *testing.B) string
	}{
		{"redis/every-10s", 10 * time.Second, func(b *testing.B) string { return testenv.RedisURL(b) }},
		{"redis/every-60s", time.Minute, func(b *testing.B) string { return testenv.RedisURL(b) }},
		{"memory/every-10s", 10 * time.Second, func(*testing.B) string { return "memory://beat-bench" }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				benchSchedule(b, c.broker(b), c.every, 10000, 20*time.Second)
			}
		})
	}
}

func benchSchedule(b *testing.B, broker string, every time.Duration, n int, run time.Duration) {
	b.Helper()
	app, err := runtime.New(runtime.Config{Broker: broker, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer app.Close()
	queue := "beat-bench-" + fmt.Sprint(time.Now().UnixNano())
	entries := make([]beat.Entry, n)
	for i := range entries {
		entries[i] = beat.Every(fmt.Sprintf("e%05d", i), every, runtime.Named[int]("bench.noop", i), beat.Options(runtime.Queue(queue)))
	}
	s := beat.New(app, entries...)
	s.Key = queue
	start := time.Now()
	measureFrom := start.Add(2 * time.Second)
	var mu sync.Mutex
	var late []time.Duration
	s.OnSend = func(_ string, slot, sent time.Time) {
		if slot.After(measureFrom) {
			mu.Lock()
			late = append(late, sent.Sub(slot))
			mu.Unlock()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), run)
	defer cancel()
	cpu0, wall0 := cpuTime(), time.Now()
	b.ResetTimer()
	if err := s.Run(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	cpu, wall := cpuTime()-cpu0, time.Since(wall0)
	mu.Lock()
	defer mu.Unlock()
	if len(late) == 0 {
		b.Fatal("no slot sent")
	}
	slices.Sort(late)
	q := func(p float64) float64 { return float64(late[int(p*float64(len(late)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
	b.ReportMetric(float64(s.Stats().SlotsSent)/wall.Seconds(), "slots/s")
	b.ReportMetric(cpu.Seconds()/wall.Seconds()*1000, "cpu-ms/s")
	b.ReportMetric(0, "ns/op")
	if u, err := url.Parse(broker); err == nil && u.Scheme == "redis" {
		opt, err := goredis.ParseURL(broker)
		if err == nil {
			c := goredis.NewClient(opt)
			c.Del(context.Background(), queue) // the messages nobody consumes
			c.Close()
		}
	}
}
