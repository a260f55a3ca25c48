package redis_test

import (
	"context"
	goruntime "runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/redis"
)

// benchMsg is a typical task message: msgpack body, Celery's headers.
func benchMsg() *driver.Message {
	id := driver.NewID()
	m := &driver.Message{ContentType: driver.ContentTypeMsgpack, ContentEncoding: driver.ContentEncodingBinary,
		CorrelationID: id, DeliveryMode: 2,
		Headers: driver.TaskHeaders{Lang: "go", Task: "signup.send_welcome_email", ID: id, RootID: id,
			ArgsRepr: "('ann@example.com',)", KwargsRepr: "{}", Origin: "gen1234@bench"},
		Body: []byte("\x93\x91\xb0ann@example.com\x80\x84\xa9callbacks\xc0\xa8errbacks\xc0\xa5chain\xc0\xa5chord\xc0")}
	return m
}

const benchGoroutines = 8

func parallelism() int {
	p := benchGoroutines / runtimeGOMAXPROCS()
	return max(p, 1)
}

// BenchmarkEnqueue compares Publish (envelope built per call, concurrent
// calls pipelined) with go-redis LPUSH of ready-made envelope bytes of the
// same size, both from 8 goroutines.
func BenchmarkEnqueue(b *testing.B) {
	raw := testURL(b, "", "")
	br := openBroker(b, raw)
	p := br.Options().GlobalKeyPrefix
	c := br.Client()
	ctx := context.Background()
	b.Cleanup(func() { c.Del(ctx, p+"bench") })

	b.Run("taskgen", func(b *testing.B) {
		m := benchMsg()
		b.ReportAllocs()
		b.SetParallelism(parallelism())
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := br.Publish(ctx, "bench", m); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.StopTimer()
		c.Del(ctx, p+"bench")
	})
	b.Run("raw-lpush", func(b *testing.B) {
		// The same bytes Publish writes.
		require := func(err error) {
			if err != nil {
				b.Fatal(err)
			}
		}
		require(br.Publish(ctx, "bench", benchMsg()))
		env, err := c.RPop(ctx, p+"bench").Bytes()
		require(err)
		rc := goredis.NewClient(c.Options())
		defer rc.Close()
		b.ReportAllocs()
		b.SetParallelism(parallelism())
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := rc.LPush(ctx, p+"bench", env).Err(); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.StopTimer()
		c.Del(ctx, p+"bench")
	})
}

