package driver

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// headerOrder is the order in which Celery 5.2 inserts the protocol v2 headers.
var headerOrder = [...]string{
	"lang", "task", "id", "shadow", "eta", "expires", "group", "group_index",
	"retries", "timelimit", "root_id", "parent_id", "argsrepr", "kwargsrepr",
	"origin", "ignore_result",
}

func nullableString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func timeValue(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return FormatTime(t)
}

func limitValue(f float64) any {
	if f == 0 {
		return nil
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return int64(f)
	}
	return f
}

// Get returns the value of header name as Celery would send it (strings,
// nil, int64, float64, bool, []any), and whether it is set at all.
func (h *TaskHeaders) Get(name string) (any, bool) {
	switch name {
	case "lang":
		return h.Lang, true
	case "task":
		return h.Task, true
	case "id":
		return h.ID, true
	case "shadow":
		return nullableString(h.Shadow), true
	case "eta":
		return timeValue(h.ETA), true
	case "expires":
		return timeValue(h.Expires), true
	case "group":
		return nullableString(h.Group), true
	case "group_index":
		if h.GroupIndex == nil {
			return nil, true
		}
		return int64(*h.GroupIndex), true
	case "retries":
		return int64(h.Retries), true
	case "timelimit":
		return []any{limitValue(h.TimeLimit[0]), limitValue(h.TimeLimit[1])}, true
	case "root_id":
		return nullableString(h.RootID), true
	case "parent_id":
		return nullableString(h.ParentID), true
	case "argsrepr":
		return h.ArgsRepr, true
	case "kwargsrepr":
		return h.KwargsRepr, true
	case "origin":
		return h.Origin, true
	case "ignore_result":
		return h.IgnoreResult, true
	case "compression":
		if h.Compression == "" {
			return nil, false
		}
		return h.Compression, true
	}
	v, ok := h.Extra[name]
	return v, ok
}

// Range calls fn for every header in Celery's order, then the compression header
// if set, then Extra headers in sorted order. Values are as for Get.
func (h *TaskHeaders) Range(fn func(name string, value any)) {
	for _, name := range headerOrder {
		v, _ := h.Get(name)
		fn(name, v)
	}
	if h.Compression != "" {
		fn("compression", h.Compression)
	}
	for _, k := range slices.Sorted(maps.Keys(h.Extra)) {
		if IsKnownHeader(k) {
			continue
		}
		fn(k, h.Extra[k])
	}
}

// Map returns the headers as a map (see Range).
func (h *TaskHeaders) Map() map[string]any {
	m := make(map[string]any, len(headerOrder)+len(h.Extra)+1)
	h.Range(func(k string, v any) { m[k] = v })
	return m
}

// IsKnownHeader reports whether name is one of the protocol v2 headers that
// TaskHeaders has a field for (anything else goes to TaskHeaders.Extra).
func IsKnownHeader(name string) bool { return knownHeaderIndex([]byte(name)) >= 0 }

// ParseHeaders reads protocol v2 headers from a decoded map, whatever decoder
// produced it (JSON with or without UseNumber, msgpack, an AMQP table). Every
// header Celery 5.2 sends has a field; unknown headers (Celery 5.3+'s stamps,
// stamped_headers, replaced_task_nesting, kombu's redelivered, user headers)
// are kept in Extra, ignored, and sent on when the task is re-published. Null
// values mean "not set". It fails when task or id is missing or when a known
// header has the wrong type; eta and expires accept any ISO-8601 form Celery
// writes (offset, "Z" or naive UTC).
func ParseHeaders(m map[string]any) (TaskHeaders, error) {
	var r HeaderReader
	for k, v := range m {
		r.Add(k, v)
	}
	return r.Parse()
}

// Indexes of the known headers in HeaderReader (the order in which Parse
// checks them, so the first error reported is ParseHeaders' first).
const (
	hLang = iota
	hTask
	hID
	hShadow
	hGroup
	hRootID
	hParentID
	hArgsRepr
	hKwargsRepr
	hOrigin
	hCompression
	hETA
	hExpires
	hRetries
	hGroupIndex
	hIgnoreResult
	hTimeLimit
	numKnownHeaders
)

var knownHeaderNames = [numKnownHeaders]string{
	hLang: "lang", hTask: "task", hID: "id", hShadow: "shadow", hGroup: "group",
	hRootID: "root_id", hParentID: "parent_id", hArgsRepr: "argsrepr", hKwargsRepr: "kwargsrepr",
	hOrigin: "origin", hCompression: "compression", hETA: "eta", hExpires: "expires",
	hRetries: "retries", hGroupIndex: "group_index", hIgnoreResult: "ignore_result", hTimeLimit: "timelimit",
}

// knownHeaderIndex returns the index of a known header, or -1. Taking the
// name as bytes lets a streaming decoder look it up without a string.
func knownHeaderIndex(name []byte) int {
	switch string(name) {
	case "lang":
		return hLang
	case "task":
		return hTask
	case "id":
		return hID
	case "shadow":
		return hShadow
	case "group":
		return hGroup
	case "root_id":
		return hRootID
	case "parent_id":
		return hParentID
	case "argsrepr":
		return hArgsRepr
	case "kwargsrepr":
		return hKwargsRepr
	case "origin":
		return hOrigin
	case "compression":
		return hCompression
	case "eta":
		return hETA
	case "expires":
		return hExpires
	case "retries":
		return hRetries
	case "group_index":
		return hGroupIndex
	case "ignore_result":
		return hIgnoreResult
	case "timelimit":
		return hTimeLimit
	}
	return -1
}

