package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/example/signup"
	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
)

// TestImportContacts_ProgressOverHTTPOnRealBrokers posts a contact list to
// the sign-up handler, holds the worker before each row and reads the
// poll endpoint there: the progress the task stored in Redis (current,
// total, note, percent) shows mid-way, row by row, then SUCCESS with the
// summary. On Redis (broker and backend) and on RabbitMQ with the Redis
// backend.
func TestImportContacts_ProgressOverHTTPOnRealBrokers(t *testing.T) {
	redisURL := testenv.RedisURL(t)
	amqpURL := testenv.AMQPURL(t)
	prefix := func() string { return "?global_keyprefix=import-" + driver.NewID()[:8] + ":" }
	for _, b := range []struct{ name, broker, backend string }{
		{"redis", testenv.RedisDB(redisURL, 5) + prefix(), testenv.RedisDB(redisURL, 6) + prefix()},
		{"amqp", amqpURL, testenv.RedisDB(redisURL, 6) + prefix()},
	} {
		t.Run(b.name, func(t *testing.T) {
			at, proceed := make(chan int), make(chan struct{})
			signup.ConfigureImport(signup.Importer{BeforeRow: func(ctx context.Context, row, _ int) error {
				select {
				case at <- row:
				case <-ctx.Done():
					return ctx.Err()
				}
				select {
				case <-proceed:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}})
			defer signup.ConfigureImport(signup.Importer{})

			app, err := runtime.New(runtime.Config{Broker: b.broker, Backend: b.backend, Hostname: "e2e-import-" + b.name + "@localhost"})
			require.NoError(t, err)
			defer app.Close()
			defer runtime.SetDefault(runtime.SetDefault(app))
			signup.ConfigureResults(app)
			defer signup.ConfigureResults(nil)
			w := app.NewWorker(runtime.WorkerOptions{Queues: []string{"accounts"}, Concurrency: 2, ShutdownTimeout: 5 * time.Second, WithoutEvents: true})
			signup.RegisterTasks(w)
			ctx, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			defer func() { stop(); require.NoError(t, <-done) }()
			srv := httptest.NewServer(signup.Handler(app.Logger()))
			defer srv.Close()

			const n = 4
			var contacts []string
			for i := 1; i <= n; i++ {
				contacts = append(contacts, fmt.Sprintf(`{"email": "row%d-%s@example.com"}`, i, b.name))
			}
			contacts[2] = `{"email": "row3 at example.com"}`
			resp, err := http.Post(srv.URL+"/contacts/import", "application/json",
				strings.NewReader(`{"contacts": [`+strings.Join(contacts, ",")+`]}`))
			require.NoError(t, err)
			var started struct{ ID, Poll string }
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&started))
			resp.Body.Close()
			require.Equal(t, http.StatusAccepted, resp.StatusCode)
			require.Equal(t, "/contacts/import/"+started.ID, started.Poll)
			require.Equal(t, started.Poll, resp.Header.Get("Location"))

			get := func() signup.ImportStatus {
				resp, err := http.Get(srv.URL + started.Poll)
				require.NoError(t, err)
				defer resp.Body.Close()
				require.Equal(t, http.StatusOK, resp.StatusCode)
				var st signup.ImportStatus
				require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
				return st
			}
			for row := 1; row <= n; row++ {
				select {
				case got := <-at:
					require.Equal(t, row, got)
				case <-time.After(30 * time.Second):
					t.Fatalf("the worker never reached row %d", row)
				}
				st := get()
				if row > 1 { // rows before this one are stored in Redis
					require.Equal(t, runtime.StateProgress, st.State)
					require.Equal(t, row-1, st.Current)
					require.Equal(t, n, st.Total)
					require.InDelta(t, 100*float64(row-1)/n, st.Percent, 1e-9)
					want := fmt.Sprintf("imported row%d-%s@example.com", row-1, b.name)
					if row-1 == 3 {
						want = `row 3: bad address "row3 at example.com"`
					}
					require.Equal(t, want, st.Note)
				}
				require.Nil(t, st.Result)
				proceed <- struct{}{}
			}
			var st signup.ImportStatus
			require.Eventually(t, func() bool { st = get(); return st.State.Ready() }, 30*time.Second, 20*time.Millisecond)
			require.Equal(t, runtime.StateSuccess, st.State, "%+v", st)
			require.Equal(t, &signup.ImportSummary{Imported: 3, Invalid: 1, Skipped: []string{`row 3: bad address "row3 at example.com"`}}, st.Result)
			require.Equal(t, n, st.Current)
			require.Equal(t, float64(100), st.Percent)
		})
	}
}
