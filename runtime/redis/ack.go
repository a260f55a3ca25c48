package redis

import (
	"context"
	"time"

	"github.com/taskgen/taskgen/runtime/internal/reconnect"
)

func (b *Broker) ack(tag string) error {
	select {
	case b.ackCh <- tag:
		return nil
	case <-b.closing:
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.ConnectTimeout)
	defer cancel()
	return b.flushAcks(ctx, []string{tag})
}

func (b *Broker) acker() {
	batch := make([]string, 0, maxAckBatch)
	backoff := reconnect.Backoff{Policy: ackPolicy}
	for {
		if len(batch) == 0 {
			select {
			case t := <-b.ackCh:
				batch = append(batch, t)
			case <-b.closing:
				// Flush what is left, bounded.
				for {
					select {
					case t := <-b.ackCh:
						batch = append(batch, t)
						continue
					default:
					}
					break
				}
				if len(batch) > 0 {
					ctx, cancel := context.WithTimeout(context.Background(), b.opts.ConnectTimeout)
					if err := b.flushAcks(ctx, batch); err != nil {
						b.log.Error("redis: flushing acknowledgements at close failed; those messages will be redelivered", "n", len(batch), "err", err)
					}
					cancel()
				}
				return
			}
		}
	drain:
		for len(batch) < maxAckBatch {
			select {
			case t := <-b.ackCh:
				batch = append(batch, t)
			default:
				break drain
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.opts.ConnectTimeout)
		err := b.flushAcks(ctx, batch)
		cancel()
		if err != nil {
			b.log.Warn("redis: acknowledging failed; retrying", "n", len(batch), "err", err)
			select {
			case <-time.After(backoff.Next()):
			case <-b.closing:
			}
			continue
		}
		backoff.Reset()
		batch = batch[:0]
	}
}

func (b *Broker) flushAcks(ctx context.Context, tags []string) error {
	members := make([]any, len(tags))
	for i, t := range tags {
		members[i] = t
	}
	pipe := b.client.Pipeline()
	pipe.ZRem(ctx, b.opts.key("unacked_index"), members...)
	pipe.HDel(ctx, b.opts.key("unacked"), tags...)
	_, err := pipe.Exec(ctx)
	return err
}
