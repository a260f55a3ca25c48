//go:build reliability

package reliability_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/reliability/tasks"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/amqp"
	"github.com/taskgen/taskgen/runtime/driver"
	rredis "github.com/taskgen/taskgen/runtime/redis"
)

const poisonMaxBody = 64 << 10

// pickleRCE is a pickle that, if unpickled, would run `touch <marker>`.
func pickleRCE(marker string) []byte {
	return []byte("cos\nsystem\n(S'touch " + marker + "'\ntR.")
}

// poisonBodies derives the poison payloads from the msgpack body of a valid
// rel.typed(1, "a") call: [[1, "a"], {}, {embed}].
type poisonBodies struct {
	valid, rest []byte
}

func newPoisonBodies(t *testing.T, valid []byte) poisonBodies {
	t.Helper()
	args := []byte{0x93, 0x92, 0x01, 0xa1, 'a'}
	require.True(t, bytes.HasPrefix(valid, args), "unexpected msgpack body %x", valid)
	return poisonBodies{valid: valid, rest: valid[len(args):]}
}

func (p poisonBodies) withArgs(args ...byte) []byte {
	return append(append([]byte{0x93}, args...), p.rest...)
}

// poisonCase is one poison message: how to alter a valid message.
type poisonCase struct {
	name        string
	contentType string // "" keeps application/x-msgpack
	body        []byte // nil keeps the valid body
	task        string // "" keeps rel.typed
	raw         []byte // Redis only: the whole list entry (not an envelope)
	noHeaders   bool   // AMQP only: no task headers at all
}

func poisonCases(p poisonBodies, marker string) []poisonCase {
	return []poisonCase{
		{name: "garbage bytes", raw: []byte("\x00\xff\xfegarbage{\"not\": json"), noHeaders: true, body: []byte("\x00\xff\xfe garbage"), contentType: "application/octet-stream"},
		{name: "wrong content type", contentType: "application/x-yaml", body: []byte("- 1\n- a\n")},
		{name: "pickle", contentType: "application/x-python-serialize", body: pickleRCE(marker)},
		{name: "truncated msgpack", body: p.valid[:len(p.valid)-4]},
		{name: "body not three elements", body: []byte{0x92, 0x90, 0x80}},
		{name: "unknown task", task: "rel.no_such_task"},
		{name: "wrong arity", body: p.withArgs(0x91, 0x01)},
		{name: "wrong types", body: p.withArgs(0x92, 0xa1, 'x', 0x01)},
		{name: "over MaxBodySize", body: p.withArgs(append([]byte{0x92, 0x01, 0xdb, 0, 2, 0, 0}, bytes.Repeat([]byte{'z'}, 128<<10)...)...)},
	}
}

// TestPoison: poison messages are dead-lettered with a reason and counted,
// never run, while valid tasks keep flowing.
func TestPoison(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		_, url := privateRedis(t)
		runPoison(t, "redis", url)
	})
	t.Run("rabbitmq", func(t *testing.T) {
		runPoison(t, "rabbitmq", testenv.AMQPURL(t))
	})
}

