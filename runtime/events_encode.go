package runtime

// The JSON encoding of Celery events: each event's fields in Celery's
// order, appended to a reused buffer without reflection.

import (
	"math"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// appendEvent appends the JSON object of ev, fields in Celery's order.
func (d *eventDispatcher) appendEvent(b []byte, ev *event) []byte {
	d.clock++
	// {"hostname": …, "utcoffset": …, "pid": …, "clock": , encoded once per
	// offset change.
	if off := d.utcOffset(ev.ts); off != d.headOff || d.head == nil {
		h := append(d.head[:0], `{"hostname": `...)
		h = evAppendString(h, d.opts.Hostname)
		h = append(h, `, "utcoffset": `...)
		h = strconv.AppendInt(h, int64(off), 10)
		h = append(h, `, "pid": `...)
		h = strconv.AppendInt(h, int64(d.pid), 10)
		d.head, d.headOff = append(h, `, "clock": `...), off
	}
	b = append(b, d.head...)
	b = strconv.AppendInt(b, d.clock, 10)
	switch ev.typ {
	case driver.EventWorkerOnline, driver.EventWorkerHeartbeat, driver.EventWorkerOffline:
		var active, processed int64
		if d.opts.Stats != nil {
			active, processed = d.opts.Stats()
		}
		b = append(b, `, "freq": `...)
		b = evAppendFloat(b, d.opts.HeartbeatInterval.Seconds())
		b = append(b, `, "active": `...)
		b = strconv.AppendInt(b, active, 10)
		b = append(b, `, "processed": `...)
		b = strconv.AppendInt(b, processed, 10)
		b = append(b, `, "loadavg": [`...)
		for i, l := range loadAvg() {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = evAppendFloat(b, l)
		}
		b = append(b, `], "sw_ident": "`+driver.EventSoftwareIdent+`", "sw_ver": `...)
		b = evAppendString(b, d.swVer)
		b = append(b, `, "sw_sys": `...)
		b = evAppendString(b, softwareSystem())
	default:
		b = append(b, `, "uuid": `...)
		b = evAppendString(b, ev.uuid)
		switch ev.typ {
		case driver.EventTaskReceived:
			b = append(b, `, "name": `...)
			b = evAppendString(b, ev.name)
			b = append(b, `, "args": `...)
			b = evAppendString(b, orDefault(ev.args, "()"))
			b = append(b, `, "kwargs": `...)
			b = evAppendString(b, orDefault(ev.kwargs, "{}"))
			b = append(b, `, "root_id": `...)
			b = evAppendNullable(b, ev.rootID)
			b = append(b, `, "parent_id": `...)
			b = evAppendNullable(b, ev.parentID)
			b = append(b, `, "retries": `...)
			b = strconv.AppendInt(b, int64(ev.retries), 10)
			b = append(b, `, "eta": `...)
			b = evAppendTime(b, ev.eta)
			b = append(b, `, "expires": `...)
			b = evAppendTime(b, ev.expires)
			if ev.routingKey != "" {
				// Not in Celery's task-received; celery.events.state.Task
				// knows the field from task-sent, so Flower shows it.
				b = append(b, `, "routing_key": `...)
				b = evAppendString(b, ev.routingKey)
			}
			if ev.group != "" {
				// Not in Celery's events either: the group of a member
				// (its message's group and group_index headers) and, for
				// a chord header member, the id of the chord body, for
				// taskmon's group page.
				b = append(b, `, "group": `...)
				b = evAppendString(b, ev.group)
				if ev.groupIndex != nil {
					b = append(b, `, "group_index": `...)
					b = strconv.AppendInt(b, int64(*ev.groupIndex), 10)
				}
				if id := chordBodyID(ev.member); id != "" {
					b = append(b, `, "chord": `...)
					b = evAppendString(b, id)
				}
			}
		case driver.EventTaskSucceeded:
			b = append(b, `, "result": `...)
			// The repr goes through a scratch buffer of the sender.
			d.scratch = wire.AppendPyRepr(d.scratch[:0], ev.result, 0)
			if len(d.scratch) > wire.MaxReprLen {
				d.scratch = append(d.scratch[:0], wire.TruncateRepr(string(d.scratch))...)
			}
			b = evAppendString(b, d.scratch)
			b = append(b, `, "runtime": `...)
			b = evAppendSeconds(b, ev.runtime.Nanoseconds(), 1e9)
		case driver.EventTaskFailed, driver.EventTaskRetried:
			b = append(b, `, "exception": `...)
			b = evAppendString(b, driver.ExceptionRepr(ev.exc))
			b = append(b, `, "traceback": `...)
			tb := ev.tb
			if tb == "" {
				tb = exceptionLine(ev.exc)
			}
			b = evAppendString(b, tb)
		case driver.EventTaskRejected:
			b = append(b, `, "requeue": false`...)
		case driver.EventTaskRevoked:
			b = append(b, `, "terminated": `...)
			b = strconv.AppendBool(b, ev.terminated)
			b = append(b, `, "signum": `...)
			if ev.terminated {
				b = append(b, `"SIGTERM"`...)
			} else {
				b = append(b, "null"...)
			}
			b = append(b, `, "expired": `...)
			b = strconv.AppendBool(b, ev.expired)
		}
	}
	if ev.traceparent != "" {
		// Not in Celery's events: the trace the task belongs to.
		b = append(b, `, "traceparent": `...)
		b = evAppendString(b, ev.traceparent)
	}
	b = append(b, `, "timestamp": `...)
	// Microseconds, as Python's time.time() resolves them.
	b = evAppendSeconds(b, ev.ts.UnixMicro(), 1e6)
	b = append(b, `, "type": `...)
	b = evAppendString(b, ev.typ)
	return append(b, '}')
}

func (d *eventDispatcher) utcOffset(t time.Time) int {
	h := t.Unix() / 3600
	if h != d.offHour || d.offHour == 0 {
		d.offHour, d.offVal = h, int64(driver.UTCOffset(t))
	}
	return int(d.offVal)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// exceptionLine is the last line of a Python traceback, for failures without
// a stack: "signup.HTTPError: email provider answered 503".
func exceptionLine(e *driver.ExceptionInfo) string {
	if e == nil {
		return ""
	}
	typ := e.Type
	if e.Module != "" && e.Module != "builtins" {
		typ = e.Module + "." + typ
	}
	parts := make([]string, len(e.Message))
	for i, m := range e.Message {
		if s, ok := m.(string); ok {
			parts[i] = s
		} else {
			parts[i] = wire.Repr(m)
		}
	}
	return typ + ": " + strings.Join(parts, ", ") + "\n"
}

var (
	swSys     = sync.OnceValue(func() string { return capitalize(goruntime.GOOS) })
	swVersion = sync.OnceValue(func() string {
		if bi, ok := debug.ReadBuildInfo(); ok {
			if bi.Main.Path == "github.com/taskgen/taskgen" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
				return strings.TrimPrefix(bi.Main.Version, "v")
			}
			for _, dep := range bi.Deps {
				if dep.Path == "github.com/taskgen/taskgen" {
					return strings.TrimPrefix(dep.Version, "v")
				}
			}
		}
		return "devel"
	})
)

func softwareSystem() string  { return swSys() }
func softwareVersion() string { return swVersion() }

func capitalize(s string) string {
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	return strings.ToUpper(string(r)) + s[n:]
}

// loadAvg reads /proc/loadavg: [1m, 5m, 15m], rounded up to 2 decimals as
// Celery does; zeros where it is not available.
func loadAvg() [3]float64 {
	var l [3]float64
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	f := strings.Fields(string(raw))
	for i := 0; i < 3 && i < len(f); i++ {
		v, err := strconv.ParseFloat(f[i], 64)
		if err == nil {
			l[i] = math.Ceil(v*100) / 100
		}
	}
	return l
}

func evAppendNullable(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return evAppendString(b, s)
}

func evAppendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = driver.AppendTime(b, t)
	return append(b, '"')
}

