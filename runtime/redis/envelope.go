package redis

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// appendEnvelope appends kombu's JSON envelope of task message m,
// published to queue (the base queue name: delivery_info.routing_key), in
// kombu's key order.
func appendEnvelope(b []byte, queue string, m *driver.Message) ([]byte, error) {
	b = appendEnvelopeHead(b, m.Body)
	b = wire.AppendJSONString(b, m.ContentEncoding)
	b = append(b, `, "content-type": `...)
	b = wire.AppendJSONString(b, m.ContentType)
	b = append(b, `, "headers": {`...)
	b, err := appendHeaders(b, &m.Headers)
	if err != nil {
		return b, fmt.Errorf("header: %w", err)
	}
	if m.Redelivered {
		b = append(b, `, "redelivered": true`...)
	}
	b = append(b, `}, "properties": {"correlation_id": `...)
	b = wire.AppendJSONString(b, m.CorrelationID)
	b = append(b, `, "reply_to": `...)
	b = wire.AppendJSONString(b, m.ReplyTo)
	b = append(b, `, "delivery_mode": `...)
	dm := m.DeliveryMode
	if dm == 0 {
		dm = 2
	}
	b = strconv.AppendInt(b, int64(dm), 10)
	if m.Expiration != "" {
		b = append(b, `, "expiration": `...)
		b = wire.AppendJSONString(b, m.Expiration)
	}
	return appendEnvelopeTail(b, "", queue, m.Redelivered, int(m.Priority)), nil
}

// envPool holds buffers for fan-out envelopes.
var envPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// appendRawEnvelope appends kombu's JSON envelope of fan-out message msg as
// published to exchange with routingKey, in kombu's key order (WIRE §3.1,
// the captured event and pidbox payloads).
func appendRawEnvelope(b []byte, msg *driver.RawMessage, exchange, routingKey string, mode int) ([]byte, error) {
	b = appendEnvelopeHead(b, msg.Body)
	b = appendNullString(b, msg.ContentEncoding)
	b = append(b, `, "content-type": `...)
	b = appendNullString(b, msg.ContentType)
	b = append(b, `, "headers": `...)
	if len(msg.Headers) == 0 {
		b = append(b, "{}"...)
	} else {
		var err error
		if b, err = wire.AppendJSONValue(b, msg.Headers); err != nil {
			return b, fmt.Errorf("headers: %w", err)
		}
	}
	b = append(b, `, "properties": {"delivery_mode": `...)
	b = strconv.AppendInt(b, int64(mode), 10)
	return appendEnvelopeTail(b, exchange, routingKey, false, 0), nil
}

// appendEnvelopeHead appends the start of an envelope, up to the value of
// content-encoding.
func appendEnvelopeHead(b, body []byte) []byte {
	b = append(b, `{"body": "`...)
	b = base64.StdEncoding.AppendEncode(b, body)
	return append(b, `", "content-encoding": `...)
}

// appendEnvelopeTail appends the end of an envelope, from the properties'
// delivery_info on, with a fresh delivery tag.
func appendEnvelopeTail(b []byte, exchange, routingKey string, redelivered bool, priority int) []byte {
	b = append(b, `, "delivery_info": {"exchange": `...)
	b = wire.AppendJSONString(b, exchange)
	b = append(b, `, "routing_key": `...)
	b = wire.AppendJSONString(b, routingKey)
	if redelivered {
		b = append(b, `, "redelivered": true`...)
	}
	b = append(b, `}, "priority": `...)
	b = strconv.AppendInt(b, int64(priority), 10)
	b = append(b, `, "body_encoding": "base64", "delivery_tag": "`...)
	b = newTag(b)
	return append(b, `"}}`...)
}

func appendNullString(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return wire.AppendJSONString(b, s)
}

func appendNullTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = driver.AppendTime(b, t)
	return append(b, '"')
}