// HeaderReader collects a task message's headers one at a time, as a
// streaming decoder reads them, and parses them as ParseHeaders parses a
// map, without building the map first. The zero value is ready; a header
// added twice keeps its last value.
type HeaderReader struct {
	known [numKnownHeaders]any    // nil: absent, or null (the same to Parse)
	strs  [numKnownHeaders]string // string values added with AddKeyString
	isStr uint32                  // bit i set: header i's value is strs[i], not known[i]
	extra map[string]any
}

// isStr has a bit for each known header (a compile-time check).
const _ = uint32(1 << (numKnownHeaders - 1))

// Add records header name with its decoded value.
func (r *HeaderReader) Add(name string, v any) {
	if !r.setKnown([]byte(name), v) {
		r.addExtra(name, v)
	}
}

// AddKey is Add for a name the decoder holds as bytes (which may alias its
// input: only an unknown header's name is copied).
func (r *HeaderReader) AddKey(name []byte, v any) {
	if !r.setKnown(name, v) {
		r.addExtra(string(name), v)
	}
}

// AddKeyString is AddKey for a string value. A known header's string is
// kept as it is, not boxed in an interface: most of a task message's headers
// are strings, and this saves an allocation for each.
func (r *HeaderReader) AddKeyString(name []byte, s string) {
	i := knownHeaderIndex(name)
	if i < 0 {
		r.addExtra(string(name), s)
		return
	}
	r.known[i], r.strs[i] = nil, s
	r.isStr |= 1 << i
}

// setKnown records v when name is a known header, and reports whether it is.
func (r *HeaderReader) setKnown(name []byte, v any) bool {
	i := knownHeaderIndex(name)
	if i >= 0 {
		r.known[i], r.strs[i] = v, ""
		r.isStr &^= 1 << i
	}
	return i >= 0
}

// value returns known header i's value as Add or AddKeyString recorded it.
func (r *HeaderReader) value(i int) any {
	if r.isStr&(1<<i) != 0 {
		return r.strs[i]
	}
	return r.known[i]
}

func (r *HeaderReader) addExtra(name string, v any) {
	if r.extra == nil {
		r.extra = make(map[string]any)
	}
	r.extra[name] = v
}

// Parse returns the headers added so far as ParseHeaders would return them.
func (r *HeaderReader) Parse() (TaskHeaders, error) {
	var h TaskHeaders
	var err error
	str := func(i int) string {
		if err != nil {
			return ""
		}
		if r.isStr&(1<<i) != 0 {
			return r.strs[i]
		}
		v := r.known[i]
		if v == nil {
			return ""
		}
		switch s := v.(type) {
		case string:
			return s
		case []byte:
			return string(s)
		}
		err = fmt.Errorf("header %q: want a string, got %T", knownHeaderNames[i], v)
		return ""
	}
	h.Lang = str(hLang)
	h.Task = str(hTask)
	h.ID = str(hID)
	h.Shadow = str(hShadow)
	h.Group = str(hGroup)
	h.RootID = str(hRootID)
	h.ParentID = str(hParentID)
	h.ArgsRepr = str(hArgsRepr)
	h.KwargsRepr = str(hKwargsRepr)
	h.Origin = str(hOrigin)
	h.Compression = str(hCompression)
	if err != nil {
		return h, err
	}
	if h.Task == "" {
		return h, fmt.Errorf("header \"task\" missing: not a protocol v2 task message")
	}
	if h.ID == "" {
		return h, fmt.Errorf("header \"id\" missing")
	}
	for _, i := range [...]int{hETA, hExpires} {
		s := str(i)
		if err != nil {
			return h, err
		}
		if s == "" {
			continue
		}
		t, perr := ParseTime(s)
		if perr != nil {
			return h, fmt.Errorf("header %q: %q is not an ISO-8601 time", knownHeaderNames[i], s)
		}
		if i == hETA {
			h.ETA = t
		} else {
			h.Expires = t
		}
	}
	if v := r.value(hRetries); v != nil {
		n, ok := AnyToInt(v)
		if !ok {
			return h, fmt.Errorf("header \"retries\": want an integer, got %v", v)
		}
		h.Retries = int(n)
	}
	if v := r.value(hGroupIndex); v != nil {
		n, ok := AnyToInt(v)
		if !ok {
			return h, fmt.Errorf("header \"group_index\": want an integer, got %v", v)
		}
		i := int(n)
		h.GroupIndex = &i
	}
	if v := r.value(hIgnoreResult); v != nil {
		b, ok := v.(bool)
		if !ok {
			return h, fmt.Errorf("header \"ignore_result\": want a bool, got %v", v)
		}
		h.IgnoreResult = b
	}
	if v := r.value(hTimeLimit); v != nil {
		l, ok := v.([]any)
		if !ok || len(l) != 2 {
			return h, fmt.Errorf("header \"timelimit\": want [hard, soft], got %v", v)
		}
		for i, x := range l {
			if x == nil {
				continue
			}
			f, ok := AnyToFloat(x)
			if !ok || math.IsNaN(f) || f < 0 {
				return h, fmt.Errorf("header \"timelimit\": want [hard, soft] in seconds, got %v", v)
			}
			h.TimeLimit[i] = min(f, maxTimeLimit)
		}
	}
	h.Extra = r.extra
	return h, nil
}

// maxTimeLimit caps time limits (seconds) so they convert to a time.Duration.
const maxTimeLimit = 1 << 32

// AnyToInt converts a decoded header or field value (any integer type, or a
// float with an integral value) to int64.
func AnyToInt(v any) (int64, bool) { return wire.AnyToInt(v) }

// AnyToFloat converts a decoded numeric value to float64.
func AnyToFloat(v any) (float64, bool) { return wire.AnyToFloat(v) }
