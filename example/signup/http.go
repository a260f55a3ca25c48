package signup

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/mail"
)

// Handler serves /sign-up?email=…: it enqueues SendWelcomeEmail and answers
// "Signed Up!" at once, without waiting for the email to be sent. The task id
// is returned in the X-Task-Id header.
func Handler(log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/sign-up", func(w http.ResponseWriter, r *http.Request) {
		email := r.FormValue("email")
		if _, err := mail.ParseAddress(email); err != nil {
			http.Error(w, "a valid email= parameter is required", http.StatusBadRequest)
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
	return mux
}