func appendLimit(b []byte, f float64) []byte {
	switch {
	case f == 0:
		return append(b, "null"...)
	case f == math.Trunc(f) && math.Abs(f) < 1<<53:
		return strconv.AppendInt(b, int64(f), 10)
	}
	return wire.AppendJSONFloat(b, f)
}

// appendHeaders writes h's members in the order and with the values of
// TaskHeaders.Range (Celery's order, compression, then Extra sorted), without
// boxing each value.
func appendHeaders(b []byte, h *driver.TaskHeaders) ([]byte, error) {
	b = append(b, `"lang": `...)
	b = wire.AppendJSONString(b, h.Lang)
	b = append(b, `, "task": `...)
	b = wire.AppendJSONString(b, h.Task)
	b = append(b, `, "id": `...)
	b = wire.AppendJSONString(b, h.ID)
	b = append(b, `, "shadow": `...)
	b = appendNullString(b, h.Shadow)
	b = append(b, `, "eta": `...)
	b = appendNullTime(b, h.ETA)
	b = append(b, `, "expires": `...)
	b = appendNullTime(b, h.Expires)
	b = append(b, `, "group": `...)
	b = appendNullString(b, h.Group)
	b = append(b, `, "group_index": `...)
	if h.GroupIndex == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, int64(*h.GroupIndex), 10)
	}
	b = append(b, `, "retries": `...)
	b = strconv.AppendInt(b, int64(h.Retries), 10)
	b = append(b, `, "timelimit": [`...)
	b = appendLimit(b, h.TimeLimit[0])
	b = append(b, ", "...)
	b = appendLimit(b, h.TimeLimit[1])
	b = append(b, `], "root_id": `...)
	b = appendNullString(b, h.RootID)
	b = append(b, `, "parent_id": `...)
	b = appendNullString(b, h.ParentID)
	b = append(b, `, "argsrepr": `...)
	b = wire.AppendJSONString(b, h.ArgsRepr)
	b = append(b, `, "kwargsrepr": `...)
	b = wire.AppendJSONString(b, h.KwargsRepr)
	b = append(b, `, "origin": `...)
	b = wire.AppendJSONString(b, h.Origin)
	b = append(b, `, "ignore_result": `...)
	if h.IgnoreResult {
		b = append(b, "true"...)
	} else {
		b = append(b, "false"...)
	}
	if h.Compression != "" {
		b = append(b, `, "compression": `...)
		b = wire.AppendJSONString(b, h.Compression)
	}
	if len(h.Extra) == 0 {
		return b, nil
	}
	for _, k := range slices.Sorted(maps.Keys(h.Extra)) {
		if k == "redelivered" || knownHeader[k] {
			continue
		}
		b = append(b, ", "...)
		b = wire.AppendJSONString(b, k)
		b = append(b, ": "...)
		var err error
		if b, err = wire.AppendJSONValue(b, h.Extra[k]); err != nil {
			return b, err
		}
	}
	return b, nil
}

var knownHeader = map[string]bool{"lang": true, "task": true, "id": true, "shadow": true, "eta": true, "expires": true,
	"group": true, "group_index": true, "retries": true, "timelimit": true, "root_id": true, "parent_id": true,
	"argsrepr": true, "kwargsrepr": true, "origin": true, "ignore_result": true, "compression": true}

// envelope is the decoded part of kombu's envelope that the transport needs
// besides the Message.
type envelope struct {
	tag string
}

var errNotObject = errors.New("envelope is not a JSON object")

