package amqp

import (
	"encoding/json"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// FuzzMessage feeds arbitrary header tables (decoded from JSON, so with
// nested tables, arrays, strings, numbers, bools and nulls) and bodies to the
// delivery → message mapping. It must never panic, and a mapped message must
// have a task name and id.
func FuzzMessage(f *testing.F) {
	f.Add(uint8(0), []byte(`{"task": "tasks.add", "id": "1", "retries": 0, "timelimit": [null, null], "eta": null}`), []byte(`[[2, 3], {}, null]`))
	f.Add(uint8(1), []byte(`{"task": "t", "id": "x", "timelimit": [1, 2.5], "group_index": 3, "x-death": [{"count": 1}]}`), []byte{0x93, 0x90, 0x80, 0xc0})
	f.Add(uint8(2), []byte(`{"task": 1, "id": {}}`), []byte(`garbage`))
	f.Fuzz(func(t *testing.T, kind uint8, headers, body []byte) {
		var h map[string]any
		if json.Unmarshal(headers, &h) != nil {
			return
		}
		d := amqp.Delivery{Headers: toTable(h), Body: body, DeliveryTag: 1}
		switch kind % 3 {
		case 0:
			d.ContentType, d.ContentEncoding = "application/json", "utf-8"
		case 1:
			d.ContentType, d.ContentEncoding = "application/x-msgpack", "binary"
		default:
			d.ContentType = "application/x-python-serialize"
		}
		m, err := message(&d, "celery")
		if err == nil && (m == nil || m.Headers.Task == "" || m.Headers.ID == "") {
			t.Fatalf("mapped a message without task or id: %+v", m)
		}
	})
}

func toTable(m map[string]any) amqp.Table {
	t := amqp.Table{}
	for k, v := range m {
		t[k] = toField(v)
	}
	return t
}

func toField(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return toTable(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = toField(e)
		}
		return out
	case float64:
		if x == float64(int64(x)) {
			return int64(x)
		}
	}
	return v
}
