package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// buildKeys computes, once per Consume, the fetch script's keys for every
// rotation of the queues, and the priority step of each list.
func (c *consumer) buildKeys() {
	n := len(c.queues)
	c.stepOf = make(map[string]int, 4*n)
	for r := range n {
		lists := make([]string, 0, 2+4*n)
		names := make([]any, 0, 4*n)
		lists = append(lists, c.b.opts.key("unacked"), c.b.opts.key("unacked_index"))
		for _, step := range steps {
			for i := range n {
				q := c.queues[(i+r)%n]
				l := c.b.opts.key(listName(q, step))
				lists = append(lists, l)
				names = append(names, q)
				c.stepOf[l] = step
			}
		}
		c.rotations = append(c.rotations, lists)
		c.rotNames = append(c.rotNames, names)
	}
}

// keys returns the fetch script's keys at rotation rr: the unacked hash and
// index, then the lists in kombu's order, priority-major, the queue order
// rotated by rr; and the queue name of each list. Callers must not modify
// them.
func (c *consumer) keys(rr uint64) (lists []string, names []any) {
	r := rr % uint64(len(c.queues))
	return c.rotations[r], c.rotNames[r]
}

// fetch runs the fetch script on lists (the unacked hash and index, then the
// lists to pop from), names the queue of each list to pop from, and srcs the
// list a delivery from each goes back to when requeued.
func (c *consumer) fetch(ctx context.Context, lists []string, names []any, srcs []string, n int) ([]*delivery, error) {
	seq := c.seq.Add(1)
	score := strconv.FormatFloat(float64(time.Now().UnixMicro())/1e6, 'f', 6, 64)
	args := make([]any, 0, 3+len(names))
	args = append(args, n, score, c.nonce+"."+strconv.FormatUint(seq, 10))
	args = append(args, names...)
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.b.opts.ConnectTimeout)
	defer cancel()
	res, err := fetchScript.Run(fctx, c.b.client, lists, args...).Slice()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, err
	}
	if len(res)%3 != 0 {
		return nil, fmt.Errorf("fetch script: unexpected reply of %d elements", len(res))
	}
	ds := make([]*delivery, 0, len(res)/3)
	for i := 0; i < len(res); i += 3 {
		idx, _ := res[i].(int64)
		tag, _ := res[i+1].(string)
		env, _ := res[i+2].(string)
		if idx < 1 || int(idx) > len(names) {
			return nil, fmt.Errorf("fetch script: bad list index %v", res[i])
		}
		// Decoded on first use, by the worker's goroutines: the fetch loop
		// goes on to its next round trip meanwhile.
		ds = append(ds, &delivery{c: c, tag: tag, raw: []byte(env), queue: names[idx-1].(string), list: srcs[idx-1], done: true, recorded: true})
	}
	if len(ds) > 0 {
		c.liveMu.Lock()
		for _, d := range ds {
			c.live[d.tag] = struct{}{}
		}
		c.liveMu.Unlock()
	}
	return ds, nil
}