// evAppendFloat writes a float as Python's json does (always with a dot or
// an exponent, so it reads back as a float).
func evAppendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, 'g', -1, 64)
	for _, c := range b[start:] {
		if c == '.' || c == 'e' || c == 'E' {
			return b
		}
	}
	return append(b, ".0"...)
}

// evAppendSeconds writes n units of 1/per seconds (per 1e6 or 1e9) as a
// decimal float, trailing zeros trimmed but one digit kept after the dot:
// the value Python's json reads is the float nearest to n/per, as
// strconv.AppendFloat's shortest form of float64(n)/per gives for |n| <
// 2^53, without its cost (the timestamp of every event).
func evAppendSeconds(b []byte, n int64, per int64) []byte {
	if n < 0 {
		return evAppendFloat(b, float64(n)/float64(per))
	}
	b = strconv.AppendInt(b, n/per, 10)
	frac := n % per
	digits := 9
	if per == 1e6 {
		digits = 6
	}
	var tmp [9]byte
	for i := digits - 1; i >= 0; i-- {
		tmp[i] = byte('0' + frac%10)
		frac /= 10
	}
	end := digits
	for end > 1 && tmp[end-1] == '0' {
		end--
	}
	b = append(b, '.')
	return append(b, tmp[:end]...)
}

const evHex = "0123456789abcdef"

// evSafe marks the bytes a JSON string takes as they are.
var evSafe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' && c != 0x7f
	}
	return t
}()

// evAppendString appends s as a JSON string (invalid UTF-8 replaced).
func evAppendString[S ~string | ~[]byte](b []byte, s S) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		// Copy the longest run of bytes that need no escaping at once.
		j := i
		for j < len(s) && evSafe[s[j]] {
			j++
		}
		b = append(b, s[i:j]...)
		if i = j; i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == '<' || c == '>' || c == '&' || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', evHex[c>>4], evHex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune([]byte(s[i:min(i+utf8.UTFMax, len(s))]))
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', evHex[r&0xf])
		default:
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}
