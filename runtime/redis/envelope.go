package redis

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/taskgen/taskgen/runtime/driver"
)

// sep is kombu's separator in priority list names and binding members.
const sep = "\x06\x16"

// steps are kombu's priority steps, one list each (see listName), in the
// order consumers read them.
var steps = [...]int{0, 3, 6, 9}

// priorityStep maps a message priority to kombu's step (0, 3, 6, 9).
func priorityStep(p int) int {
	switch {
	case p <= 2:
		return 0
	case p <= 5:
		return 3
	case p <= 8:
		return 6
	}
	return 9
}

// listName is the Redis list holding queue's messages of priority step s.
func listName(queue string, step int) string {
	if step == 0 {
		return queue
	}
	return queue + sep + strconv.Itoa(step)
}

// newTag returns a random uuid4 string, kombu's delivery tag format.
func newTag(b []byte) []byte {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return b
}

// appendEnvelope appends kombu's JSON envelope of m, published to queue (the
// base queue name: delivery_info.routing_key), in kombu's key order.
func appendEnvelope(b []byte, queue string, m *driver.Message) ([]byte, error) {
	b = append(b, `{"body": "`...)
	b = base64.StdEncoding.AppendEncode(b, m.Body)
	b = append(b, `", "content-encoding": `...)
	b = appendJSONString(b, m.ContentEncoding)
	b = append(b, `, "content-type": `...)
	b = appendJSONString(b, m.ContentType)
	b = append(b, `, "headers": {`...)
	b, err := appendHeaders(b, &m.Headers)
	if err != nil {
		return b, fmt.Errorf("header: %w", err)
	}
	if m.Redelivered {
		b = append(b, `, "redelivered": true`...)
	}
	b = append(b, `}, "properties": {"correlation_id": `...)
	b = appendJSONString(b, m.CorrelationID)
	b = append(b, `, "reply_to": `...)
	b = appendJSONString(b, m.ReplyTo)
	b = append(b, `, "delivery_mode": `...)
	dm := m.DeliveryMode
	if dm == 0 {
		dm = 2
	}
	b = strconv.AppendInt(b, int64(dm), 10)
	if m.Expiration != "" {
		b = append(b, `, "expiration": `...)
		b = appendJSONString(b, m.Expiration)
	}
	b = append(b, `, "delivery_info": {"exchange": "", "routing_key": `...)
	b = appendJSONString(b, queue)
	if m.Redelivered {
		b = append(b, `, "redelivered": true`...)
	}
	b = append(b, `}, "priority": `...)
	b = strconv.AppendInt(b, int64(m.Priority), 10)
	b = append(b, `, "body_encoding": "base64", "delivery_tag": "`...)
	b = newTag(b)
	return append(b, "\"}}"...), nil
}

func appendNullString(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return appendJSONString(b, s)
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
	return appendJSONFloat(b, f)
}

