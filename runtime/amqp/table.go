package amqp

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskgen/taskgen/runtime/driver"
)

// Header names this transport adds to dead-lettered messages.
const (
	// HeaderDeadLetterReason holds why a message was dead-lettered.
	HeaderDeadLetterReason = "x-taskgen-dead-letter-reason"
	// HeaderDeadLetterQueue holds the queue a dead-lettered message came from.
	HeaderDeadLetterQueue = "x-taskgen-dead-letter-queue"
)

// headerTable converts task headers to an AMQP field table typed as py-amqp
// reads it (WIRE §1.7).
func headerTable(h *driver.TaskHeaders) (amqp.Table, error) {
	t := make(amqp.Table, 18+len(h.Extra))
	var err error
	h.Range(func(name string, v any) {
		if err != nil {
			return
		}
		f, e := fieldValue(v)
		if e != nil {
			err = fmt.Errorf("header %q: %w", name, e)
			return
		}
		t[name] = f
	})
	return t, err
}

// intField types an integer as py-amqp writes one: 32-bit when it fits
// (field type I), else 64-bit (field type l).
func intField(n int64) any {
	if n >= math.MinInt32 && n <= math.MaxInt32 {
		return int32(n)
	}
	return n
}

// fieldValue converts one Go value to a value amqp091-go encodes with a
// field type py-amqp reads back as the same Python type.
func fieldValue(v any) (any, error) {
	switch x := v.(type) {
	case nil, string, bool, float64, []byte, amqp.Decimal:
		return x, nil
	case time.Time:
		return x, nil
	case float32:
		return float64(x), nil
	case int:
		return intField(int64(x)), nil
	case int8:
		return int32(x), nil
	case int16:
		return int32(x), nil
	case int32:
		return x, nil
	case int64:
		return intField(x), nil
	case uint:
		if uint64(x) > math.MaxInt64 {
			return nil, fmt.Errorf("integer %d does not fit a signed 64-bit field", x)
		}
		return intField(int64(x)), nil
	case uint8:
		return int32(x), nil
	case uint16:
		return int32(x), nil
	case uint32:
		return intField(int64(x)), nil
	case uint64:
		if x > math.MaxInt64 {
			return nil, fmt.Errorf("integer %d does not fit a signed 64-bit field", x)
		}
		return intField(int64(x)), nil
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return intField(i), nil
		}
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("number %q: %w", x, err)
		}
		return f, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			f, err := fieldValue(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = f
		}
		return out, nil
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out, nil
	case []int:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = intField(int64(e))
		}
		return out, nil
	case []int64:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = intField(e)
		}
		return out, nil
	case []float64:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out, nil
	case amqp.Table:
		return tableValue(x)
	case map[string]any:
		return tableValue(x)
	case map[string]string:
		t := make(amqp.Table, len(x))
		for k, e := range x {
			t[k] = e
		}
		return t, nil
	}
	return nil, fmt.Errorf("unsupported header value type %T", v)
}

func tableValue(m map[string]any) (amqp.Table, error) {
	t := make(amqp.Table, len(m))
	for k, e := range m {
		f, err := fieldValue(e)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		t[k] = f
	}
	return t, nil
}

// publishing builds the AMQP message of msg.
func publishing(msg *driver.Message) (amqp.Publishing, error) {
	t, err := headerTable(&msg.Headers)
	if err != nil {
		return amqp.Publishing{}, err
	}
	mode := msg.DeliveryMode
	if mode == 0 {
		mode = amqp.Persistent
	}
	return amqp.Publishing{
		Headers:         t,
		ContentType:     msg.ContentType,
		ContentEncoding: msg.ContentEncoding,
		DeliveryMode:    mode,
		Priority:        msg.Priority,
		CorrelationId:   msg.CorrelationID,
		ReplyTo:         msg.ReplyTo,
		Expiration:      msg.Expiration,
		Body:            msg.Body,
	}, nil
}

// brokerHeader reports headers RabbitMQ adds when it dead-letters a message
// (a delay hop) or redelivers it from a quorum queue (x-delivery-count);
// they are dropped on receipt.
func brokerHeader(name string) bool {
	return name == "x-death" || name == "x-delivery-count" || strings.HasPrefix(name, "x-first-death-") || strings.HasPrefix(name, "x-last-death-")
}

// plainValue converts a value read from a field table to the types the
// runtime uses for Extra headers: int64 for integers, float64, map[string]any
// for tables, []any for arrays.
func plainValue(v any) any {
	switch x := v.(type) {
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint8:
		return int64(x)
	case float32:
		return float64(x)
	case amqp.Table:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = plainValue(e)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plainValue(e)
		}
		return out
	}
	return v
}

var errNoTask = errors.New("not a taskgen/Celery protocol v2 task message")

// message maps a received AMQP delivery to a runtime message. queue is the
// queue it was consumed from.
func message(d *amqp.Delivery, queue string) (*driver.Message, error) {
	switch d.ContentType {
	case driver.ContentTypeMsgpack, driver.ContentTypeJSON:
	default:
		return nil, fmt.Errorf("%w: unsupported content type %q", errNoTask, d.ContentType)
	}
	h, err := driver.ParseHeaders(map[string]any(d.Headers))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoTask, err)
	}
	for k, v := range h.Extra {
		if brokerHeader(k) {
			delete(h.Extra, k)
			continue
		}
		h.Extra[k] = plainValue(v)
	}
	if len(h.Extra) == 0 {
		h.Extra = nil
	}
	return &driver.Message{
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		CorrelationID:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		DeliveryMode:    d.DeliveryMode,
		Priority:        d.Priority,
		Expiration:      d.Expiration,
		Headers:         h,
		Body:            d.Body,
		Exchange:        d.Exchange,
		RoutingKey:      queue,
		Redelivered:     d.Redelivered,
	}, nil
}
