package signup

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/mail"
)

// Handler serves the sign-up endpoints. Both answer "Signed Up!" at once,
// without waiting for the tasks, and return in the X-Task-Id header the id
// whose result tells how it went:
//
//   - /sign-up?email=… enqueues SendWelcomeEmail (X-Task-Id: its id);
//   - /onboard?email=… sends the [Onboarding] chain (X-Task-Id: its last
//     step's id, NotifySlack's).
//
// It also imports contact lists, a task that reports its progress:
//
//   - POST /contacts/import with {"contacts": [{"name": …, "email": …}, …]}
//     enqueues ImportContacts and answers 202 Accepted with
//     {"id": …, "poll": "/contacts/import/{id}"} (the poll URL also in
//     Location); 400 if the body is not such JSON or the list is empty;
//   - GET /contacts/import/{id} answers the import's [ImportStatus]: state,
//     current, total, note and percent while it runs, the summary once
//     SUCCESS. An unknown id reads PENDING, as in Celery: the result backend
//     cannot tell it from a task not started yet. It needs
//     [ConfigureResults].
func Handler(log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/sign-up", func(w http.ResponseWriter, r *http.Request) {
		email, ok := emailParam(w, r)
		if !ok {
			return
		}
		res, err := SendWelcomeEmail.Delay(r.Context(), email)
		if err != nil {
			log.Error("enqueue failed", "email", email, "err", err)
			http.Error(w, "could not sign up right now, try again", http.StatusServiceUnavailable)
			return
		}
		log.Info("signed up", "email", email, "task_id", res.ID())
		w.Header().Set("X-Task-Id", res.ID())
		fmt.Fprintln(w, "Signed Up!")
	})
	mux.HandleFunc("/onboard", func(w http.ResponseWriter, r *http.Request) {
		email, ok := emailParam(w, r)
		if !ok {
			return
		}
		res, err := Onboarding(email).Delay(r.Context())
		if err != nil {
			log.Error("enqueue failed", "email", email, "err", err)
			http.Error(w, "could not sign up right now, try again", http.StatusServiceUnavailable)
			return
		}
		log.Info("onboarding", "email", email, "task_id", res.ID())
		w.Header().Set("X-Task-Id", res.ID())
		fmt.Fprintln(w, "Signed Up!")
	})
	mux.HandleFunc("POST /contacts/import", func(w http.ResponseWriter, r *http.Request) { startImport(log, w, r) })
	mux.HandleFunc("GET /contacts/import/{id}", func(w http.ResponseWriter, r *http.Request) { pollImport(log, w, r) })
	return mux
}

// emailParam returns the request's email= parameter, or answers 400.
func emailParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	email := r.FormValue("email")
	if _, err := mail.ParseAddress(email); err != nil {
		http.Error(w, "a valid email= parameter is required", http.StatusBadRequest)
		return "", false
	}
	return email, true
}
