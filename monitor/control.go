package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/taskgen/taskgen/internal/anynum"
	"github.com/taskgen/taskgen/runtime/driver"
)

// applyRequest is the body of POST /api/task/async-apply/<name>, Flower's.
type applyRequest struct {
	Args      []any          `json:"args"`
	Kwargs    map[string]any `json:"kwargs"`
	Countdown *float64       `json:"countdown"`
	ETA       string         `json:"eta"`
	Expires   any            `json:"expires"` // seconds from now, or an ISO time
	Queue     string         `json:"queue"`
	Priority  *uint8         `json:"priority"`
	TaskID    string         `json:"task_id"`
}

// maxApplyBody bounds the request body of async-apply.
const maxApplyBody = 1 << 20

// apiAsyncApply publishes a task message built by hand (protocol v2, JSON
// body), as Flower's async-apply does through send_task: the monitor needs
// no task definitions.
func (m *Monitor) apiAsyncApply(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req applyRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, maxApplyBody+1))
	if err != nil {
		jsonError(w, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	if len(body) > maxApplyBody {
		jsonError(w, http.StatusRequestEntityTooLarge, "body larger than 1 MiB")
		return
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.UseNumber()
		if err := dec.Decode(&req); err != nil {
			jsonError(w, http.StatusBadRequest, "body: want {\"args\": [...], \"kwargs\": {...}}: "+err.Error())
			return
		}
	}
	now := m.cfg.Now()
	msg, queue, err := m.buildMessage(name, &req, now)
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), m.app.Config().PublishTimeout)
	defer cancel()
	if err := m.app.Broker().Publish(ctx, queue, msg); err != nil {
		m.log.Error("async-apply: publish failed", "task", name, "queue", queue, "err", err)
		jsonError(w, http.StatusServiceUnavailable, "publish failed: "+err.Error())
		return
	}
	m.log.Info("async-apply: task published", "task", name, "id", msg.Headers.ID, "queue", queue)
	out := object{{"task-id", msg.Headers.ID}}
	if m.app.Backend() != nil {
		out = append(out, kv{"state", "PENDING"})
	}
	writeJSON(w, http.StatusOK, out)
}

func (m *Monitor) buildMessage(name string, req *applyRequest, now time.Time) (*driver.Message, string, error) {
	if name == "" || len(name) > 256 {
		return nil, "", errors.New("task name: want 1 to 256 characters")
	}
	args := req.Args
	if args == nil {
		args = []any{}
	}
	kwargs := req.Kwargs
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	body, err := json.Marshal([]any{args, kwargs, map[string]any{"callbacks": nil, "errbacks": nil, "chain": nil, "chord": nil}})
	if err != nil {
		return nil, "", fmt.Errorf("arguments: %w", err)
	}
	id := req.TaskID
	if id == "" {
		id = driver.NewID()
	}
	msg := &driver.Message{
		ContentType: driver.ContentTypeJSON, ContentEncoding: driver.ContentEncodingUTF8,
		CorrelationID: id, DeliveryMode: 2, Body: body,
	}
	h := &msg.Headers
	h.Lang, h.Task, h.ID, h.RootID = "go", name, id, id
	h.ArgsRepr = tupleRepr(args)
	h.KwargsRepr = driver.Repr(anynum.Plain(kwargs))
	host, _ := os.Hostname()
	h.Origin = "taskmon" + strconv.Itoa(os.Getpid()) + "@" + host
	switch {
	case req.ETA != "":
		t, err := driver.ParseTime(req.ETA)
		if err != nil {
			return nil, "", fmt.Errorf("eta: %w", err)
		}
		h.ETA = t
	case req.Countdown != nil && *req.Countdown > 0:
		h.ETA = now.Add(time.Duration(*req.Countdown * float64(time.Second)))
	}
	switch e := req.Expires.(type) {
	case nil:
	case json.Number:
		f, err := e.Float64()
		if err != nil {
			return nil, "", fmt.Errorf("expires: %w", err)
		}
		h.Expires = now.Add(time.Duration(f * float64(time.Second)))
	case string:
		t, err := driver.ParseTime(e)
		if err != nil {
			return nil, "", fmt.Errorf("expires: %w", err)
		}
		h.Expires = t
	default:
		return nil, "", errors.New("expires: want seconds or an ISO-8601 time")
	}
	if !h.Expires.IsZero() {
		msg.Expiration = strconv.FormatInt(max(h.Expires.Sub(now).Milliseconds(), 0), 10)
	}
	if req.Priority != nil {
		msg.Priority = *req.Priority
	}
	queue := req.Queue
	if queue == "" {
		queue = m.app.Config().DefaultQueue
	}
	return msg, queue, nil
}

// tupleRepr is the argsrepr of positional args: "(1, 'a')", "('a',)".
func tupleRepr(args []any) string {
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = driver.Repr(anynum.Plain(a))
	}
	s := "(" + strings.Join(parts, ", ")
	if len(args) == 1 {
		s += ","
	}
	return s + ")"
}

// apiRevoke answers POST /api/task/revoke/<id>[?terminate=true&signal=SIGTERM]:
// the task is recorded as revoked here and, when the transport carries
// remote control, Celery's revoke command is broadcast to every worker.
func (m *Monitor) apiRevoke(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" || len(id) > 256 {
		jsonError(w, http.StatusBadRequest, "task id: want 1 to 256 characters")
		return
	}
	_ = r.ParseForm()
	terminate, _ := strconv.ParseBool(r.Form.Get("terminate"))
	signal := r.Form.Get("signal")
	if signal == "" {
		signal = "SIGTERM"
	}
	broadcast := false
	if _, ok := m.app.Broker().(driver.ControlTransport); ok {
		if err := m.broadcast(r.Context(), "revoke", map[string]any{"task_id": id, "terminate": terminate, "signal": signal}); err != nil {
			m.log.Error("revoke: broadcast failed", "id", id, "err", err)
			jsonError(w, http.StatusServiceUnavailable, "revoke broadcast failed: "+err.Error())
			return
		}
		broadcast = true
	}
	m.state.MarkRevoked(id, terminate)
	m.log.Info("task revoked", "id", id, "terminate", terminate, "broadcast", broadcast)
	writeJSON(w, http.StatusOK, object{{"message", fmt.Sprintf("Revoked '%s'", id)}, {"broadcast", broadcast}})
}

// broadcast publishes a Celery remote-control cast (no reply) to every
// worker (WIRE §7.1), giving up after 5 s.
func (m *Monitor) broadcast(ctx context.Context, method string, args map[string]any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return m.app.Broadcast(ctx, method, args)
}