// kombuEnvelope is kombu's Redis message envelope as read by readEnvelope:
// {"body", "content-encoding", "content-type", "headers", "properties":
// {"correlation_id", "reply_to", "expiration", "delivery_mode", "priority",
// "body_encoding", "delivery_tag", "delivery_info": {"exchange",
// "routing_key", "redelivered"}}}. Strings that are absent or not strings
// read as "".
type kombuEnvelope struct {
	body                 []byte // still body_encoding'd; may alias the input
	contentType          string
	contentEncoding      string
	headers              map[string]any      // nil when absent or not an object (fan-out envelopes)
	taskHeaders          driver.HeaderReader // a task envelope's headers, read without a map
	haveHeaders          bool                // headers is an object (task envelopes)
	headerRedelivered    bool                // headers.redelivered is true (kombu's restore)
	correlationID        string
	replyTo              string
	expiration           string
	bodyEncoding         string
	tag                  string
	exchange             string
	routingKey           []byte // may alias the input
	deliveryMode         uint8
	priority             uint8
	redelivered          bool // delivery_info.redelivered
	haveBody             bool // body is a string
	haveProps, haveInfo  bool // properties, delivery_info are objects
	haveExchange, haveRK bool // exchange, routing_key are strings
}

// readEnvelope decodes kombu's JSON envelope raw, the one reader of
// envelopes for task messages (decodeEnvelope, task true) and fan-out
// messages (decodeRawEnvelope). It walks the envelope without building maps,
// except for a fan-out message's headers; a task message's headers go
// straight into e.taskHeaders.
func readEnvelope(raw []byte, task bool) (kombuEnvelope, error) {
	var e kombuEnvelope
	d := wire.NewJSONDecoder(raw)
	optString := func() (string, error) {
		if d.Peek() == '"' {
			return d.Text()
		}
		return "", d.Skip(0)
	}
	small := func() (int64, bool, error) {
		v, err := d.Value(0, wire.UntagNone)
		n, ok := driver.AnyToInt(v)
		return n, ok, err
	}
	info := func(key []byte) (err error) {
		switch string(key) {
		case "exchange":
			if d.Peek() == '"' {
				e.exchange, err = d.Text()
				e.haveExchange = true
				return err
			}
		case "routing_key":
			if d.Peek() == '"' {
				e.routingKey, err = d.TextBytes()
				e.haveRK = true
				return err
			}
		case "redelivered":
			v, err := d.Value(0, wire.UntagNone)
			if r, _ := v.(bool); r {
				e.redelivered = true
			}
			return err
		}
		return d.Skip(0)
	}
	props := func(key []byte) (err error) {
		switch string(key) {
		case "correlation_id":
			e.correlationID, err = optString()
		case "reply_to":
			e.replyTo, err = optString()
		case "expiration":
			e.expiration, err = optString()
		case "body_encoding":
			e.bodyEncoding, err = optString()
		case "delivery_tag":
			e.tag, err = optString()
		case "delivery_mode":
			n, ok, err := small()
			if ok && n >= 0 && n < 256 {
				e.deliveryMode = uint8(n)
			}
			return err
		case "priority":
			n, ok, err := small()
			if ok {
				e.priority = uint8(min(max(n, 0), 255))
			}
			return err
		case "delivery_info":
			if d.Peek() != '{' {
				return d.Skip(0)
			}
			e.haveInfo = true
			return d.Members(info)
		default:
			return d.Skip(0)
		}
		return err
	}
	err := d.Members(func(key []byte) (err error) {
		switch string(key) {
		case "body":
			if d.Peek() == '"' {
				e.body, err = d.TextBytes()
				e.haveBody = true
				return err
			}
		case "content-type":
			e.contentType, err = optString()
			return err
		case "content-encoding":
			e.contentEncoding, err = optString()
			return err
		case "headers":
			switch {
			case d.Peek() != '{':
			case task:
				// A repeated headers object replaces the earlier one, as
				// it does in a map.
				e.haveHeaders, e.headerRedelivered, e.taskHeaders = true, false, driver.HeaderReader{}
				return d.Members(func(key []byte) error {
					// kombu's restore marks the message; not a task header.
					redelivered := string(key) == "redelivered"
					if d.Peek() == '"' && !redelivered {
						// Most headers are strings: kept unboxed.
						s, err := d.Text()
						if err == nil {
							e.taskHeaders.AddKeyString(key, s)
						}
						return err
					}
					// Values decode as d.Map decodes them (nesting
					// counted from the headers object).
					v, err := d.Value(1, wire.UntagNone)
					switch {
					case err != nil:
						return err
					case redelivered:
						e.headerRedelivered, _ = v.(bool)
					default:
						e.taskHeaders.AddKey(key, v)
					}
					return nil
				})
			default:
				// Celery sends ~20 headers: size the map once.
				e.headers, err = d.Map(24, wire.UntagNone)
				return err
			}
		case "properties":
			if d.Peek() == '{' {
				e.haveProps = true
				return d.Members(props)
			}
		}
		return d.Skip(0)
	})
	if err == nil && !d.Done() {
		err = errors.New("invalid JSON: extra data after the envelope")
	}
	if err != nil {
		return e, fmt.Errorf("kombu envelope: %w", err)
	}
	if !e.haveBody {
		return e, errors.New("kombu envelope: body missing or not a string")
	}
	return e, nil
}

