package beat_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/beat"
)

func TestTimeZoneName(t *testing.T) {
	paris := beat.Cron("report", "0 3 * * mon-fri", runtime.Named[int]("tasks.report"), beat.TimeZoneName("Europe/Paris"))
	assert.Equal(t, "report: cron 0 3 * * 1-5 (Europe/Paris) → tasks.report()", paris.String())
	utc := beat.Cron("utc", "0 3 * * *", runtime.Named[int]("tasks.report"), beat.TimeZoneName("UTC"))
	assert.Equal(t, "utc: cron 0 3 * * * → tasks.report()", utc.String())

	kit := newKit(t, "2026-01-01T00:00:00Z")
	s := beat.New(kit.App, paris, beat.Cron("mars", "0 3 * * *", runtime.Named[int]("tasks.report"), beat.TimeZoneName("Mars/Olympus")))
	err := s.Run(context.Background())
	require.Error(t, err, "an unknown zone makes the entry invalid, not UTC")
	assert.Contains(t, err.Error(), `beat: entry "mars": time zone: unknown time zone Mars/Olympus`)
	assert.Contains(t, err.Error(), "time/tzdata")
	assert.NotContains(t, err.Error(), `"report"`)
}

func TestTimeZoneName_slots(t *testing.T) {
	kit := newKit(t, "2026-07-01T00:00:00Z")
	s := beat.New(kit.App, beat.Cron("report", "0 3 * * *", runtime.Named[int]("tasks.report"), beat.TimeZoneName("Europe/Paris")))
	runUntil(t, kit, at("2026-07-02T12:00:00Z"), s)
	// 03:00 in Paris in summer (UTC+2) is 01:00 UTC.
	assert.Equal(t, slotIDs(beat.DefaultKey, "report", at("2026-07-01T01:00:00Z"), at("2026-07-02T01:00:00Z")), ids(kit, "tasks.report"))
}
