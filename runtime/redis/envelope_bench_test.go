package redis

import (
	"testing"

	"github.com/taskgen/taskgen/runtime/driver"
)

func BenchmarkEnvelopeEncode(b *testing.B) {
	m := &driver.Message{ContentType: driver.ContentTypeMsgpack, ContentEncoding: "binary", CorrelationID: "0b4f5e5f-9d73-48af-afad-ab5dde8830d6", DeliveryMode: 2,
		Headers: driver.TaskHeaders{Lang: "go", Task: "signup.send_welcome_email", ID: "0b4f5e5f-9d73-48af-afad-ab5dde8830d6", RootID: "0b4f5e5f-9d73-48af-afad-ab5dde8830d6",
			ArgsRepr: "('ann@example.com',)", KwargsRepr: "{}", Origin: "gen1234@bench"},
		Body: []byte("\x93\x91\xb0ann@example.com\x80\x84\xa9callbacks\xc0\xa8errbacks\xc0\xa5chain\xc0\xa5chord\xc0")}
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = appendEnvelope(buf[:0], "celery", m)
	}
}

func BenchmarkEnvelopeDecode(b *testing.B) {
	m := &driver.Message{ContentType: driver.ContentTypeMsgpack, ContentEncoding: "binary", CorrelationID: "0b4f5e5f-9d73-48af-afad-ab5dde8830d6", DeliveryMode: 2,
		Headers: driver.TaskHeaders{Lang: "go", Task: "signup.send_welcome_email", ID: "0b4f5e5f-9d73-48af-afad-ab5dde8830d6", RootID: "0b4f5e5f-9d73-48af-afad-ab5dde8830d6",
			ArgsRepr: "('ann@example.com',)", KwargsRepr: "{}", Origin: "gen1234@bench"},
		Body: []byte("\x93\x91\xb0ann@example.com\x80\x84\xa9callbacks\xc0\xa8errbacks\xc0\xa5chain\xc0\xa5chord\xc0")}
	raw, _ := appendEnvelope(nil, "celery", m)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := decodeEnvelope(raw, "celery"); err != nil {
			b.Fatal(err)
		}
	}
}
