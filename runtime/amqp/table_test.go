package amqp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime/driver"
)

// fixture is one captured Celery 5.2.6 task message (testdata/celery/amqp).
type fixture struct {
	Name    string
	Props   map[string]any // py-amqp properties
	Headers map[string]any // application_headers, JSON-decoded with UseNumber
	Body    []byte
}

const fixtureDir = "../../testdata/celery/amqp"

var fixtureNames = []string{"amqp_task_json_basic", "amqp_task_msgpack_basic", "amqp_task_json_eta_expires_prio", "amqp_task_msgpack_eta_expires_prio"}

func loadFixture(t testing.TB, name string) fixture {
	t.Helper()
	txt, err := os.ReadFile(filepath.Join(fixtureDir, name+".txt"))
	require.NoError(t, err)
	body, err := os.ReadFile(filepath.Join(fixtureDir, name+".body.bin"))
	require.NoError(t, err)
	f := fixture{Name: name, Body: body}
	lines := strings.Split(string(txt), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "AMQP basic properties") {
			// A Python dict of str and int values: JSON once quoted.
			dec := json.NewDecoder(strings.NewReader(strings.ReplaceAll(lines[i+1], "'", "\"")))
			dec.UseNumber()
			require.NoError(t, dec.Decode(&f.Props), name)
		}
		if strings.HasPrefix(l, "application_headers") {
			end := i + 1
			for end < len(lines) && lines[end] != "}" {
				end++
			}
			dec := json.NewDecoder(strings.NewReader(strings.Join(lines[i+1:end+1], "\n")))
			dec.UseNumber()
			require.NoError(t, dec.Decode(&f.Headers), name)
		}
	}
	require.NotNil(t, f.Props, name)
	require.NotNil(t, f.Headers, name)
	return f
}

// pyField types a JSON-decoded fixture value as py-amqp writes it into a
// field table and amqp091-go reads it back (WIRE §1.7).
func pyField(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			if i > math.MaxInt32 || i < math.MinInt32 {
				return i
			}
			return int32(i)
		}
		f, _ := x.Float64()
		return f
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = pyField(e)
		}
		return out
	case map[string]any:
		t := amqp.Table{}
		for k, e := range x {
			t[k] = pyField(e)
		}
		return t
	}
	return v
}

// PyTable returns the fixture's headers as they arrive through amqp091-go.
func (f fixture) PyTable() amqp.Table { return pyField(f.Headers).(amqp.Table) }

func (f fixture) prop(name string) string {
	v, ok := f.Props[name]
	if !ok {
		return ""
	}
	return fmt.Sprint(v)
}

// Delivery returns the fixture as amqp091-go delivers it.
func (f fixture) Delivery() amqp.Delivery {
	prio, _ := f.Props["priority"].(json.Number).Int64()
	mode, _ := f.Props["delivery_mode"].(json.Number).Int64()
	return amqp.Delivery{Headers: f.PyTable(), ContentType: f.prop("content_type"), ContentEncoding: f.prop("content_encoding"),
		DeliveryMode: uint8(mode), Priority: uint8(prio), CorrelationId: f.prop("correlation_id"), ReplyTo: f.prop("reply_to"),
		Expiration: f.prop("expiration"), Body: f.Body, DeliveryTag: 1, RoutingKey: "celery"}
}

func TestMessage_CeleryFixtures(t *testing.T) {
	t.Parallel()
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := loadFixture(t, name)
			d := f.Delivery()
			m, err := message(&d, "celery")
			require.NoError(t, err)
			h := m.Headers
			require.Equal(t, "py", h.Lang)
			require.Equal(t, "tasks.add", h.Task)
			require.Equal(t, f.Headers["id"], h.ID)
			require.Equal(t, h.ID, h.RootID)
			require.Equal(t, h.ID, m.CorrelationID)
			require.Empty(t, h.ParentID)
			require.Empty(t, h.Group)
			require.Nil(t, h.GroupIndex)
			require.Zero(t, h.Retries)
			require.Equal(t, f.Headers["argsrepr"], h.ArgsRepr)
			require.Equal(t, f.Headers["kwargsrepr"], h.KwargsRepr)
			require.Equal(t, f.Headers["origin"], h.Origin)
			require.False(t, h.IgnoreResult)
			require.Nil(t, h.Extra, "every Celery 5.2 header is a known header")
			require.Equal(t, f.prop("content_type"), m.ContentType)
			require.Equal(t, f.prop("content_encoding"), m.ContentEncoding)
			require.Equal(t, f.prop("reply_to"), m.ReplyTo)
			require.EqualValues(t, 2, m.DeliveryMode)
			require.Equal(t, "celery", m.RoutingKey)
			require.Equal(t, f.Body, m.Body)
			if strings.Contains(name, "eta_expires_prio") {
				require.Equal(t, [2]float64{60, 50}, h.TimeLimit)
				require.False(t, h.ETA.IsZero())
				require.Equal(t, f.Headers["eta"], driver.FormatTime(h.ETA))
				require.Equal(t, f.Headers["expires"], driver.FormatTime(h.Expires))
				require.Equal(t, "120000", m.Expiration)
				require.EqualValues(t, 5, m.Priority)
			} else {
				require.Equal(t, [2]float64{}, h.TimeLimit)
				require.True(t, h.ETA.IsZero())
				require.True(t, h.Expires.IsZero())
				require.Empty(t, m.Expiration)
				require.Zero(t, m.Priority)
			}
		})
	}
}

