package gallery

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
)

// Handler serves /gallery?title=…&photo=a.png&photo=b.jpg[&width=160]: it
// sends the [Workflow] chord and answers 202 at once, with the id of
// BuildGallery's result in the X-Task-Id header.
func Handler(log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/gallery", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		title, photos := r.Form.Get("title"), r.Form["photo"]
		if title == "" || len(photos) == 0 || len(photos) > 100 {
			http.Error(w, "title= and 1 to 100 photo= parameters are required", http.StatusBadRequest)
			return
		}
		for _, p := range photos {
			if err := checkPhoto(p); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		width := 160
		if v := r.Form.Get("width"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxWidth {
				http.Error(w, fmt.Sprintf("width= must be 1..%d", MaxWidth), http.StatusBadRequest)
				return
			}
			width = n
		}
		res, err := Workflow(title, photos, width).Delay(r.Context())
		if err != nil {
			log.Error("enqueue failed", "title", title, "err", err)
			http.Error(w, "could not build the gallery right now, try again", http.StatusServiceUnavailable)
			return
		}
		log.Info("gallery", "title", title, "photos", len(photos), "task_id", res.ID())
		w.Header().Set("X-Task-Id", res.ID())
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, "Building gallery %q of %d photos.\n", title, len(photos))
	})
	return mux
}
