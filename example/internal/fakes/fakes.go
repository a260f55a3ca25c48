// Package fakes holds the example's stand-ins for outside services, served
// on loopback ports: an email provider that fails the first attempts of
// every email, a Slack webhook that records what it is sent, and a GET/PUT
// object store of photos. The demo and the end-to-end tests use them.
package fakes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
)

// Server is a fake service listening on a loopback port.
type Server struct {
	// URL is the service's base URL, http://127.0.0.1:PORT.
	URL string
	srv *http.Server
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

func serve(h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{URL: "http://" + ln.Addr().String(), srv: &http.Server{Handler: h}}
	go s.srv.Serve(ln)
	return s, nil
}

// EmailProvider is a fake email API: POST {"to": …} answers 503 to the
// first Failures attempts for each recipient, then {"id": "msg-<local
// part>-<attempt>"}.
type EmailProvider struct {
	*Server
	Failures int

	mu       sync.Mutex
	attempts map[string]int
	total    int
}

// NewEmailProvider starts an email provider failing failures times per
// recipient. Its endpoint is URL + "/send".
func NewEmailProvider(failures int) (*EmailProvider, error) {
	p := &EmailProvider{Failures: failures, attempts: map[string]int{}}
	s, err := serve(http.HandlerFunc(p.serveHTTP))
	if err != nil {
		return nil, err
	}
	p.Server = s
	return p, nil
}

func (p *EmailProvider) serveHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct{ To string }
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.To == "" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	p.attempts[req.To]++
	p.total++
	n := p.attempts[req.To]
	p.mu.Unlock()
	if n <= p.Failures {
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	json.NewEncoder(w).Encode(map[string]string{"id": fmt.Sprintf("msg-%s-%d", strings.SplitN(req.To, "@", 2)[0], n)})
}

// Attempts returns how many requests the provider got for to.
func (p *EmailProvider) Attempts(to string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.attempts[to]
}

// Total returns how many requests the provider got.
func (p *EmailProvider) Total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}

// SlackMessage is one message posted to the fake Slack.
type SlackMessage struct {
	Channel, Text string
}

// Slack is a fake Slack incoming webhook: POST {"channel": …, "text": …}
// answers "ok" and records the message.
type Slack struct {
	*Server
	mu   sync.Mutex
	msgs []SlackMessage
	// OnPost, when set, is called with each message (the demo prints them).
	OnPost func(SlackMessage)
}

// NewSlack starts a fake Slack; its webhook is URL + "/webhook".
func NewSlack() (*Slack, error) {
	sl := &Slack{}
	s, err := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m SlackMessage
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil || m.Text == "" {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		sl.mu.Lock()
		sl.msgs = append(sl.msgs, m)
		on := sl.OnPost
		sl.mu.Unlock()
		if on != nil {
			on(m)
		}
		io.WriteString(w, "ok")
	}))
	if err != nil {
		return nil, err
	}
	sl.Server = s
	return sl, nil
}

// Messages returns the messages posted so far, in order.
func (s *Slack) Messages() []SlackMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SlackMessage(nil), s.msgs...)
}

// Store is a fake object store: GET /name reads an object, PUT /name
// writes one.
type Store struct {
	*Server
	mu      sync.Mutex
	objects map[string]object
}

type object struct {
	contentType string
	data        []byte
}

// NewStore starts an empty store.
func NewStore() (*Store, error) {
	st := &Store{objects: map[string]object{}}
	s, err := serve(http.HandlerFunc(st.serveHTTP))
	if err != nil {
		return nil, err
	}
	st.Server = s
	return st, nil
}

func (st *Store) serveHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/")
	switch r.Method {
	case http.MethodGet:
		o, ok := st.get(name)
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", o.contentType)
		w.Write(o.data)
	case http.MethodPut:
		data, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		st.Put(name, r.Header.Get("Content-Type"), data)
		w.WriteHeader(http.StatusCreated)
	default:
		http.Error(w, "GET or PUT", http.StatusMethodNotAllowed)
	}
}

// Put stores data as name.
func (st *Store) Put(name, contentType string, data []byte) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.objects[name] = object{contentType, bytes.Clone(data)}
}

func (st *Store) get(name string) (object, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	o, ok := st.objects[name]
	return o, ok
}

// Data returns the bytes of object name, or nil.
func (st *Store) Data(name string) []byte {
	o, _ := st.get(name)
	return o.data
}

// PutPhoto stores a generated width×height PNG photo as name: a gradient
// of c.
func (st *Store) PutPhoto(name string, width, height int, c color.NRGBA) error {
	img := image.NewNRGBA(image.Rect(0, 0, width, height))
	for y := range height {
		for x := range width {
			img.SetNRGBA(x, y, color.NRGBA{uint8(int(c.R) * x / width), uint8(int(c.G) * y / height), c.B, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	st.Put(name, "image/png", buf.Bytes())
	return nil
}