func TestMessage_NotATask(t *testing.T) {
	t.Parallel()
	f := loadFixture(t, "amqp_task_json_basic")
	for name, mod := range map[string]func(d *amqp.Delivery){
		"pickle":        func(d *amqp.Delivery) { d.ContentType = "application/x-python-serialize" },
		"no type":       func(d *amqp.Delivery) { d.ContentType = "" },
		"no task":       func(d *amqp.Delivery) { delete(d.Headers, "task") },
		"no id":         func(d *amqp.Delivery) { delete(d.Headers, "id") },
		"bad retries":   func(d *amqp.Delivery) { d.Headers["retries"] = "many" },
		"bad eta":       func(d *amqp.Delivery) { d.Headers["eta"] = "tomorrow" },
		"no headers":    func(d *amqp.Delivery) { d.Headers = nil },
		"bad timelimit": func(d *amqp.Delivery) { d.Headers["timelimit"] = int32(3) },
	} {
		d := f.Delivery()
		mod(&d)
		m, err := message(&d, "celery")
		require.Nil(t, m, name)
		require.ErrorIs(t, err, errNoTask, name)
	}
}

func TestMessage_ExtraHeaders(t *testing.T) {
	t.Parallel()
	d := loadFixture(t, "amqp_task_json_basic").Delivery()
	d.Headers["stamps"] = amqp.Table{"a": int32(1), "b": []any{int16(2), amqp.Table{"c": float32(1.5)}}}
	d.Headers["replaced_task_nesting"] = int32(0)
	d.Headers["x-death"] = []any{amqp.Table{"count": int64(1)}}
	d.Headers["x-first-death-queue"] = "taskgen.delay.celery.4s"
	m, err := message(&d, "celery")
	require.NoError(t, err)
	require.Equal(t, map[string]any{
		"stamps":                map[string]any{"a": int64(1), "b": []any{int64(2), map[string]any{"c": float64(1.5)}}},
		"replaced_task_nesting": int64(0),
	}, m.Headers.Extra)
}

// celeryHeaders builds TaskHeaders equal to a fixture's headers.
func celeryHeaders(t *testing.T, f fixture) driver.TaskHeaders {
	t.Helper()
	h, err := driver.ParseHeaders(map[string]any(f.PyTable()))
	require.NoError(t, err)
	return h
}

func TestHeaderTable_TypedAsPyAMQPWrites(t *testing.T) {
	t.Parallel()
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := loadFixture(t, name)
			h := celeryHeaders(t, f)
			got, err := headerTable(&h)
			require.NoError(t, err)
			want := f.PyTable()
			require.Len(t, got, len(want))
			for k, w := range want {
				g, ok := got[k]
				require.True(t, ok, "header %q missing", k)
				require.IsType(t, w, g, "header %q", k)
				require.Equal(t, w, g, "header %q", k)
			}
			// It encodes: amqp091-go accepts every value.
			require.NoError(t, got.Validate())
		})
	}
}

func TestFieldValue(t *testing.T) {
	t.Parallel()
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		in, want any
	}{
		{nil, nil},
		{"s", "s"},
		{true, true},
		{int(7), int32(7)},
		{int8(-7), int32(-7)},
		{int16(7), int32(7)}, // never int16: py-amqp reads field type s as a string
		{int64(1) << 40, int64(1) << 40},
		{int64(-5), int32(-5)},
		{uint8(5), int32(5)},
		{uint32(math.MaxUint32), int64(math.MaxUint32)},
		{uint64(9), int32(9)},
		{float32(0.5), float64(0.5)},
		{1.25, 1.25},
		{json.Number("12"), int32(12)},
		{json.Number("1.5"), 1.5},
		{[]byte("x"), []byte("x")},
		{when, when},
		{[]string{"a", "b"}, []any{"a", "b"}},
		{[]int{1, 2}, []any{int32(1), int32(2)}},
		{[]any{nil, int64(60)}, []any{nil, int32(60)}},
		{map[string]any{"n": 1, "m": map[string]any{"s": []string{"x"}}}, amqp.Table{"n": int32(1), "m": amqp.Table{"s": []any{"x"}}}},
		{map[string]string{"a": "b"}, amqp.Table{"a": "b"}},
	} {
		got, err := fieldValue(c.in)
		require.NoError(t, err, "%#v", c.in)
		require.Equal(t, c.want, got, "%#v", c.in)
		require.NoError(t, amqp.Table{"v": got}.Validate(), "%#v", c.in)
	}
	for _, bad := range []any{uint64(math.MaxUint64), struct{}{}, []bool{true}, map[int]string{}} {
		_, err := fieldValue(bad)
		require.Error(t, err, "%#v", bad)
	}
	h := driver.TaskHeaders{Task: "t", ID: "i", Extra: map[string]any{"bad": make(chan int)}}
	_, err := headerTable(&h)
	require.ErrorContains(t, err, `header "bad"`)
}

