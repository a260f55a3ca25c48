package redis

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/taskgen/taskgen/runtime/driver"
)

// FuzzDecodeEnvelope feeds arbitrary bytes to every decoder of what is read
// from Redis: the kombu envelope, the unacked entry, and the in-place
// redelivered/priority readers. None may panic; a decoded message must have a
// task name and id, and headers equal to what ParseHeaders makes of them as a
// map.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, dir := range []string{"../../testdata/celery/redis", "testdata"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.bin"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(`{"body": "", "properties": {}}`))
	f.Add([]byte(`[{"body": "W10="}, "", "celery"]`))
	// A repeated headers object: the last one counts, as in a map.
	f.Add([]byte(`{"body": "W10=", "headers": {"task": "a", "id": "1", "origin": "x"}, "headers": {"task": "b", "id": "2"},` +
		` "properties": {"body_encoding": "base64", "delivery_tag": "t", "delivery_info": {"exchange": "", "routing_key": "celery"}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, _, err := decodeEnvelope(raw, "celery")
		if err == nil && m != nil && (m.Headers.Task == "" || m.Headers.ID == "") {
			t.Fatalf("decoded a message without task or id: %+v", m.Headers)
		}
		checkHeadersAsMap(t, raw, m, err)
		if env, _, _, err := parseUnackedEntry(raw); err == nil {
			_, _, _ = decodeEnvelope(env, "celery")
		}
		_ = markRedelivered(raw)
		_ = envelopePriority(raw)
	})
}

// checkHeadersAsMap checks decodeEnvelope's streaming header reader against
// the map route (the envelope's headers decoded into a map, kombu's
// redelivered dropped, then driver.ParseHeaders): same headers, same error.
func checkHeadersAsMap(t *testing.T, raw []byte, m *driver.Message, err error) {
	t.Helper()
	e, rerr := readEnvelope(raw, false)
	if rerr != nil || e.headers == nil || !e.haveBody || !e.haveProps || e.tag == "" || !e.haveInfo || !e.haveExchange || !e.haveRK {
		return // decodeEnvelope failed before the headers, or no headers object
	}
	if _, berr := e.decodedBody(); berr != nil {
		return
	}
	redelivered, _ := e.headers["redelivered"].(bool)
	delete(e.headers, "redelivered")
	want, werr := driver.ParseHeaders(e.headers)
	if (werr == nil) != (err == nil) || (werr != nil && !strings.Contains(err.Error(), werr.Error())) {
		t.Fatalf("streaming headers: err %v; map route: err %v", err, werr)
	}
	if err != nil {
		return
	}
	if !reflect.DeepEqual(m.Headers, want) {
		t.Fatalf("streaming headers\n%+v\nmap route\n%+v", m.Headers, want)
	}
	if redelivered && !m.Redelivered {
		t.Fatalf("headers.redelivered true, message not marked redelivered")
	}
}
