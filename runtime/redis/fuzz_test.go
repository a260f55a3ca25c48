package redis

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeEnvelope feeds arbitrary bytes to every decoder of what is read
// from Redis: the kombu envelope, the unacked entry, and the in-place
// redelivered/priority readers. None may panic; a decoded message must have a
// task name and id.
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
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, _, err := decodeEnvelope(raw, "celery")
		if err == nil && m != nil && (m.Headers.Task == "" || m.Headers.ID == "") {
			t.Fatalf("decoded a message without task or id: %+v", m.Headers)
		}
		if env, _, _, err := parseUnackedEntry(raw); err == nil {
			_, _, _ = decodeEnvelope(env, "celery")
		}
		_ = markRedelivered(raw)
		_ = envelopePriority(raw)
	})
}