func TestPublishing_Properties(t *testing.T) {
	t.Parallel()
	f := loadFixture(t, "amqp_task_msgpack_eta_expires_prio")
	d := f.Delivery()
	m, err := message(&d, "celery")
	require.NoError(t, err)
	p, err := publishing(m)
	require.NoError(t, err)
	require.Equal(t, d.ContentType, p.ContentType)
	require.Equal(t, "binary", p.ContentEncoding)
	require.Equal(t, amqp.Persistent, p.DeliveryMode)
	require.EqualValues(t, 5, p.Priority)
	require.Equal(t, d.CorrelationId, p.CorrelationId)
	require.Equal(t, d.ReplyTo, p.ReplyTo)
	require.Equal(t, "120000", p.Expiration)
	require.True(t, bytes.Equal(f.Body, p.Body))
	require.Equal(t, d.Headers, p.Headers)
}

func TestParseOptions(t *testing.T) {
	t.Parallel()
	u, _ := url.Parse("amqp://u:p@h//?heartbeat=30&max_priority=10&publish_channels=2&consume_connections=3&dead_letter_exchange=dlx&delay_prefix=wait&connect_timeout=2s&confirm_timeout=1.5")
	o, err := ParseOptions(u)
	require.NoError(t, err)
	require.Equal(t, Options{Heartbeat: 30 * time.Second, ConnectTimeout: 2 * time.Second, ConfirmTimeout: 1500 * time.Millisecond, MaxPriority: 10, PublishChannels: 2,
		ConsumeConnections: 3, DeadLetterExchange: "dlx", DelayPrefix: "wait", QueueType: QueueTypeClassic}, o)
	u, _ = url.Parse("amqp://u:p@h//?queue_type=quorum&delivery_limit=5")
	o, err = ParseOptions(u)
	require.NoError(t, err)
	require.Equal(t, QueueTypeQuorum, o.QueueType)
	require.Equal(t, 5, o.DeliveryLimit)
	for bad, msg := range map[string]string{
		"?visibility_timeout=3": "unknown option", "?max_priority=300": "max_priority", "?heartbeat=x": "heartbeat",
		"?publish_channels=0": "publish_channels", "?consume_connections=0": "consume_connections", "?consume_connections=17": "consume_connections",
		"?queue_type=stream": "want classic or quorum", "?queue_type=quorum&max_priority=9": "quorum queues have no x-max-priority",
		"?delivery_limit=3": "needs queue_type=quorum", "?queue_type=quorum&delivery_limit=-1": "delivery_limit",
	} {
		u, _ := url.Parse("amqp://h/" + bad)
		_, err := ParseOptions(u)
		require.ErrorContains(t, err, msg, bad)
	}
}

