package wire

import "time"

// Content types and encodings of Celery's serializers.
const (
	ContentTypeMsgpack    = "application/x-msgpack"
	ContentTypeJSON       = "application/json"
	ContentEncodingBinary = "binary"
	ContentEncodingUTF8   = "utf-8"
)

// FormatTime formats t as Celery expects eta and expires: ISO-8601 in UTC with
// exactly six fractional digits (truncated) and an explicit "+00:00" offset,
// e.g. "2026-11-23T19:42:38.281413+00:00". Celery 5.2 drops a task whose eta
// has more than six fractional digits (RFC 3339 with nanoseconds).
func FormatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000-07:00")
}

// AppendTime appends FormatTime(t) to b.
func AppendTime(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000-07:00")
}

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02",
}

// ParseTime parses a Celery ISO-8601 time: with or without fraction, with an
// offset ("+00:00", "+0000") or "Z", or naive (taken as UTC, as Celery 5.2
// does); a date alone is midnight UTC. Times outside Python's datetime range
// (years 1-9999 in UTC) are rejected.
func ParseTime(s string) (time.Time, error) {
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			if _, off := t.Zone(); off == 0 {
				t = t.UTC()
			}
			if y := t.UTC().Year(); y < 1 || y > 9999 {
				// Python's datetime range; FormatTime could not write it back.
				return time.Time{}, &time.ParseError{Layout: layout, Value: s, Message: ": year out of range"}
			}
			return t, nil
		}
	}
	return time.Time{}, &time.ParseError{Layout: time.RFC3339Nano, Value: s, Message: ": not an ISO-8601 time"}
}
