package redis

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// appendUnackedEntry appends kombu's unacked hash value [envelope, exchange,
// routing_key]. An envelope that is not JSON is embedded as a JSON string so
// that the entry stays valid JSON for every reader.
func appendUnackedEntry(b []byte, raw []byte, queue string) []byte {
	b = append(b, '[')
	b = append(b, raw...)
	b = append(b, `, "", `...)
	b = wire.AppendJSONString(b, queue)
	return append(b, ']')
}

// parseUnackedEntry splits kombu's unacked entry into the envelope bytes and
// the routing key. The envelope is returned re-encoded only when it is not
// an object (a JSON string holding a poison message: its original bytes).
func parseUnackedEntry(entry []byte) (raw []byte, exchange, routingKey string, err error) {
	v, err := wire.ParseJSON(entry, wire.UntagNone)
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
	// The raw bytes of the first element: the entry starts with '[', then
	// the envelope, then ", ".
	d := wire.NewJSONDecoder(entry)
	d.Expect('[')
	first, err := d.Raw()
	if err != nil {
		return nil, "", "", err
	}
	return slices.Clone(first), exchange, routingKey, nil
}

type jsonMember struct {
	key        string
	start, end int // the value's bytes
}

// objectMembers scans the JSON object starting at b[i] (after whitespace)
// and returns its members with the positions of their values, and the index
// of its closing brace.
func objectMembers(b []byte, i int) ([]jsonMember, int, error) {
	d := wire.NewJSONDecoder(b)
	d.Seek(i)
	if d.Peek() != '{' {
		return nil, 0, errNotObject
	}
	var ms []jsonMember
	err := d.Members(func(key []byte) error {
		d.Peek()
		start := d.Offset()
		if err := d.Skip(0); err != nil {
			return err
		}
		ms = append(ms, jsonMember{key: string(key), start: start, end: d.Offset()})
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return ms, d.Offset() - 1, nil // just past the closing brace
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
