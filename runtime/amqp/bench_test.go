package amqp_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime/amqp"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
)

// benchMessage is a task message as runtime.App builds it for add(2, 3, 1).
func benchMessage(b testing.TB) *driver.Message {
	body, err := codegen.AppendBody(nil, "msgpack", &addArgs{x: 2, y: 3, z: 1}, nil)
	require.NoError(b, err)
	id := driver.NewID()
	return &driver.Message{ContentType: driver.ContentTypeMsgpack, ContentEncoding: driver.ContentEncodingBinary,
		CorrelationID: id, DeliveryMode: 2, Body: body,
		Headers: driver.TaskHeaders{Lang: "go", Task: "tasks.add", ID: id, RootID: id, ArgsRepr: "(2, 3, 1)", KwargsRepr: "{}", Origin: "gen1@bench"}}
}

// parallel runs n goroutines that together call op b.N times.
func parallel(b *testing.B, n int, op func(worker int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range n {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := op(w); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

func purge(b testing.TB, ch *amqp091.Channel, q string) {
	_, err := ch.QueueDeclare(q, true, false, false, false, nil)
	require.NoError(b, err)
	_, err = ch.QueuePurge(q, false)
	require.NoError(b, err)
}

// BenchmarkEnqueue compares confirmed publishing: taskgen's Publish (shared
// confirm channels, each caller waiting for its own confirm) against a raw
// amqp091 loop (one confirm channel per producer, publish then wait), at
// the same number of concurrent producers.
func BenchmarkEnqueue(b *testing.B) {
	raw := testenv.AMQPURL(b)
	q := queueName(b)
	purgeLater(b, raw, q)
	_, admin := rawConn(b, raw)
	purge(b, admin, q)
	m := benchMessage(b)
	for _, producers := range []int{8, 64} {
		b.Run(fmt.Sprintf("taskgen/producers=%d", producers), func(b *testing.B) {
			br := openBroker(b, raw)
			require.NoError(b, br.Publish(context.Background(), q, m)) // connect and declare
			b.ReportAllocs()
			b.ResetTimer()
			parallel(b, producers, func(int) error {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				return br.Publish(ctx, q, m)
			})
			b.StopTimer()
			purge(b, admin, q)
		})
		b.Run(fmt.Sprintf("raw/producers=%d", producers), func(b *testing.B) {
			conn, _ := rawConn(b, raw)
			p, err := publishingOf(m)
			require.NoError(b, err)
			chans := make([]*amqp091.Channel, producers)
			for i := range chans {
				chans[i], err = conn.Channel()
				require.NoError(b, err)
				require.NoError(b, chans[i].Confirm(false))
			}
			b.ReportAllocs()
			b.ResetTimer()
			parallel(b, producers, func(w int) error {
				dc, err := chans[w].PublishWithDeferredConfirm("", q, false, false, p)
				if err != nil {
					return err
				}
				if !dc.Wait() {
					return fmt.Errorf("nack")
				}
				return nil
			})
			b.StopTimer()
			purge(b, admin, q)
		})
	}
}

// publishingOf is the raw equivalent of what taskgen publishes for m.
func publishingOf(m *driver.Message) (amqp091.Publishing, error) {
	h := amqp091.Table{}
	m.Headers.Range(func(k string, v any) {
		switch x := v.(type) {
		case int64:
			v = int32(x)
		case []any:
			v = []any{nil, nil}
		}
		h[k] = v
	})
	return amqp091.Publishing{Headers: h, ContentType: m.ContentType, ContentEncoding: m.ContentEncoding, DeliveryMode: 2,
		CorrelationId: m.CorrelationID, Body: m.Body}, h.Validate()
}

// fill publishes n copies of m to q with pipelined confirms.
func fill(b *testing.B, conn *amqp091.Connection, q string, m *driver.Message, n int) {
	fillT(b, conn, q, m, n)
}

func fillT(b testing.TB, conn *amqp091.Connection, q string, m *driver.Message, n int) {
	p, err := publishingOf(m)
	require.NoError(b, err)
	ch, err := conn.Channel()
	require.NoError(b, err)
	defer ch.Close()
	require.NoError(b, ch.Confirm(false))
	const window = 1000
	var pending []*amqp091.DeferredConfirmation
	for i := range n {
		dc, err := ch.PublishWithDeferredConfirm("", q, false, false, p)
		require.NoError(b, err)
		pending = append(pending, dc)
		if len(pending) == window || i == n-1 {
			for _, dc := range pending {
				require.True(b, dc.Wait())
			}
			pending = pending[:0]
		}
	}
}

// BenchmarkDrain compares consuming and acknowledging b.N ready messages
// (prefetch 512): taskgen's Consume (message mapping, batched multiple acks)
// against a raw amqp091 consume loop acknowledging each message.
// Run with a fixed count, e.g. -benchtime=20000x.
func BenchmarkDrain(b *testing.B) {
	raw := testenv.AMQPURL(b)
	q := queueName(b)
	purgeLater(b, raw, q)
	conn, admin := rawConn(b, raw)
	purge(b, admin, q)
	m := benchMessage(b)
	const prefetch = 512
	b.Run("taskgen", func(b *testing.B) {
		fill(b, conn, q, m, b.N)
		br := openBroker(b, raw)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		b.ReportAllocs()
		b.ResetTimer()
		ds, err := br.Consume(ctx, []string{q}, prefetch)
		require.NoError(b, err)
		for range b.N {
			d := <-ds
			if d.Message() == nil {
				b.Fatal(d.DecodeError())
			}
			if err := d.Ack(); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		cancel()
		for range ds {
		}
		require.NoError(b, br.Close())
		n, err := admin.QueueDeclarePassive(q, true, false, false, false, nil)
		require.NoError(b, err)
		require.Zero(b, n.Messages+n.Consumers)
	})
	b.Run("raw", func(b *testing.B) {
		fill(b, conn, q, m, b.N)
		c2, ch := rawConn(b, raw)
		b.ReportAllocs()
		b.ResetTimer()
		require.NoError(b, ch.Qos(prefetch, 0, false))
		ds, err := ch.Consume(q, "", false, false, false, false, nil)
		require.NoError(b, err)
		for range b.N {
			d := <-ds
			if err := d.Ack(false); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		require.NoError(b, c2.Close())
	})
}

// cpuTimes returns the CPU time used so far by this process and by the
// test RabbitMQ node (0 when its pid is unknown): unlike wall-clock rates
// these barely depend on what else runs on the machine.
func cpuTimes() (client, broker time.Duration) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		client = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	pid, err := os.ReadFile(filepath.Join(os.Getenv("TASKGEN_TESTENV_DIR"), "rabbitmq", "rabbitmq.pid"))
	if err != nil {
		return client, 0
	}
	stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat")
	if err != nil {
		return client, 0
	}
	// Fields after the parenthesised command name; utime and stime are 14 and 15.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 13 {
		return client, 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return client, time.Duration(ut+st) * (time.Second / 100) // USER_HZ
}

type sample struct{ wall, client, broker time.Duration }

func measure(fn func()) sample {
	c0, b0 := cpuTimes()
	start := time.Now()
	fn()
	wall := time.Since(start)
	c1, b1 := cpuTimes()
	return sample{wall, c1 - c0, b1 - b0}
}

// rounds runs b.N rounds of taskgen then raw, each over n messages, and
// reports both rates, their ratio (raw time / taskgen time: above 1 means
// taskgen is faster), and the CPU time per message of this process and of
// the broker: on a shared machine alternating rounds compares the two under
// the same load.
func rounds(b *testing.B, n int, tg, rw func(n int) sample) {
	var t, r sample
	for range b.N {
		s := tg(n)
		t.wall, t.client, t.broker = t.wall+s.wall, t.client+s.client, t.broker+s.broker
		s = rw(n)
		r.wall, r.client, r.broker = r.wall+s.wall, r.client+s.client, r.broker+s.broker
	}
	total := float64(n * b.N)
	b.ReportMetric(total/t.wall.Seconds(), "taskgen-msg/s")
	b.ReportMetric(total/r.wall.Seconds(), "raw-msg/s")
	b.ReportMetric(r.wall.Seconds()/t.wall.Seconds(), "ratio")
	b.ReportMetric(float64(t.client.Microseconds())/total, "taskgen-client-µs/msg")
	b.ReportMetric(float64(r.client.Microseconds())/total, "raw-client-µs/msg")
	if t.broker > 0 {
		b.ReportMetric(float64(t.broker.Microseconds())/total, "taskgen-broker-µs/msg")
		b.ReportMetric(float64(r.broker.Microseconds())/total, "raw-broker-µs/msg")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkCompareEnqueue alternates rounds of confirmed publishing, taskgen
// vs the raw loop, at 8 and 64 producers (run with -benchtime=5x).
func BenchmarkCompareEnqueue(b *testing.B) {
	raw := testenv.AMQPURL(b)
	q := queueName(b)
	purgeLater(b, raw, q)
	conn, admin := rawConn(b, raw)
	purge(b, admin, q)
	m := benchMessage(b)
	p, err := publishingOf(m)
	require.NoError(b, err)
	br := openBroker(b, raw)
	require.NoError(b, br.Publish(context.Background(), q, m))
	for _, producers := range []int{8, 64} {
		chans := make([]*amqp091.Channel, producers)
		for i := range chans {
			chans[i], err = conn.Channel()
			require.NoError(b, err)
			require.NoError(b, chans[i].Confirm(false))
		}
		run := func(n int, op func(w int) error) sample {
			s := measure(func() {
				var next atomic.Int64
				var wg sync.WaitGroup
				for w := range producers {
					wg.Go(func() {
						for next.Add(1) <= int64(n) {
							if err := op(w); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
			})
			purge(b, admin, q)
			return s
		}
		b.Run(fmt.Sprintf("producers=%d", producers), func(b *testing.B) {
			rounds(b, 4000, func(n int) sample {
				return run(n, func(int) error { return br.Publish(context.Background(), q, m) })
			}, func(n int) sample {
				return run(n, func(w int) error {
					dc, err := chans[w].PublishWithDeferredConfirm("", q, false, false, p)
					if err == nil && !dc.Wait() {
						err = fmt.Errorf("nack")
					}
					return err
				})
			})
		})
	}
}

// BenchmarkCompareDrain alternates rounds of draining n ready messages
// (prefetch 512), taskgen Consume+Ack vs raw consume with per-message ack
// (run with -benchtime=5x).
func BenchmarkCompareDrain(b *testing.B) {
	raw := testenv.AMQPURL(b)
	q := queueName(b)
	purgeLater(b, raw, q)
	conn, admin := rawConn(b, raw)
	purge(b, admin, q)
	m := benchMessage(b)
	const prefetch = 512
	rounds(b, 20000, func(n int) sample {
		fill(b, conn, q, m, n)
		br := openBroker(b, raw)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ds, err := br.Consume(ctx, []string{q}, prefetch)
		require.NoError(b, err)
		s := measure(func() {
			for range n {
				d := <-ds
				if d.Message() == nil || d.Ack() != nil {
					b.Fatal("bad delivery")
				}
			}
		})
		cancel()
		for range ds {
		}
		require.NoError(b, br.Close())
		return s
	}, func(n int) sample {
		fill(b, conn, q, m, n)
		c2, ch := rawConn(b, raw)
		require.NoError(b, ch.Qos(prefetch, 0, false))
		ds, err := ch.Consume(q, "", false, false, false, false, nil)
		require.NoError(b, err)
		s := measure(func() {
			for range n {
				d := <-ds
				if err := d.Ack(false); err != nil {
					b.Fatal(err)
				}
			}
		})
		require.NoError(b, c2.Close())
		return s
	})
}

// BenchmarkCompareDrainVariants drains n ready messages per round through a
// worker-shaped loop (one dispatcher calling Message, handing over to conc
// pool goroutines on an unbuffered channel, which Ack; prefetch 4×conc),
// alternating transport variants and the raw amqp091 loop (conc goroutines
// consuming and acking each message) round by round, and reports the median
// rate and the CPU per message of each (run with -benchtime=5x).
func BenchmarkCompareDrainVariants(b *testing.B) {
	raw := testenv.AMQPURL(b)
	q := queueName(b)
	purgeLater(b, raw, q)
	conn, admin := rawConn(b, raw)
	purge(b, admin, q)
	m := benchMessage(b)
	const n = 20000
	for _, conc := range []int{8, 32} {
		b.Run(fmt.Sprint("c=", conc), func(b *testing.B) {
			prefetch := 4 * conc
			taskgen := func(conns int, lazy bool) func() sample {
				return func() sample {
					*amqp.LazyDecode = lazy
					fill(b, conn, q, m, n)
					br := openBroker(b, withQuery(raw, fmt.Sprint("consume_connections=", conns)))
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					var wg sync.WaitGroup
					s := measure(func() {
						ds, err := br.Consume(ctx, []string{q}, prefetch)
						require.NoError(b, err)
						work := make(chan driver.Delivery)
						var left atomic.Int64
						left.Store(n)
						done := make(chan struct{})
						for range conc {
							wg.Go(func() {
								for d := range work {
									if d.Ack() != nil {
										b.Error("ack failed")
									}
									if left.Add(-1) == 0 {
										close(done)
									}
								}
							})
						}
						go func() {
							for d := range ds {
								if d.Message() == nil {
									b.Error(d.DecodeError())
								}
								work <- d
							}
							close(work)
						}()
						<-done
					})
					cancel()
					wg.Wait()
					require.NoError(b, br.Close())
					return s
				}
			}
			variants := []struct {
				name string
				run  func() sample
			}{
				{"raw", func() sample {
					fill(b, conn, q, m, n)
					c2, ch := rawConn(b, raw)
					defer c2.Close()
					require.NoError(b, ch.Qos(prefetch, 0, false))
					return measure(func() {
						ds, err := ch.Consume(q, "", false, false, false, false, nil)
						require.NoError(b, err)
						var left atomic.Int64
						left.Store(n)
						done := make(chan struct{})
						for range conc {
							go func() {
								for d := range ds {
									if d.Ack(false) != nil {
										return
									}
									if left.Add(-1) == 0 {
										close(done)
									}
								}
							}()
						}
						<-done
					})
				}},
				{"conns1", taskgen(1, false)},
				{"conns2", taskgen(2, false)},
				{"conns1-lazy", taskgen(1, true)},
				{"conns2-lazy", taskgen(2, true)},
			}
			if v := os.Getenv("BENCH_VARIANTS"); v != "" {
				keep := variants[:0]
				for _, x := range variants {
					if slices.Contains(strings.Split(v, ","), x.name) {
						keep = append(keep, x)
					}
				}
				variants = keep
			}
			res := make([][]sample, len(variants))
			for range b.N {
				for i, v := range variants {
					res[i] = append(res[i], v.run())
				}
			}
			for i, v := range variants {
				rates := make([]float64, 0, len(res[i]))
				var client, broker time.Duration
				for _, s := range res[i] {
					rates = append(rates, n/s.wall.Seconds())
					client += s.client
					broker += s.broker
				}
				slices.Sort(rates)
				total := float64(n * len(res[i]))
				b.ReportMetric(rates[len(rates)/2], v.name+"-msg/s")
				b.ReportMetric(float64(client.Microseconds())/total, v.name+"-client-µs/msg")
				b.ReportMetric(float64(broker.Microseconds())/total, v.name+"-broker-µs/msg")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}
