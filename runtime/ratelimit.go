package runtime

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/taskgen/taskgen/internal/anynum"
	"github.com/taskgen/taskgen/runtime/codegen"
)

// Remote rate limits: Celery's `control rate_limit TASK RATE` changes a
// task's rate limit on the workers that receive it, until they stop. The
// overrides live in controlState.rates, a copy-on-write map read with one
// atomic load per dispatch (rateInterval), so concurrent dispatches never
// see a half-written limit.

// rateSetting is a task's rate limit as set over remote control.
type rateSetting struct {
	interval time.Duration // between two starts; 0: no limit
	text     string        // what `inspect registered` shows after rate_limit=
	shown    bool          // false: the limit was set to None (nothing shown)
}

// rateInterval returns the time between two starts of def on this worker,
// and false when def is not rate limited: the remote-control setting when
// there is one, otherwise the task's //task:rate_limit.
func (c *controlState) rateInterval(def *codegen.TaskDef) (time.Duration, bool) {
	if p := c.rates.Load(); p != nil {
		if s, ok := (*p)[def.Name]; ok {
			return s.interval, s.interval > 0
		}
	}
	if def.RateLimit.IsZero() {
		return 0, false
	}
	return def.RateLimit.Per / time.Duration(def.RateLimit.N), true
}

// rateText returns what Celery's `inspect registered` shows as the task's
// rate_limit attribute, and false when it has none.
func (c *controlState) rateText(def *codegen.TaskDef) (string, bool) {
	if p := c.rates.Load(); p != nil {
		if s, ok := (*p)[def.Name]; ok {
			return s.text, s.shown
		}
	}
	r := def.RateLimit
	if r.IsZero() {
		return "", false
	}
	switch r.Per {
	case time.Second:
		return strconv.Itoa(r.N) + "/s", true
	case time.Minute:
		return strconv.Itoa(r.N) + "/m", true
	case time.Hour:
		return strconv.Itoa(r.N) + "/h", true
	}
	return strconv.FormatFloat(float64(r.N)/r.Per.Seconds(), 'g', -1, 64) + "/s", true
}

// setRate records the remote-control rate limit of task name.
func (c *controlState) setRate(name string, s rateSetting) {
	c.ratesMu.Lock()
	defer c.ratesMu.Unlock()
	next := map[string]rateSetting{}
	if p := c.rates.Load(); p != nil {
		for k, v := range *p {
			next[k] = v
		}
	}
	next[name] = s
	c.rates.Store(&next)
}

// rateLimitReply is the worker side of Celery's rate_limit command
// (celery/worker/control.py): the rate is parsed as celery.utils.time.rate
// does, then the task looked up, and the replies and errors are Celery's.
func (w *Worker) rateLimitReply(args map[string]any) map[string]any {
	name, hasName := args["task_name"]
	value, hasRate := args["rate_limit"]
	switch {
	case !hasName && !hasRate:
		return map[string]any{"error": `TypeError("rate_limit() missing 2 required positional arguments: 'task_name' and 'rate_limit'")`}
	case !hasName:
		return map[string]any{"error": `TypeError("rate_limit() missing 1 required positional argument: 'task_name'")`}
	case !hasRate:
		return map[string]any{"error": `TypeError("rate_limit() missing 1 required positional argument: 'rate_limit'")`}
	}
	perSec, text, errReply := celeryRate(value)
	if errReply != nil {
		return errReply
	}
	taskName, _ := name.(string)
	def := w.lookup(taskName)
	if def == nil {
		w.log.Error("rate limit attempt for unknown task", "task", name)
		return map[string]any{"error": "unknown task"}
	}
	var interval time.Duration
	if perSec > 0 && !math.IsInf(perSec, 1) {
		iv := float64(time.Second) / perSec
		if iv > math.MaxInt64/2 {
			iv = math.MaxInt64 / 2
		}
		interval = time.Duration(iv)
	}
	w.ctl.setRate(def.Name, rateSetting{interval: interval, text: text, shown: value != nil})
	// Celery's reset_rate_limits: a new bucket, so the next start is not
	// held back by a slot the old limit reserved.
	w.limitMu.Lock()
	delete(w.limiters, def.Name)
	w.limitMu.Unlock()
	if pyFalsy(value) {
		w.log.Info("rate limits disabled for tasks of type "+def.Name, "task", def.Name)
		return map[string]any{"ok": "rate limit disabled successfully"}
	}
	w.log.Info("new rate limit for tasks of type "+def.Name, "task", def.Name, "rate_limit", text)
	return map[string]any{"ok": "new rate limit set successfully"}
}

