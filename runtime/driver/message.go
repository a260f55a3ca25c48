package driver

import (
	"bytes"
	"maps"
	"time"

	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// Content types and encodings of Celery's serializers.
const (
	ContentTypeMsgpack    = wire.ContentTypeMsgpack
	ContentTypeJSON       = wire.ContentTypeJSON
	ContentEncodingBinary = wire.ContentEncodingBinary
	ContentEncodingUTF8   = wire.ContentEncodingUTF8
	DefaultQueue          = "celery"
	DefaultExchange       = "celery"
	ProtocolLang          = "go"
)

// Message is one Celery protocol v2 task message: AMQP-style properties, the
// task headers, and the serialized body [args, kwargs, embed]. Transports map it
// to their wire form (AMQP frames, kombu's Redis JSON envelope) and back.
type Message struct {
	// Properties.
	ContentType     string
	ContentEncoding string
	CorrelationID   string // the task id
	ReplyTo         string
	DeliveryMode    uint8 // 2 = persistent
	Priority        uint8
	Expiration      string // milliseconds as a decimal string, set with Expires

	Headers TaskHeaders
	// Body is the serialized [args, kwargs, embed] triple.
	Body []byte

	// Delivery information filled in by the transport on receipt.
	Exchange    string
	RoutingKey  string
	Redelivered bool
}

// TaskHeaders are the protocol v2 task headers. Unknown headers received from other
// producers are kept in Extra and sent on unchanged when a task is re-published.
type TaskHeaders struct {
	Lang       string
	Task       string // task name; required
	ID         string // task id; required
	Shadow     string
	ETA        time.Time // zero = none
	Expires    time.Time // zero = none
	Group      string
	GroupIndex *int
	Retries    int
	// TimeLimit is [hard, soft] in seconds; zero means none.
	TimeLimit    [2]float64
	RootID       string
	ParentID     string
	ArgsRepr     string
	KwargsRepr   string
	Origin       string
	IgnoreResult bool
	// Compression is the compression MIME type of the body, if any.
	Compression string
	// Extra holds headers this runtime does not interpret, by name.
	Extra map[string]any
}

// FormatTime formats t as Celery expects eta and expires: ISO-8601 in UTC with
// exactly six fractional digits (truncated) and an explicit "+00:00" offset,
// e.g. "2026-11-23T19:42:38.281413+00:00".
func FormatTime(t time.Time) string { return wire.FormatTime(t) }

// AppendTime appends FormatTime(t) to b.
func AppendTime(b []byte, t time.Time) []byte { return wire.AppendTime(b, t) }

// ParseTime parses a Celery ISO-8601 time: with or without fraction, with an
// offset ("+00:00", "+0000") or "Z", or naive (taken as UTC, as Celery 5.2
// does); a date alone is midnight UTC. Times outside Python's datetime range
// are rejected.
func ParseTime(s string) (time.Time, error) { return wire.ParseTime(s) }

// Clone returns a copy of m that shares no mutable state with it: the body
// and the extra headers are copied.
func (m *Message) Clone() *Message {
	c := *m
	c.Body = bytes.Clone(m.Body)
	if m.Headers.Extra != nil {
		c.Headers.Extra = maps.Clone(m.Headers.Extra)
	}
	return &c
}

// Repr returns Python's repr of a decoded value, as Celery writes argsrepr and
// kwargsrepr (truncated to 1024 characters).
func Repr(v any) string { return wire.Repr(v) }