// appendHeaders writes h's members in the order and with the values of
// TaskHeaders.Range (Celery's order, compression, then Extra sorted), without
// boxing each value.
func appendHeaders(b []byte, h *driver.TaskHeaders) ([]byte, error) {
	b = append(b, `"lang": `...)
	b = appendJSONString(b, h.Lang)
	b = append(b, `, "task": `...)
	b = appendJSONString(b, h.Task)
	b = append(b, `, "id": `...)
	b = appendJSONString(b, h.ID)
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
	b = appendJSONString(b, h.ArgsRepr)
	b = append(b, `, "kwargsrepr": `...)
	b = appendJSONString(b, h.KwargsRepr)
	b = append(b, `, "origin": `...)
	b = appendJSONString(b, h.Origin)
	b = append(b, `, "ignore_result": `...)
	if h.IgnoreResult {
		b = append(b, "true"...)
	} else {
		b = append(b, "false"...)
	}
	if h.Compression != "" {
		b = append(b, `, "compression": `...)
		b = appendJSONString(b, h.Compression)
	}
	if len(h.Extra) == 0 {
		return b, nil
	}
	for _, k := range slices.Sorted(maps.Keys(h.Extra)) {
		if k == "redelivered" || knownHeader[k] {
			continue
		}
		b = append(b, ", "...)
		b = appendJSONString(b, k)
		b = append(b, ": "...)
		var err error
		if b, err = appendJSONValue(b, h.Extra[k]); err != nil {
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

func strField(m map[string]any, k string) (string, bool) {
	s, ok := m[k].(string)
	return s, ok
}

// decodeEnvelope decodes kombu's JSON envelope into a Message. queue is the
// queue it was consumed from (RoutingKey). It walks the envelope without
// building maps, except for the headers (runtime.ParseHeaders).
func decodeEnvelope(raw []byte, queue string) (*driver.Message, envelope, error) {
	var env envelope
	m := &driver.Message{RoutingKey: queue}
	p := jsonParser{b: raw}
	var (
		body                          []byte
		haveBody, haveProps, haveInfo bool
		haveExchange, haveRK          bool
		bodyEncoding                  string
		haveEncoding                  bool
		hm                            map[string]any
		red                           bool
	)
	err := p.object(func(key []byte) {
		switch string(key) {
		case "body":
			if p.peek() == '"' {
				body, haveBody = p.strBytes(), true
			} else {
				p.skip(0)
			}
		case "content-type":
			m.ContentType = p.optString()
		case "content-encoding":
			m.ContentEncoding = p.optString()
		case "headers":
			if p.peek() == '{' {
				// Celery sends ~20 headers: size the map once.
				hm, _ = p.objectValue(0, 24).(map[string]any)
			} else {
				p.skip(0)
			}
		case "properties":
			haveProps = true
			p.err = p.object(func(key []byte) {
				switch string(key) {
				case "correlation_id":
					m.CorrelationID = p.optString()
				case "reply_to":
					m.ReplyTo = p.optString()
				case "expiration":
					m.Expiration = p.optString()
				case "body_encoding":
					bodyEncoding, haveEncoding = p.optString(), true
				case "delivery_tag":
					env.tag = p.optString()
				case "delivery_mode":
					if n, ok := driver.AnyToInt(p.value(0)); ok && n >= 0 && n < 256 {
						m.DeliveryMode = uint8(n)
					}
				case "priority":
					if n, ok := driver.AnyToInt(p.value(0)); ok {
						m.Priority = uint8(min(max(n, 0), 255))
					}
				case "delivery_info":
					haveInfo = true
					p.err = p.object(func(key []byte) {
						switch string(key) {
						case "exchange":
							if p.peek() == '"' {
								m.Exchange, haveExchange = p.str(), true
							} else {
								p.skip(0)
							}
						case "routing_key":
							haveRK = p.peek() == '"'
							p.skip(0)
						case "redelivered":
							if v, _ := p.value(0).(bool); v {
								red = true
							}
						default:
							p.skip(0)
						}
					})
				default:
					p.skip(0)
				}
			})
		default:
			p.skip(0)
		}
	})
	if err == nil {
		p.ws()
		if p.i != len(raw) {
			p.fail("trailing data")
			err = p.err
		}
	}
	switch {
	case err != nil:
		return nil, env, fmt.Errorf("kombu envelope: %w", err)
	case !haveProps:
		return nil, env, errors.New("kombu envelope: no properties object")
	case env.tag == "":
		return nil, env, errors.New("kombu envelope: properties.delivery_tag missing")
	case !haveInfo:
		return nil, env, errors.New("kombu envelope: properties.delivery_info missing")
	case !haveExchange:
		return nil, env, errors.New("kombu envelope: properties.delivery_info.exchange missing")
	case !haveRK:
		return nil, env, errors.New("kombu envelope: properties.delivery_info.routing_key missing")
	case !haveBody:
		return nil, env, errors.New("kombu envelope: body missing or not a string")
	case hm == nil:
		return nil, env, errors.New("kombu envelope: headers missing (not a protocol v2 task message)")
	}
	switch {
	case bodyEncoding == "base64":
		m.Body = make([]byte, base64.StdEncoding.DecodedLen(len(body)))
		n, err := base64.StdEncoding.Decode(m.Body, body)
		if err != nil {
			return nil, env, fmt.Errorf("kombu envelope: body: bad base64: %w", err)
		}
		m.Body = m.Body[:n]
	case bodyEncoding == "" && !haveEncoding || bodyEncoding == "":
		m.Body = slices.Clone(body)
	default:
		return nil, env, fmt.Errorf("kombu envelope: unsupported body_encoding %q", bodyEncoding)
	}
	if r, _ := hm["redelivered"].(bool); r {
		red = true
	}
	delete(hm, "redelivered")
	m.Redelivered = red
	if m.Headers, err = driver.ParseHeaders(hm); err != nil {
		return nil, env, fmt.Errorf("task headers: %w", err)
	}
	return m, env, nil
}

// appendUnackedEntry appends kombu's unacked hash value [envelope, exchange,
// routing_key]. An envelope that is not JSON is embedded as a JSON string so
// that the entry stays valid JSON for every reader.
func appendUnackedEntry(b []byte, raw []byte, queue string) []byte {
	b = append(b, '[')
	b = append(b, raw...)
	b = append(b, `, "", `...)
	b = appendJSONString(b, queue)
	return append(b, ']')
}

// parseUnackedEntry splits kombu's unacked entry into the envelope bytes and
// the routing key. The envelope is returned re-encoded only when it is not
// an object (a JSON string holding a poison message: its original bytes).
func parseUnackedEntry(entry []byte) (raw []byte, exchange, routingKey string, err error) {
	v, err := parseJSON(entry)
	if err != nil {
		return nil, "", "", fmt.Errorf("unacked entry: %w", err)
	}
	l, ok := v.([]any)
	if !ok || len(l) != 3 {
		return nil, "", "", errors.New("unacked entry: not a 3-element array")
	}
	exchange, _ = l[1].(string)
	routingKey, _ = l[2].(string)
	if s, ok := l[0].(string); ok {
		return []byte(s), exchange, routingKey, nil
	}
	// Find the raw bytes of the first element: the entry starts with '[', then
	// the envelope object, then ", ". Re-scan with the parser to find its end.
	p := jsonParser{b: entry}
	p.ws()
	p.i++ // '['
	p.ws()
	start := p.i
	p.value(0)
	if p.err != nil {
		return nil, "", "", p.err
	}
	return slices.Clone(entry[start:p.i]), exchange, routingKey, nil
}

type jsonMember struct {
	key        string
	start, end int // the value's bytes
}

// objectMembers scans the JSON object starting at b[i] (after whitespace)
// and returns its members with the positions of their values, and the index
// of its closing brace.
func objectMembers(b []byte, i int) ([]jsonMember, int, error) {
	p := jsonParser{b: b, i: i}
	p.ws()
	if p.i >= len(b) || b[p.i] != '{' {
		return nil, 0, errNotObject
	}
	p.i++
	var ms []jsonMember
	for {
		p.ws()
		if p.i < len(b) && b[p.i] == '}' && len(ms) == 0 {
			return ms, p.i, nil
		}
		if p.i >= len(b) || b[p.i] != '"' {
			return nil, 0, errors.New("invalid JSON object")
		}
		k := p.str()
		p.ws()
		if p.i >= len(b) || b[p.i] != ':' {
			return nil, 0, errors.New("invalid JSON object")
		}
		p.i++
		p.ws()
		start := p.i
		p.value(0)
		if p.err != nil {
			return nil, 0, p.err
		}
		ms = append(ms, jsonMember{key: k, start: start, end: p.i})
		p.ws()
		if p.i < len(b) && b[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(b) && b[p.i] == '}' {
			return ms, p.i, nil
		}
		return nil, 0, errors.New("invalid JSON object")
	}
}

func findMember(ms []jsonMember, key string) *jsonMember {
	for i := range ms {
		if ms[i].key == key {
			return &ms[i]
		}
	}
	return nil
}

// markRedelivered returns a copy of kombu envelope raw with
// headers.redelivered and properties.delivery_info.redelivered set to true,
// as kombu does when it restores a message, keeping everything else byte for
// byte. A raw message that is not such an envelope is returned unchanged.
func markRedelivered(raw []byte) []byte {
	top, _, err := objectMembers(raw, 0)
	if err != nil {
		return raw
	}
	type edit struct {
		start, end int
		text       string
	}
	var edits []edit
	flag := func(start int) {
		ms, closing, err := objectMembers(raw, start)
		if err != nil {
			return
		}
		if m := findMember(ms, "redelivered"); m != nil {
			if string(raw[m.start:m.end]) != "true" {
				edits = append(edits, edit{m.start, m.end, "true"})
			}
			return
		}
		text := `"redelivered": true`
		if len(ms) > 0 {
			text = ", " + text
		}
		edits = append(edits, edit{closing, closing, text})
	}
	if h := findMember(top, "headers"); h != nil {
		flag(h.start)
	}
	if pr := findMember(top, "properties"); pr != nil {
		if ms, _, err := objectMembers(raw, pr.start); err == nil {
			if di := findMember(ms, "delivery_info"); di != nil {
				flag(di.start)
			}
		}
	}
	if len(edits) == 0 {
		return raw
	}
	slices.SortFunc(edits, func(a, b edit) int { return a.start - b.start })
	out := make([]byte, 0, len(raw)+48)
	last := 0
	for _, e := range edits {
		out = append(out, raw[last:e.start]...)
		out = append(out, e.text...)
		last = e.end
	}
	return append(out, raw[last:]...)
}

// envelopePriority reads properties.priority of a kombu envelope (0 when
// absent or unreadable).
func envelopePriority(raw []byte) int {
	top, _, err := objectMembers(raw, 0)
	if err != nil {
		return 0
	}
	pr := findMember(top, "properties")
	if pr == nil {
		return 0
	}
	ms, _, err := objectMembers(raw, pr.start)
	if err != nil {
		return 0
	}
	m := findMember(ms, "priority")
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(string(raw[m.start:m.end]))
	if err != nil {
		return 0
	}
	return min(max(n, 0), 9)
}