// decodedBody returns e's body decoded per properties.body_encoding.
func (e *kombuEnvelope) decodedBody() ([]byte, error) {
	switch e.bodyEncoding {
	case "base64":
		b := make([]byte, base64.StdEncoding.DecodedLen(len(e.body)))
		n, err := base64.StdEncoding.Decode(b, e.body)
		if err != nil {
			return nil, fmt.Errorf("kombu envelope: body: bad base64: %w", err)
		}
		return b[:n], nil
	case "":
		return slices.Clone(e.body), nil
	}
	return nil, fmt.Errorf("kombu envelope: unsupported body_encoding %q", e.bodyEncoding)
}

// decodeEnvelope decodes kombu's JSON envelope of a task message into a
// Message. queue is the queue it was consumed from (RoutingKey).
func decodeEnvelope(raw []byte, queue string) (*driver.Message, envelope, error) {
	e, err := readEnvelope(raw, true)
	env := envelope{tag: e.tag}
	switch {
	case err != nil:
		return nil, env, err
	case !e.haveProps:
		return nil, env, errors.New("kombu envelope: no properties object")
	case e.tag == "":
		return nil, env, errors.New("kombu envelope: properties.delivery_tag missing")
	case !e.haveInfo:
		return nil, env, errors.New("kombu envelope: properties.delivery_info missing")
	case !e.haveExchange:
		return nil, env, errors.New("kombu envelope: properties.delivery_info.exchange missing")
	case !e.haveRK:
		return nil, env, errors.New("kombu envelope: properties.delivery_info.routing_key missing")
	case !e.haveHeaders:
		return nil, env, errors.New("kombu envelope: headers missing (not a protocol v2 task message)")
	}
	m := &driver.Message{
		RoutingKey:      queue,
		Exchange:        e.exchange,
		ContentType:     e.contentType,
		ContentEncoding: e.contentEncoding,
		CorrelationID:   e.correlationID,
		ReplyTo:         e.replyTo,
		Expiration:      e.expiration,
		DeliveryMode:    e.deliveryMode,
		Priority:        e.priority,
		Redelivered:     e.redelivered,
	}
	if m.Body, err = e.decodedBody(); err != nil {
		return nil, env, err
	}
	if e.headerRedelivered {
		m.Redelivered = true
	}
	if m.Headers, err = e.taskHeaders.Parse(); err != nil {
		return nil, env, fmt.Errorf("task headers: %w", err)
	}
	return m, env, nil
}

// decodeRawEnvelope decodes kombu's JSON envelope of a fanout message or
// reply. Exchange and RoutingKey come from properties.delivery_info.
func decodeRawEnvelope(raw []byte) (*driver.RawMessage, error) {
	e, err := readEnvelope(raw, false)
	if err != nil {
		return nil, err
	}
	m := &driver.RawMessage{
		ContentType:     e.contentType,
		ContentEncoding: e.contentEncoding,
		Headers:         e.headers,
		Exchange:        e.exchange,
		RoutingKey:      string(e.routingKey),
	}
	if m.Body, err = e.decodedBody(); err != nil {
		return nil, err
	}
	return m, nil
}
