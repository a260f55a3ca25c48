package signup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/mail"
	"strings"
	"sync/atomic"
	"time"

	"github.com/taskgen/taskgen/runtime"
)

// Contact is one row of a contact list that ImportContacts imports.
type Contact struct {
	Name  string `json:"name,omitempty" msgpack:"name,omitempty"`
	Email string `json:"email" msgpack:"email"`
}

// ImportSummary is what ImportContacts returns: how many rows were
// imported and how many were left out, with the reason of each.
type ImportSummary struct {
	// Imported counts the rows imported.
	Imported int `json:"imported" msgpack:"imported"`
	// Invalid counts the rows whose address does not parse.
	Invalid int `json:"invalid" msgpack:"invalid"`
	// Duplicates counts the rows whose address (compared in lower case)
	// an earlier row of the list already had.
	Duplicates int `json:"duplicates" msgpack:"duplicates"`
	// Skipped says why each row left out was: "row 3: bad address "x"".
	Skipped []string `json:"skipped,omitempty" msgpack:"skipped,omitempty"`
}

// Importer configures ImportContacts on a worker.
type Importer struct {
	// RowDelay is how long each row takes: the example's stand-in for the
	// database lookup and write of a real import (default 0; the demo uses
	// 50 ms so that its progress can be watched).
	RowDelay time.Duration
	// BeforeRow, when set, is called before row (1-based) of total is
	// processed; an error ends the task with that error. Tests use it to
	// step an import row by row.
	BeforeRow func(ctx context.Context, row, total int) error
}

var importer atomic.Pointer[Importer]

// ConfigureImport sets how ImportContacts runs; workers may call it at
// start-up (without it, rows take no time).
func ConfigureImport(im Importer) { importer.Store(&im) }

// importContacts imports a contact list row by row: it checks each
// address, leaves out bad ones and duplicates, and reports its progress
// after every row with runtime.Progress (state PROGRESS, meta
// {"current": i, "total": n, "note": "imported ann@example.com"}), which
// GET /contacts/import/{id}, taskmon and a Python AsyncResult(id).info read.
//
//task:name signup.import_contacts
//task:queue accounts
func importContacts(ctx context.Context, contacts []Contact) (ImportSummary, error) {
	var im Importer
	if p := importer.Load(); p != nil {
		im = *p
	}
	var sum ImportSummary
	seen := make(map[string]bool, len(contacts))
	n := len(contacts)
	for i, c := range contacts {
		row := i + 1
		if im.BeforeRow != nil {
			if err := im.BeforeRow(ctx, row, n); err != nil {
				return sum, err
			}
		}
		if im.RowDelay > 0 { // the lookup and write of a real import
			select {
			case <-time.After(im.RowDelay):
			case <-ctx.Done():
				return sum, ctx.Err()
			}
		}
		var note string
		addr, err := mail.ParseAddress(c.Email)
		switch {
		case err != nil:
			sum.Invalid++
			note = fmt.Sprintf("row %d: bad address %q", row, c.Email)
			sum.Skipped = append(sum.Skipped, note)
		case seen[strings.ToLower(addr.Address)]:
			sum.Duplicates++
			note = fmt.Sprintf("row %d: duplicate %s", row, addr.Address)
			sum.Skipped = append(sum.Skipped, note)
		default:
			seen[strings.ToLower(addr.Address)] = true
			sum.Imported++
			note = "imported " + addr.Address
		}
		// Progress may fail (no result backend, a backend hiccup): the
		// import goes on, only the bar lags.
		_ = runtime.Progress(ctx, row, n, note)
	}
	return sum, nil
}

// maxImportBody is the largest contact list POST /contacts/import takes.
const maxImportBody = 1 << 20

var results atomic.Pointer[runtime.App]

// ConfigureResults sets the app whose result backend GET
// /contacts/import/{id} reads; servers call it at start-up with the app
// they send tasks with (runtime.SetDefault's).
func ConfigureResults(app *runtime.App) { results.Store(app) }

