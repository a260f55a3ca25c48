package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/taskgen/taskgen/bench/tasks"
)

// rawSize is the raw loops' message size: about taskgen's Redis envelope
// for a no-op (the backlog section prints the exact size).
const rawSize = 830

// tsLen is the length of a Unix-nanosecond time in decimal.
const tsLen = 19

func rawMessage() []byte {
	b := []byte(now() + strings.Repeat("x", rawSize-tsLen))
	return b
}

// rawRedisWorker is the raw go-redis reliable loop (BLMOVE to a processing
// list of this process, LREM after the task ran), conc goroutines.
func rawRedisWorker(ctx context.Context, broker, queue string, conc int) (func() error, error) {
	opt, err := goredis.ParseURL(broker)
	if err != nil {
		return nil, err
	}
	opt.PoolSize = conc + 4
	rdb := goredis.NewClient(opt)
	proc := fmt.Sprintf("%s.processing.%d", queue, os.Getpid())
	return func() error {
		defer rdb.Close()
		var wg sync.WaitGroup
		for range conc {
			wg.Go(func() {
				for ctx.Err() == nil {
					v, err := rdb.BLMove(ctx, queue, proc, "RIGHT", "LEFT", 200*time.Millisecond).Result()
					if err != nil {
						if !errors.Is(err, goredis.Nil) && ctx.Err() == nil {
							fmt.Fprintln(os.Stderr, "blmove:", err)
						}
						continue
					}
					tasks.Record(v[:tsLen])
					if err := rdb.LRem(ctx, proc, 1, v).Err(); err != nil && ctx.Err() == nil {
						fmt.Fprintln(os.Stderr, "lrem:", err)
					}
				}
			})
		}
		wg.Wait()
		return nil
	}, nil
}

// rawRedisFill LPUSHes n raw messages, pipelined.
func rawRedisFill(ctx context.Context, broker, queue string, n int) error {
	opt, err := goredis.ParseURL(broker)
	if err != nil {
		return err
	}
	rdb := goredis.NewClient(opt)
	defer rdb.Close()
	for i := 0; i < n; i += 1000 {
		p := rdb.Pipeline()
		for j := i; j < min(n, i+1000); j++ {
			p.LPush(ctx, queue, rawMessage())
		}
		if _, err := p.Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}

// rawAMQPWorker is the raw amqp091 consumer: one channel, prefetch
// 4×conc, conc goroutines each acknowledging its message on its own.
func rawAMQPWorker(ctx context.Context, url, queue string, conc int) (func() error, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		conn.Close()
		return nil, err
	}
	if err := ch.Qos(4*conc, 0, false); err != nil {
		conn.Close()
		return nil, err
	}
	return func() error {
		defer conn.Close()
		ds, err := ch.ConsumeWithContext(ctx, queue, "", false, false, false, false, nil)
		if err != nil {
			return err
		}
		var wg sync.WaitGroup
		for range conc {
			wg.Go(func() {
				for d := range ds {
					tasks.Record(string(d.Body[:tsLen]))
					d.Ack(false)
				}
			})
		}
		<-ctx.Done()
		ch.Close()
		wg.Wait()
		return nil
	}, nil
}

// rawAMQPFill publishes n persistent raw messages on a confirm channel.
func rawAMQPFill(ctx context.Context, url, queue string, n int) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		return err
	}
	if err := ch.Confirm(false); err != nil {
		return err
	}
	var last *amqp.DeferredConfirmation
	for i := range n {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: rawMessage()})
		if err != nil {
			return err
		}
		last = dc
		if i%1000 == 999 {
			if ok, err := dc.WaitContext(ctx); err != nil || !ok {
				return fmt.Errorf("publish not confirmed: %v", err)
			}
		}
	}
	if last != nil {
		if ok, err := last.WaitContext(ctx); err != nil || !ok {
			return fmt.Errorf("publish not confirmed: %v", err)
		}
	}
	return nil
}