// fill pushes n envelopes onto list.
func fill(b *testing.B, br *redis.Broker, queue string, n int) {
	b.Helper()
	ctx := context.Background()
	m := benchMsg()
	var wg sync.WaitGroup
	var left atomic.Int64
	left.Store(int64(n))
	for range 16 {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if err := br.Publish(ctx, queue, m); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkDrain compares consuming with kombu's ack emulation (Consume,
// decode, Ack from 8 goroutines, until the unacked hash is empty again) with
// a raw reliable loop (BLMOVE to a processing list, then LREM) from 8
// goroutines, on the same server.
func BenchmarkDrain(b *testing.B) {
	raw := testURL(b, "", "")
	br := openBroker(b, raw)
	p := br.Options().GlobalKeyPrefix
	c := br.Client()
	ctx := context.Background()

	b.Run("taskgen", func(b *testing.B) {
		b.StopTimer()
		fill(b, br, "drain", b.N)
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		b.ReportAllocs()
		b.StartTimer()
		ds, err := br.Consume(cctx, []string{"drain"}, 512)
		if err != nil {
			b.Fatal(err)
		}
		var got atomic.Int64
		done := make(chan struct{})
		var wg sync.WaitGroup
		for range benchGoroutines {
			wg.Go(func() {
				for d := range ds {
					if d.Message() == nil {
						b.Error(d.DecodeError())
					}
					if err := d.Ack(); err != nil {
						b.Error(err)
					}
					if got.Add(1) == int64(b.N) {
						close(done)
					}
				}
			})
		}
		<-done
		for c.HLen(ctx, p+"unacked").Val() > 0 {
			time.Sleep(100 * time.Microsecond)
		}
		b.StopTimer()
		cancel()
		wg.Wait()
	})
	b.Run("raw-reliable", func(b *testing.B) {
		b.StopTimer()
		fill(b, br, "drain", b.N)
		rc := goredis.NewClient(c.Options())
		defer rc.Close()
		b.ReportAllocs()
		b.StartTimer()
		var left atomic.Int64
		left.Store(int64(b.N))
		var wg sync.WaitGroup
		for range benchGoroutines {
			wg.Go(func() {
				for left.Add(-1) >= 0 {
					v, err := rc.BLMove(ctx, p+"drain", p+"drain.processing", "RIGHT", "LEFT", time.Second).Result()
					if err != nil {
						b.Error(err)
						return
					}
					if err := rc.LRem(ctx, p+"drain.processing", 1, v).Err(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		b.StopTimer()
	})
}

func runtimeGOMAXPROCS() int { return goruntime.GOMAXPROCS(0) }

// BenchmarkLatency measures publish→delivery latency with an idle consumer,
// one message at a time, side by side with a raw LPUSH→BLMOVE loop on the
// same server; it reports the median and p99. The clock stops when the
// receiving goroutine has the message, not when Publish returns.
func BenchmarkLatency(b *testing.B) {
	br := openBroker(b, testURL(b, "", ""))
	p := br.Options().GlobalKeyPrefix
	m := benchMsg()
	report := func(b *testing.B, lat []time.Duration) {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
	}
	b.Run("taskgen", func(b *testing.B) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ds, err := br.Consume(ctx, []string{"lat"}, 16)
		if err != nil {
			b.Fatal(err)
		}
		lat := make([]time.Duration, 0, b.N)
		time.Sleep(50 * time.Millisecond) // let the consumer block
		for b.Loop() {
			start := time.Now()
			go func() { _ = br.Publish(ctx, "lat", m) }()
			d := <-ds
			lat = append(lat, time.Since(start))
			_ = d.Ack()
			time.Sleep(200 * time.Microsecond) // idle again
		}
		report(b, lat)
	})
	b.Run("raw-blmove", func(b *testing.B) {
		c := br.Client()
		rc := goredis.NewClient(c.Options())
		defer rc.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		got := make(chan struct{})
		go func() {
			for ctx.Err() == nil {
				if _, err := rc.BLMove(ctx, p+"rawlat", p+"rawlat.processing", "RIGHT", "LEFT", time.Second).Result(); err == nil {
					got <- struct{}{}
				}
			}
		}()
		env := make([]byte, 600)
		lat := make([]time.Duration, 0, b.N)
		time.Sleep(50 * time.Millisecond)
		for b.Loop() {
			start := time.Now()
			go func() { _ = c.LPush(ctx, p+"rawlat", env).Err() }()
			<-got
			lat = append(lat, time.Since(start))
			_ = c.LRem(ctx, p+"rawlat.processing", 1, env).Err()
			time.Sleep(200 * time.Microsecond)
		}
		report(b, lat)
	})
}

// The Ratios benchmark alternates short rounds of taskgen and of the raw
// loops on the same server, so that load changes on a shared machine hit
// both alike, and reports throughputs and the ratios. It moves b.N
// messages per variant (at least 5 rounds of 4000).
func BenchmarkRatios(b *testing.B) {
	const rounds = 5
	perRound := max(b.N/rounds, 4000)
	br := openBroker(b, testURL(b, "", ""))
	p := br.Options().GlobalKeyPrefix
	c := br.Client()
	rc := goredis.NewClient(c.Options())
	defer rc.Close()
	ctx := context.Background()
	m := benchMsg()
	if err := br.Publish(ctx, "env", m); err != nil {
		b.Fatal(err)
	}
	env, err := c.RPop(ctx, p+"env").Bytes()
	if err != nil {
		b.Fatal(err)
	}
	parallel := func(n int, fn func() error) time.Duration {
		var left atomic.Int64
		left.Store(int64(n))
		var wg sync.WaitGroup
		start := time.Now()
		for range benchGoroutines {
			wg.Go(func() {
				for left.Add(-1) >= 0 {
					if err := fn(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	var tEnq, rEnq, tDrain, rDrain time.Duration
	{
		for range rounds {
			tEnq += parallel(perRound, func() error { return br.Publish(ctx, "q1", m) })
			rEnq += parallel(perRound, func() error { return rc.LPush(ctx, p+"q2", env).Err() })

			// Drain q1 with Consume + Ack (until the unacked hash is empty).
			start := time.Now()
			cctx, cancel := context.WithCancel(ctx)
			ds, err := br.Consume(cctx, []string{"q1"}, 512)
			if err != nil {
				b.Fatal(err)
			}
			var got atomic.Int64
			done := make(chan struct{})
			var wg sync.WaitGroup
			for range benchGoroutines {
				wg.Go(func() {
					for d := range ds {
						if d.Message() == nil {
							b.Error(d.DecodeError())
						}
						_ = d.Ack()
						if got.Add(1) == int64(perRound) {
							close(done)
						}
					}
				})
			}
			<-done
			for c.HLen(ctx, p+"unacked").Val() > 0 {
				time.Sleep(100 * time.Microsecond)
			}
			tDrain += time.Since(start)
			cancel()
			wg.Wait()

			// Drain q2 with BLMOVE + LREM.
			rDrain += parallel(perRound, func() error {
				v, err := rc.BLMove(ctx, p+"q2", p+"q2.processing", "RIGHT", "LEFT", time.Second).Result()
				if err != nil {
					return err
				}
				return rc.LRem(ctx, p+"q2.processing", 1, v).Err()
			})
		}
	}
	n := float64(rounds * perRound)
	b.ReportMetric(n/tEnq.Seconds(), "taskgen-enq/s")
	b.ReportMetric(n/rEnq.Seconds(), "raw-lpush/s")
	b.ReportMetric(rEnq.Seconds()/tEnq.Seconds(), "enqueue-ratio")
	b.ReportMetric(n/tDrain.Seconds(), "taskgen-drain/s")
	b.ReportMetric(n/rDrain.Seconds(), "raw-reliable/s")
	b.ReportMetric(rDrain.Seconds()/tDrain.Seconds(), "drain-ratio")
}