// importRequest is POST /contacts/import's body.
type importRequest struct {
	Contacts []Contact `json:"contacts"`
}

// startImport serves POST /contacts/import: it checks the body, enqueues
// ImportContacts and answers 202 Accepted with the task's id and the URL
// to poll (also in the Location header).
func startImport(log *slog.Logger, w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxImportBody))
	dec.DisallowUnknownFields()
	var req importRequest
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			httpJSONError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes: split the contact list", maxImportBody))
			return
		}
		httpJSONError(w, http.StatusBadRequest, `the body must be JSON like {"contacts": [{"name": "Ann", "email": "ann@example.com"}]}: `+err.Error())
		return
	}
	if len(req.Contacts) == 0 {
		httpJSONError(w, http.StatusBadRequest, `the contact list is empty: send {"contacts": [{"email": "ann@example.com"}, ...]}`)
		return
	}
	res, err := ImportContacts.Delay(r.Context(), req.Contacts)
	if err != nil {
		log.Error("enqueue failed", "task", "signup.import_contacts", "err", err)
		httpJSONError(w, http.StatusServiceUnavailable, "could not start the import right now, try again")
		return
	}
	poll := "/contacts/import/" + res.ID()
	log.Info("import started", "contacts", len(req.Contacts), "task_id", res.ID())
	w.Header().Set("Location", poll)
	w.Header().Set("X-Task-Id", res.ID())
	writeJSON(w, http.StatusAccepted, map[string]string{"id": res.ID(), "poll": poll})
}

// ImportStatus is GET /contacts/import/{id}'s answer.
type ImportStatus struct {
	ID string `json:"id"`
	// State is the task's state: PENDING (not started, or an id the result
	// backend does not know: like Celery's, it cannot tell them apart),
	// PROGRESS while rows are imported, SUCCESS or FAILURE at the end.
	State runtime.State `json:"state"`
	// Current of Total rows are done; Note says what the last row did.
	Current int    `json:"current"`
	Total   int    `json:"total"`
	Note    string `json:"note,omitempty"`
	// Percent is Current as a percentage of Total (100 once SUCCESS).
	Percent float64 `json:"percent"`
	// Result is the import's summary, once SUCCESS.
	Result *ImportSummary `json:"result,omitempty"`
	// Error is why the import failed, once FAILURE (or REVOKED).
	Error string `json:"error,omitempty"`
}

// pollImport serves GET /contacts/import/{id}.
func pollImport(log *slog.Logger, w http.ResponseWriter, r *http.Request) {
	app := results.Load()
	if app == nil {
		httpJSONError(w, http.StatusServiceUnavailable, "this server reads no results: call signup.ConfigureResults(app) at start-up")
		return
	}
	if app.Backend() == nil {
		httpJSONError(w, http.StatusServiceUnavailable, "this server has no result backend to read the import's progress from: start it with -backend (e.g. redis://127.0.0.1:6379/1)")
		return
	}
	id := r.PathValue("id")
	res := runtime.NewAsyncResult[ImportSummary](app, id)
	p, err := res.Progress(r.Context())
	if err != nil {
		log.Error("poll failed", "task_id", id, "err", err)
		httpJSONError(w, http.StatusServiceUnavailable, "could not read the import's state right now, try again")
		return
	}
	st := ImportStatus{ID: id, State: p.State, Current: p.Current, Total: p.Total, Note: p.Note, Percent: p.Percent()}
	if p.Ready() {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		sum, err := res.Get(ctx) // stored already: returns at once
		if err != nil {
			st.Error = err.Error()
		} else {
			st.Result = &sum
			st.Total = sum.Imported + sum.Invalid + sum.Duplicates
			st.Current = st.Total
		}
	}
	writeJSON(w, http.StatusOK, st)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func httpJSONError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