// pyFalsy is Python's `not v` for the values a rate_limit argument takes.
func pyFalsy(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case bool:
		return !x
	}
	f, ok := number(v)
	return ok && f == 0
}

// number converts a decoded JSON or msgpack number.
func number(v any) (float64, bool) { return anynum.Float64(v) }

// celeryRate converts a rate limit as celery.utils.time.rate does: "N/s",
// "N/m", "N/h" or "N" (per second), N a float; None, "" and 0 mean no
// limit; a number is per second. It returns the rate in tasks per second,
// the text `inspect registered` shows, or Celery's error reply. Celery
// takes negative and NaN rates and then holds the task forever; taskgen
// refuses them with the same "Invalid rate limit string" error.
func celeryRate(v any) (perSec float64, text string, errReply map[string]any) {
	invalid := func(exc string) (float64, string, map[string]any) {
		return 0, "", map[string]any{"error": "Invalid rate limit string: " + exc}
	}
	switch x := v.(type) {
	case nil:
		return 0, "None", nil
	case bool:
		if x {
			return 1, "True", nil
		}
		return 0, "False", nil
	case string:
		if x == "" {
			return 0, "", nil
		}
		ops, modifier, _ := strings.Cut(x, "/")
		var per float64
		switch modifier {
		case "", "s":
			per = 1
		case "m":
			per = 60
		case "h":
			per = 3600
		default:
			// Celery's rate() raises KeyError, which its rate_limit does
			// not catch: kombu's pidbox replies with the exception's repr.
			return 0, "", map[string]any{"error": "KeyError(" + pyRepr(modifier) + ")"}
		}
		n, ok := pyFloat(ops)
		if !ok {
			return invalid("ValueError(" + pyRepr("could not convert string to float: "+pyRepr(ops)) + ")")
		}
		if n < 0 || math.IsNaN(n) {
			return invalid("ValueError(" + pyRepr(fmt.Sprintf("rate limit %s: want 0 (no limit) or a positive rate such as 10/s, 100/m or 1000/h", pyRepr(x))) + ")")
		}
		return n / per, x, nil
	}
	n, ok := number(v)
	if !ok {
		return invalid(fmt.Sprintf("TypeError('rate limit must be a string or a number, not %T')", v))
	}
	if n < 0 || math.IsNaN(n) {
		return invalid(fmt.Sprintf("ValueError('rate limit %v: want 0 (no limit) or a positive rate')", n))
	}
	return n, strconv.FormatFloat(n, 'f', -1, 64), nil
}

// pyFloat parses s as Python's float() does: surrounding spaces, signs,
// exponents, inf, nan and underscores between digits; no hexadecimal.
func pyFloat(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if s == "" || strings.ContainsAny(s, "xXpP") {
		return 0, false
	}
	if strings.Contains(s, "_") {
		for i := 0; i < len(s); i++ {
			if s[i] == '_' && (i == 0 || i == len(s)-1 || !isDigit(s[i-1]) || !isDigit(s[i+1])) {
				return 0, false
			}
		}
		s = strings.ReplaceAll(s, "_", "")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		// Python's float() gives inf for a literal too large; ParseFloat
		// reports the range error with ±Inf.
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return f, true
		}
		return 0, false
	}
	return f, true
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// pyRepr is Python's repr of a str: single quotes unless the string holds
// a single quote and no double quote.
func pyRepr(s string) string {
	q := byte('\'')
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == rune(q):
			b.WriteByte('\\')
			b.WriteByte(q)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}
