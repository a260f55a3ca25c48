package signup_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/example/signup"
	"github.com/taskgen/taskgen/runtime"
	_ "github.com/taskgen/taskgen/runtime/memory"
)

// stepper holds ImportContacts before each row until the test lets it go.
type stepper struct {
	at      chan int      // the row about to be processed
	proceed chan struct{} // let it be processed
}

func newStepper(t *testing.T) *stepper {
	s := &stepper{at: make(chan int), proceed: make(chan struct{})}
	signup.ConfigureImport(signup.Importer{BeforeRow: func(ctx context.Context, row, _ int) error {
		select {
		case s.at <- row:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case <-s.proceed:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}})
	t.Cleanup(func() { signup.ConfigureImport(signup.Importer{}) })
	return s
}

// importApp starts an app on broker/backend with a worker running the
// example's tasks, and the sign-up handler on an httptest server.
func importApp(t *testing.T, broker, backend string) (*runtime.App, *httptest.Server) {
	t.Helper()
	app, err := runtime.New(runtime.Config{Broker: broker, Backend: backend, Hostname: "import-test@localhost"})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	prev := runtime.SetDefault(app)
	t.Cleanup(func() { runtime.SetDefault(prev) })
	signup.ConfigureResults(app)
	t.Cleanup(func() { signup.ConfigureResults(nil) })
	w := app.NewWorker(runtime.WorkerOptions{Queues: []string{"accounts"}, Concurrency: 2, ShutdownTimeout: 5 * time.Second, WithoutEvents: true})
	signup.RegisterTasks(w)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { stop(); require.NoError(t, <-done) })
	srv := httptest.NewServer(signup.Handler(app.Logger()))
	t.Cleanup(srv.Close)
	return app, srv
}

type pollAnswer struct {
	ID      string                `json:"id"`
	State   string                `json:"state"`
	Current int                   `json:"current"`
	Total   int                   `json:"total"`
	Note    string                `json:"note"`
	Percent float64               `json:"percent"`
	Result  *signup.ImportSummary `json:"result"`
	Error   string                `json:"error"`
}

func poll(t *testing.T, url string) pollAnswer {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var a pollAnswer
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&a))
	return a
}

// postImport posts body to /contacts/import and returns the answer's
// status and decoded JSON.
func postImport(t *testing.T, base, body string) (*http.Response, map[string]string) {
	t.Helper()
	resp, err := http.Post(base+"/contacts/import", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var m map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	return resp, m
}

const importBody = `{"contacts": [
	{"name": "Ann", "email": "ann@example.com"},
	{"name": "Bob", "email": "not an address"},
	{"name": "Cid", "email": "cid@example.com"},
	{"name": "Ann again", "email": "ANN@example.com"},
	{"email": "dee@example.com"}
]}`

// checkImportFlow posts importBody, steps the import row by row and checks
// that the poll endpoint follows it, then shows the summary.
func checkImportFlow(t *testing.T, base string, s *stepper) {
	t.Helper()
	resp, m := postImport(t, base, importBody)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%v", m)
	id := m["id"]
	require.NotEmpty(t, id)
	require.Equal(t, "/contacts/import/"+id, m["poll"])
	require.Equal(t, m["poll"], resp.Header.Get("Location"))

	notes := []string{"imported ann@example.com", `row 2: bad address "not an address"`, "imported cid@example.com",
		"row 4: duplicate ANN@example.com", "imported dee@example.com"}
	for row := 1; row <= 5; row++ {
		require.Equal(t, row, <-s.at)
		// Rows before this one are done and reported; this one waits.
		a := poll(t, base+m["poll"])
		require.Equal(t, id, a.ID)
		if row == 1 {
			require.Contains(t, []string{"PENDING", "STARTED"}, a.State)
			require.Zero(t, a.Current)
		} else {
			require.Equal(t, "PROGRESS", a.State)
			require.Equal(t, row-1, a.Current)
			require.Equal(t, 5, a.Total)
			require.Equal(t, notes[row-2], a.Note)
			require.InDelta(t, 20*float64(row-1), a.Percent, 1e-9)
		}
		require.Nil(t, a.Result, "no result while running")
		s.proceed <- struct{}{}
	}
	var a pollAnswer
	require.Eventually(t, func() bool {
		a = poll(t, base+m["poll"])
		return a.State != "PROGRESS"
	}, 20*time.Second, 10*time.Millisecond)
	require.Equal(t, "SUCCESS", a.State, "%+v", a)
	require.Equal(t, &signup.ImportSummary{Imported: 3, Invalid: 1, Duplicates: 1,
		Skipped: []string{`row 2: bad address "not an address"`, "row 4: duplicate ANN@example.com"}}, a.Result)
	require.Equal(t, 5, a.Current)
	require.Equal(t, 5, a.Total)
	require.Equal(t, float64(100), a.Percent)
	require.Empty(t, a.Error)
}

func TestImportContacts_PollShowsProgressThenSummary(t *testing.T) {
	s := newStepper(t)
	_, srv := importApp(t, "memory://import-test", "memory://import-test")
	checkImportFlow(t, srv.URL, s)

	// An id nobody sent reads PENDING, as Celery's AsyncResult does.
	a := poll(t, srv.URL+"/contacts/import/00000000-0000-4000-8000-000000000000")
	require.Equal(t, "PENDING", a.State)
	require.Zero(t, a.Total)
}

func TestImportContacts_BadInputIs400(t *testing.T) {
	_, srv := importApp(t, "memory://import-bad", "memory://import-bad")
	for _, c := range []struct{ body, says string }{
		{`not json`, "must be JSON"},
		{`{"contacts": []}`, "contact list is empty"},
		{`{}`, "contact list is empty"},
		{`{"contacts": "ann@example.com"}`, "must be JSON"},
		{`{"emails": ["ann@example.com"]}`, `unknown field "emails"`},
	} {
		resp, m := postImport(t, srv.URL, c.body)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, c.body)
		require.Contains(t, m["error"], c.says, c.body)
		require.Empty(t, resp.Header.Get("Location"))
	}
	resp, err := http.Get(srv.URL + "/contacts/import")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

func TestImportContacts_RowDelayAndDirectCall(t *testing.T) {
	signup.ConfigureImport(signup.Importer{RowDelay: time.Millisecond})
	t.Cleanup(func() { signup.ConfigureImport(signup.Importer{}) })
	// Outside a worker Progress has no task to report to; the import still runs.
	sum, err := signup.ImportContacts.Call(context.Background(), []signup.Contact{{Email: "a@b.example"}, {Email: "@"}})
	require.NoError(t, err)
	require.Equal(t, signup.ImportSummary{Imported: 1, Invalid: 1, Skipped: []string{`row 2: bad address "@"`}}, sum)
}
