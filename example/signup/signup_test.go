package signup_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/example/signup"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/tasktest"
)

// fakeProvider fails the first failures requests with 503.
func fakeProvider(t *testing.T, failures int32) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= failures {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"id": "msg-1"})
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestSendWelcomeEmail_RetriesWithBackoffThenSucceeds(t *testing.T) {
	srv, hits := fakeProvider(t, 2)
	signup.Configure(signup.Provider{URL: srv.URL})
	kit := tasktest.New(t, signup.RegisterTasks)
	ctx := context.Background()

	res, err := signup.SendWelcomeEmail.Delay(ctx, "ann@example.com")
	require.NoError(t, err)
	// The first attempt ran at once and failed: a retry waits on the virtual clock.
	require.EqualValues(t, 1, hits.Load())
	state, err := res.State(ctx)
	require.NoError(t, err)
	require.Equal(t, runtime.StateRetry, state)
	pending := kit.Pending()
	require.Len(t, pending, 1)
	require.Equal(t, 1, pending[0].Retries)
	require.LessOrEqual(t, pending[0].ETA.Sub(kit.Clock.Now()), time.Second, "first backoff is at most the 1s factor")

	kit.Advance(10 * time.Minute)
	require.EqualValues(t, 3, hits.Load())
	id, err := res.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, "msg-1", id)

	// Typed: each call's Args is a signup.SendWelcomeEmailArgs, decoded by the generated codec.
	calls := tasktest.Calls(kit, signup.SendWelcomeEmail)
	require.Len(t, calls, 3, "the call and two retries")
	for i, c := range calls {
		require.Equal(t, signup.SendWelcomeEmailArgs{Email: "ann@example.com"}, c.Args)
		require.Equal(t, []any{"ann@example.com"}, c.Call.Args, "the generic decoding")
		require.Equal(t, "emails", c.Queue)
		require.Equal(t, i, c.Retries)
		require.Equal(t, res.ID(), c.ID, "a retry keeps the task id")
	}
}

func TestSendWelcomeEmail_GivesUpAfterMaxRetries(t *testing.T) {
	srv, hits := fakeProvider(t, 1000)
	signup.Configure(signup.Provider{URL: srv.URL})
	kit := tasktest.New(t, signup.RegisterTasks)
	ctx := context.Background()
	res, err := signup.SendWelcomeEmail.Delay(ctx, "bob@example.com")
	require.NoError(t, err)
	kit.Advance(time.Hour)
	require.EqualValues(t, 6, hits.Load(), "1 run + max_retries 5")
	_, err = res.Get(ctx)
	var te *runtime.TaskError
	require.True(t, errors.As(err, &te))
	require.Equal(t, "HTTPError", te.Exception.Type)
	require.Contains(t, te.Error(), "503")
}

func TestHandler_EnqueuesAndAnswersAtOnce(t *testing.T) {
	kit := tasktest.NewWith(t, []tasktest.Option{tasktest.RecordOnly()}, signup.RegisterTasks)
	srv := httptest.NewServer(signup.Handler(kit.App.Logger()))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/sign-up?email=carol@example.com")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	calls := tasktest.Calls(kit, signup.SendWelcomeEmail)
	require.Len(t, calls, 1)
	require.Equal(t, "carol@example.com", calls[0].Args.Email)
	require.Equal(t, calls[0].ID, resp.Header.Get("X-Task-Id"))

	resp, err = http.Get(srv.URL + "/sign-up?email=not-an-email")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Len(t, kit.Enqueued("signup.send_welcome_email"), 1)
}

func TestCalls_DecodesWithTheSerializerOfEachMessage(t *testing.T) {
	for _, ser := range []string{"msgpack", "json"} {
		t.Run(ser, func(t *testing.T) {
			kit := tasktest.NewWith(t, []tasktest.Option{tasktest.RecordOnly(), tasktest.Serializer(ser)}, signup.RegisterTasks)
			ctx := context.Background()
			for _, email := range []string{"dan@example.com", "eve@example.com"} {
				_, err := signup.SendWelcomeEmail.Delay(ctx, email)
				require.NoError(t, err)
			}
			calls := tasktest.Calls(kit, signup.SendWelcomeEmail)
			require.Len(t, calls, 2)
			require.Equal(t, "dan@example.com", calls[0].Args.Email)
			require.Equal(t, "eve@example.com", calls[1].Args.Email)
			require.Equal(t, "signup.send_welcome_email", calls[1].Task)
		})
	}
}