func runPoison(t *testing.T, brokerName, url string) {
	ctx := ctxT(t, 2*time.Minute)
	queue := "rel.poison." + randID()
	staging := queue + ".staging"
	marker := filepath.Join(t.TempDir(), "pwned")
	s := newSink(t)
	app, _ := newApp(t, "worker", url)
	w := inProcessWorker(t, app, s, runtime.WorkerOptions{Queues: []string{queue}, Concurrency: 4, MaxBodySize: poisonMaxBody})
	papp, _ := newApp(t, "producer", url)

	// A valid message, published to a queue nobody consumes, is the template.
	_, err := tasks.Typed.With(runtime.WithApp(papp), runtime.Queue(staging)).Delay(ctx, 1, "a")
	require.NoError(t, err)

	var cases []poisonCase
	var publish func(c poisonCase)
	var deadLetters func() map[string]string // reason by case name
	switch b := papp.Broker().(type) {
	case *rredis.Broker:
		rc := b.Client()
		var raw string
		require.Eventually(t, func() bool { raw, err = rc.RPop(ctx, staging).Result(); return err == nil }, 5*time.Second, 50*time.Millisecond)
		var env map[string]any
		require.NoError(t, json.Unmarshal([]byte(raw), &env))
		valid, err := base64.StdEncoding.DecodeString(env["body"].(string))
		require.NoError(t, err)
		cases = poisonCases(newPoisonBodies(t, valid), marker)
		publish = func(c poisonCase) {
			entry := c.raw
			if entry == nil {
				var e map[string]any
				require.NoError(t, json.Unmarshal([]byte(raw), &e))
				h := e["headers"].(map[string]any)
				h["id"] = driver.NewID()
				if c.task != "" {
					h["task"] = c.task
				}
				if c.contentType != "" {
					e["content-type"] = c.contentType
				}
				if c.body != nil {
					e["body"] = base64.StdEncoding.EncodeToString(c.body)
				}
				props := e["properties"].(map[string]any)
				props["delivery_tag"] = driver.NewID()
				props["correlation_id"] = h["id"]
				h["x-case"] = c.name
				entry, err = json.Marshal(e)
				require.NoError(t, err)
			}
			require.NoError(t, rc.LPush(ctx, queue, entry).Err())
		}
		deadLetters = func() map[string]string {
			dls, err := b.DeadLetters(ctx, queue, 0)
			require.NoError(t, err)
			out := map[string]string{}
			for _, dl := range dls {
				name := "garbage bytes"
				var e map[string]any
				if json.Unmarshal(dl.Raw, &e) == nil {
					if h, ok := e["headers"].(map[string]any); ok {
						name, _ = h["x-case"].(string)
					}
				}
				out[name] = dl.Reason
			}
			return out
		}
	case *amqp.Broker:
		conn, err := amqp091.Dial(url)
		require.NoError(t, err)
		defer conn.Close()
		ch, err := conn.Channel()
		require.NoError(t, err)
		var tmpl amqp091.Delivery
		require.Eventually(t, func() bool {
			var ok bool
			tmpl, ok, err = ch.Get(staging, true)
			return err == nil && ok
		}, 5*time.Second, 50*time.Millisecond)
		_, err = ch.QueueDelete(staging, false, false, false)
		require.NoError(t, err)
		require.NoError(t, ch.Confirm(false))
		publish = func(c poisonCase) {
			h := amqp091.Table{}
			for k, v := range tmpl.Headers {
				h[k] = v
			}
			id := driver.NewID()
			h["id"] = id
			if c.task != "" {
				h["task"] = c.task
			}
			h["x-case"] = c.name
			pub := amqp091.Publishing{Headers: h, ContentType: tmpl.ContentType, ContentEncoding: tmpl.ContentEncoding,
				DeliveryMode: 2, CorrelationId: id, Body: tmpl.Body}
			if c.noHeaders {
				pub.Headers = amqp091.Table{"x-case": c.name}
			}
			if c.contentType != "" {
				pub.ContentType = c.contentType
			}
			if c.body != nil {
				pub.Body = c.body
			}
			conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false, pub)
			require.NoError(t, err)
			ok, err := conf.WaitContext(ctx)
			require.NoError(t, err)
			require.True(t, ok)
		}
		deadLetters = func() map[string]string {
			out := map[string]string{}
			c2, err := conn.Channel()
			require.NoError(t, err)
			defer c2.Close()
			for {
				d, ok, err := c2.Get(queue+amqp.DeadLetterQueueSuffix, false) // left in place (no ack), returned on close
				require.NoError(t, err)
				if !ok {
					return out
				}
				name, _ := d.Headers["x-case"].(string)
				reason, _ := d.Headers[amqp.HeaderDeadLetterReason].(string)
				out[name] = reason
			}
		}
		cases = poisonCases(newPoisonBodies(t, tmpl.Body), marker)
	default:
		t.Fatalf("unexpected broker %T", b)
	}

	// Interleave valid tasks with the poison.
	var ids []string
	validBatch := func(n int) {
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("ok-%d-%s", len(ids), randID())
			_, err := tasks.Record.With(runtime.WithApp(papp), runtime.Queue(queue)).Delay(ctx, id, 0)
			require.NoError(t, err)
			ids = append(ids, id)
		}
	}
	for _, c := range cases {
		validBatch(20)
		publish(c)
	}
	validBatch(20)

	lost, dups := s.waitAll(ids, 30*time.Second)
	require.Eventually(t, func() bool { return w.Stats().DeadLettered >= int64(len(cases)) }, 20*time.Second, 50*time.Millisecond,
		"dead-lettered %d of %d", w.Stats().DeadLettered, len(cases))
	time.Sleep(300 * time.Millisecond)
	st := w.Stats()
	dl := deadLetters()
	for _, c := range cases {
		reason, ok := dl[c.name]
		require.True(t, ok, "%s: no dead letter (have %v)", c.name, dl)
		require.NotEmpty(t, reason, c.name)
		t.Logf("%-24s → %s", c.name, truncate(reason, 160))
	}
	_, statErr := os.Stat(marker)
	require.True(t, os.IsNotExist(statErr), "the pickle payload ran")
	for l := range s.counts() {
		require.False(t, strings.HasPrefix(l, "typed "), "a poison rel.typed ran: %s", l)
	}
	report(t, figure{Scenario: "4 poison (9 kinds) + 200 valid", Broker: brokerName, Tasks: int64(len(ids)), Lost: int64(len(lost)), Duplicates: int64(dups),
		Surfaced: st.DeadLettered, Notes: fmt.Sprintf("%d/%d poison dead-lettered with reason (Stats().DeadLettered=%d), pickle never decoded", len(dl), len(cases), st.DeadLettered)})
	require.Empty(t, lost)
	require.Equal(t, int64(len(cases)), st.DeadLettered)
}
