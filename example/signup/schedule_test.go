package signup_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/example/signup"
	"github.com/taskgen/taskgen/runtime/beat"
	"github.com/taskgen/taskgen/runtime/tasktest"
)

// TestSchedules_digestRunsEveryMinuteAndOnWeekdayMornings drives the
// generated Schedules on the virtual clock through a Monday in Paris: 60
// minutely digests in an hour that includes 09:00 CET, plus the weekday one.
func TestSchedules_digestRunsEveryMinuteAndOnWeekdayMornings(t *testing.T) {
	var mu sync.Mutex
	var posts []string
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]string
		_ = json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		posts = append(posts, m["channel"]+" "+m["text"])
		mu.Unlock()
	}))
	defer slack.Close()
	signup.ConfigureSlack(signup.Slack{WebhookURL: slack.URL})

	start := time.Date(2026, 3, 2, 7, 30, 0, 0, time.UTC) // Monday 08:30 in Paris
	kit := tasktest.NewWith(t, []tasktest.Option{tasktest.StartTime(start)}, signup.RegisterTasks)
	names := []string{}
	for _, e := range signup.Schedules() {
		names = append(names, e.Name())
	}
	require.Equal(t, []string{"signup.digest", "signup.weekday-digest"}, names)

	s := beat.New(kit.App, signup.Schedules()...)
	ctx := context.Background()
	end := start.Add(time.Hour)
	for {
		wake, err := s.Tick(ctx)
		require.NoError(t, err)
		now := kit.Clock.Now()
		if !wake.After(now) {
			wake = now.Add(time.Millisecond)
		}
		if wake.After(end) {
			break
		}
		kit.Advance(wake.Sub(now))
	}
	require.Len(t, kit.Enqueued("signup.digest"), 61, "60 minutely digests and the 09:00 Paris one")
	weekday := 0
	for _, c := range kit.Enqueued("signup.digest") {
		if c.ID == beat.SlotID(beat.DefaultKey, "signup.weekday-digest", time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)) {
			weekday++
		}
	}
	require.Equal(t, 1, weekday, "the weekday digest ran at 09:00 CET (08:00 UTC)")
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, posts, 61)
	require.Equal(t, "#sign-ups 0 welcome email(s) sent since the last digest", posts[0])
}
