package driver

import (
	"math"
	"strings"
	"time"

	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// Celery event types (WIRE §6.3).
const (
	EventWorkerOnline    = "worker-online"
	EventWorkerHeartbeat = "worker-heartbeat"
	EventWorkerOffline   = "worker-offline"
	EventTaskSent        = "task-sent"
	EventTaskReceived    = "task-received"
	EventTaskStarted     = "task-started"
	EventTaskSucceeded   = "task-succeeded"
	EventTaskFailed      = "task-failed"
	EventTaskRetried     = "task-retried"
	EventTaskRejected    = "task-rejected"
	EventTaskRevoked     = "task-revoked"
)

// EventExchange is the exchange Celery publishes events on.
const EventExchange = "celeryev"

// EventSoftwareIdent is the sw_ident field of the worker events of taskgen
// workers (Python Celery sends "py-celery").
const EventSoftwareIdent = "taskgen"

// EventRoutingKey returns the routing key of an event type: the type with '-'
// replaced by '.', e.g. "worker.heartbeat". A list of task events goes on
// "task.multi".
func EventRoutingKey(eventType string) string { return strings.ReplaceAll(eventType, "-", ".") }

// DefaultHeartbeatInterval is the default interval of worker-heartbeat events,
// Celery's freq.
const DefaultHeartbeatInterval = 2 * time.Second

// ExceptionRepr returns the Python repr of an exception, as task-failed
// events carry it: "HTTPError('email provider answered 503')".
func ExceptionRepr(e *ExceptionInfo) string {
	if e == nil {
		return "Exception()"
	}
	b := make([]byte, 0, 64)
	b = append(b, e.Type...)
	b = append(b, '(')
	for i, m := range e.Message {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = wire.AppendPyRepr(b, m, 0)
	}
	return wire.TruncateRepr(string(append(b, ')')))
}

// UTCOffset returns Celery's utcoffset field for the local zone at t: hours,
// positive WEST of UTC (Python's time.timezone // 3600), so UTC+2 gives -2.
func UTCOffset(t time.Time) int {
	_, east := t.Zone()
	return int(math.Floor(float64(-east) / 3600))
}