func TestNewList(t *testing.T) {
	t.Parallel()
	parse := func(raw string) []*url.URL {
		urls, err := driver.ParseURLs(raw)
		require.NoError(t, err)
		return urls
	}
	b, err := NewList(parse("amqps://u:p1@h1:5671/v?queue_type=quorum&heartbeat=3;amqps://u:p2@h2:5673/v;amqps://u:p3@h3/v?heartbeat=3&queue_type=quorum"), driver.TransportOptions{})
	require.NoError(t, err)
	require.Len(t, b.nodes, 3)
	require.Equal(t, "v", b.Vhost())
	require.Equal(t, QueueTypeQuorum, b.Options().QueueType, "options of the first URL apply to all")
	require.Equal(t, 3*time.Second, b.Options().Heartbeat)
	require.Equal(t, "amqps://u:xxxxx@h1:5671/v?queue_type=quorum&heartbeat=3;amqps://u:xxxxx@h2:5673/v;amqps://u:xxxxx@h3/v?heartbeat=3&queue_type=quorum", b.redacted)
	for i, host := range []string{"h1", "h2", "h3"} {
		require.Equal(t, host, b.nodes[i].tls.ServerName, "each node is verified under its own name")
		require.NotContains(t, b.nodes[i].redacted, "p"+strconv.Itoa(i+1))
		require.NotContains(t, b.nodes[i].dialURL, "?")
	}
	require.Equal(t, []string{"amqps://u:xxxxx@h1:5671/v?queue_type=quorum&heartbeat=3", "amqps://u:xxxxx@h2:5673/v", "amqps://u:xxxxx@h3/v?heartbeat=3&queue_type=quorum"}, b.Nodes())
	require.Equal(t, b.Nodes()[0], b.CurrentNode())
	b, err = NewList(parse("amqps://h1/v?server_name_indication=rabbit;amqps://h2/v"), driver.TransportOptions{})
	require.NoError(t, err)
	require.Equal(t, "rabbit", b.nodes[1].tls.ServerName)

	for raw, msg := range map[string]string{
		"amqp://u:secret@h1/v;amqp://u:secret@h2/w":                         `URL 2: virtual host "w" differs from the first URL's "v"`,
		"amqp://u:secret@h1/v?heartbeat=3;amqp://u:secret@h2/v?heartbeat=4": "URL 2: transport options belong on the first URL",
		"amqp://u:secret@h1/v;amqp://u:secret@h2/v?heartbeat=4":             "URL 2: transport options belong on the first URL",
		"amqp://u:secret@h1/v?queue_type=x;amqp://u:secret@h2/v":            "queue_type",
		"amqp://u:secret@h1/v;amqp://u:secret@h2:port/v":                    "invalid port",
	} {
		urls, err := driver.ParseURLs(raw)
		if err == nil {
			_, err = NewList(urls, driver.TransportOptions{})
		}
		require.ErrorContains(t, err, msg, raw)
		require.NotContains(t, err.Error(), "secret")
	}
}

func TestNativeRoutingKey(t *testing.T) {
	t.Parallel()
	// kombu: calculate_routing_key(5, "celery")
	require.Equal(t, "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.1.celery", nativeRoutingKey(5, "celery"))
	require.Equal(t, "1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.q", nativeRoutingKey(1<<28-1, "q"))
	require.Equal(t, "*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.a.b", nativeBindingKey("a.b"))
	require.Equal(t, uint64(0), nativeSeconds(999*time.Millisecond))
	require.Equal(t, uint64(0), nativeSeconds(-time.Hour))
	require.Equal(t, uint64(1), nativeSeconds(1999*time.Millisecond))
	require.Equal(t, uint64(3600), nativeSeconds(time.Hour))
	require.Equal(t, uint64(1<<28-1), nativeSeconds(1e6*time.Hour))
}

func TestNew_VhostAndRedaction(t *testing.T) {
	t.Parallel()
	for raw, vhost := range map[string]string{
		"amqp://guest:guest@host:5672//":         "/",
		"amqp://guest:guest@host:5672/":          "/",
		"amqp://host":                            "/",
		"amqp://u:p@host/%2F":                    "/",
		"amqp://u:p@host:5672/taskgen":           "taskgen",
		"amqp://u:p@host/my%2Fvhost?heartbeat=5": "my/vhost",
		"amqps://u:p@host/v":                     "v",
	} {
		u, err := url.Parse(raw)
		require.NoError(t, err)
		b, err := New(u, driver.TransportOptions{})
		require.NoError(t, err, raw)
		require.Equal(t, vhost, b.Vhost(), raw)
		require.NotContains(t, b.redacted, ":p@", raw)
	}
	u, _ := url.Parse("amqp://user:s3cret@127.0.0.1:1/v?connect_timeout=0.2")
	b, err := New(u, driver.TransportOptions{ConnectTimeout: 300 * time.Millisecond})
	require.NoError(t, err)
	_, err = b.Consume(t.Context(), []string{"q"}, 1)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret")
	require.Contains(t, err.Error(), "user:")
	u, _ = url.Parse("amqp://user:s3cret@h/?bogus=1")
	_, err = New(u, driver.TransportOptions{})
	require.ErrorContains(t, err, "bogus")
	require.NotContains(t, err.Error(), "s3cret")
}

func TestDelayLevel(t *testing.T) {
	t.Parallel()
	require.Equal(t, -1, delayLevel(999*time.Millisecond))
	require.Equal(t, -1, delayLevel(-time.Minute), "a due time in the past is published at once")
	require.Equal(t, 0, delayLevel(1500*time.Millisecond))
	require.Equal(t, 1, delayLevel(3*time.Second))
	require.Equal(t, 2, delayLevel(4*time.Second))
	require.Equal(t, 6, delayLevel(127*time.Second))
	require.Equal(t, MaxDelayLevel, delayLevel(1e6*time.Hour))
	b := &Broker{opts: Options{DelayPrefix: DefaultDelayPrefix}}
	require.Equal(t, "taskgen.delay.celery.64s", b.delayQueue("celery", 6))
}
