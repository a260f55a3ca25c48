package redis

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// appendDeadLetter appends the dead-letter list entry: a JSON object with
// the reason, queue, time, hostname and the original bytes ("message" as a
// string, or "message_base64" when they are not UTF-8).
func appendDeadLetter(b, raw []byte, reason, queue, host string, t time.Time) []byte {
	b = append(b, `{"reason": `...)
	b = wire.AppendJSONString(b, reason)
	b = append(b, `, "queue": `...)
	b = wire.AppendJSONString(b, queue)
	b = append(b, `, "time": "`...)
	b = driver.AppendTime(b, t)
	b = append(b, `", "hostname": `...)
	b = wire.AppendJSONString(b, host)
	if utf8.Valid(raw) {
		b = append(b, `, "message": `...)
		b = wire.AppendJSONString(b, string(raw))
	} else {
		b = append(b, `, "message_base64": "`...)
		b = base64.StdEncoding.AppendEncode(b, raw)
		b = append(b, '"')
	}
	return append(b, '}')
}

func parseDeadLetter(b []byte) (DeadLetter, error) {
	var dl DeadLetter
	v, err := wire.ParseJSON(b, wire.UntagNone)
	if err != nil {
		return dl, fmt.Errorf("dead letter: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return dl, errors.New("dead letter: not an object")
	}
	dl.Reason, _ = m["reason"].(string)
	dl.Queue, _ = m["queue"].(string)
	dl.Hostname, _ = m["hostname"].(string)
	if s, ok := m["time"].(string); ok {
		dl.Time, _ = driver.ParseTime(s)
	}
	if s, ok := m["message"].(string); ok {
		dl.Raw = []byte(s)
	} else if s, ok := m["message_base64"].(string); ok {
		dl.Raw, err = base64.StdEncoding.DecodeString(s)
	}
	return dl, err
}

// DeadLetter is one entry of a dead-letter list.
type DeadLetter struct {
	Reason   string
	Queue    string
	Time     time.Time
	Hostname string
	// Raw is the original message bytes as they were in the queue.
	Raw []byte
}

// DeadLetterList returns the name of the list receiving dead letters of
// queue (without the global key prefix).
func (b *Broker) DeadLetterList(queue string) string {
	if b.opts.DeadLetterQueue != "" {
		return b.opts.DeadLetterQueue
	}
	return queue + ".dead_letter"
}

// DeadLetters returns up to n entries (newest first) of queue's dead-letter
// list; n <= 0 means all.
func (b *Broker) DeadLetters(ctx context.Context, queue string, n int) ([]DeadLetter, error) {
	stop := int64(n - 1)
	if n <= 0 {
		stop = -1
	}
	vals, err := b.client.LRange(ctx, b.opts.key(b.DeadLetterList(queue)), 0, stop).Result()
	if err != nil {
		return nil, err
	}
	out := make([]DeadLetter, 0, len(vals))
	for _, v := range vals {
		dl, err := parseDeadLetter([]byte(v))
		if err != nil {
			return out, err
		}
		out = append(out, dl)
	}
	return out, nil
}
