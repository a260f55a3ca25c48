package taskctl

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/taskgen/taskgen/internal/anynum"
	"github.com/taskgen/taskgen/runtime/driver"
)

// call: taskctl call [flags] TASK [ARG…] — `celery call TASK --args …`.
func (c *cli) call(args []string) error {
	fs := c.flags("call")
	queue := fs.String("queue", c.app.Config().DefaultQueue, "queue to publish to")
	kwargs := fs.String("kwargs", "{}", "keyword arguments, a JSON object")
	countdown := fs.Duration("countdown", 0, "run no earlier than this from now")
	id := fs.String("id", "", "task id (default: a new uuid4)")
	wait := fs.Duration("wait", 0, "wait this long for the result (needs -backend)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("want TASK [ARG…]")
	}
	name := fs.Arg(0)
	pos := []any{}
	for i, a := range fs.Args()[1:] {
		var v any
		if err := decodeJSON(a, &v); err != nil {
			return usagef("argument %d %q is not JSON (quote strings: '\"alice\"'): %v", i+1, a, err)
		}
		pos = append(pos, v)
	}
	var kw map[string]any
	if err := decodeJSON(*kwargs, &kw); err != nil || kw == nil {
		return usagef(`-kwargs: want a JSON object such as '{"n": 3}'`)
	}
	if *wait > 0 && c.app.Backend() == nil {
		return usagef("-wait needs a result backend: pass -backend URL or set TASKGEN_BACKEND")
	}
	msg, err := callMessage(name, *id, pos, kw, *countdown)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.app.Config().PublishTimeout)
	err = c.app.Broker().Publish(ctx, *queue, msg)
	cancel()
	if err != nil {
		return fmt.Errorf("publish %s to %q: %w", name, *queue, err)
	}
	if *wait > 0 {
		return c.showResult(msg.Headers.ID, *wait)
	}
	if c.json {
		return c.printJSON(map[string]any{"task_id": msg.Headers.ID, "task": name, "queue": *queue})
	}
	return c.table([]string{"ID", "TASK", "QUEUE"}, [][]string{{msg.Headers.ID, name, *queue}})
}

func decodeJSON(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the value")
	}
	return nil
}

// callMessage builds a Celery protocol v2 task message with a JSON body, as
// `celery call` does: no task definitions needed.
func callMessage(name, id string, args []any, kwargs map[string]any, countdown time.Duration) (*driver.Message, error) {
	body, err := json.Marshal([]any{args, kwargs, map[string]any{"callbacks": nil, "errbacks": nil, "chain": nil, "chord": nil}})
	if err != nil {
		return nil, err
	}
	if id == "" {
		id = driver.NewID()
	}
	msg := &driver.Message{ContentType: driver.ContentTypeJSON, ContentEncoding: driver.ContentEncodingUTF8,
		CorrelationID: id, DeliveryMode: 2, Body: body}
	h := &msg.Headers
	h.Lang, h.Task, h.ID, h.RootID = "go", name, id, id
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = driver.Repr(anynum.Plain(a))
	}
	h.ArgsRepr = "(" + strings.Join(parts, ", ")
	if len(args) == 1 {
		h.ArgsRepr += ","
	}
	h.ArgsRepr += ")"
	h.KwargsRepr = driver.Repr(anynum.Plain(kwargs))
	host, _ := os.Hostname()
	h.Origin = "taskctl" + strconv.Itoa(os.Getpid()) + "@" + host
	if countdown > 0 {
		h.ETA = time.Now().Add(countdown)
	}
	return msg, nil
}

// result: taskctl result [-wait D] ID — `celery result ID`.
func (c *cli) result(args []string) error {
	fs := c.flags("result")
	wait := fs.Duration("wait", 0, "wait this long for a final state (SUCCESS, FAILURE, REVOKED)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one task id")
	}
	if c.app.Backend() == nil {
		return usagef("no result backend: pass -backend URL or set TASKGEN_BACKEND")
	}
	return c.showResult(fs.Arg(0), *wait)
}

// docSerializer is what result documents are read as; DecodeResultDoc reads
// a JSON document whatever it is given.
const docSerializer = "msgpack"

// showResult prints the stored document of id, waiting up to wait for a
// final state; still not final after a wait is errNoReply.
func (c *cli) showResult(id string, wait time.Duration) error {
	be := c.app.Backend()
	var raw []byte
	var err error
	if wait > 0 {
		wctx, cancel := context.WithTimeout(c.ctx, wait)
		raw, err = be.Wait(wctx, id, func(doc []byte) bool {
			d, err := driver.DecodeResultDoc(docSerializer, doc)
			return err == nil && d.Status.Ready()
		})
		cancel()
		if err != nil && c.ctx.Err() == nil {
			raw, err = be.Load(c.ctx, id)
		}
	} else {
		raw, err = be.Load(c.ctx, id)
	}
	if err != nil {
		return fmt.Errorf("result backend: %w", err)
	}
	out := map[string]any{"task_id": id, "state": "PENDING"}
	state := driver.State("PENDING")
	if raw != nil {
		doc, err := driver.DecodeResultDoc(docSerializer, raw)
		if err != nil {
			return fmt.Errorf("undecodable result document of %s: %w", id, err)
		}
		state = doc.Status
		out["state"] = string(doc.Status)
		if !doc.DateDone.IsZero() {
			out["date_done"] = doc.DateDone.UTC().Format(time.RFC3339Nano)
		}
		switch doc.Status {
		case driver.StateSuccess:
			var v any
			if err := doc.DecodeResult(&v); err == nil {
				if _, err := json.Marshal(v); err != nil {
					v = driver.Repr(v)
				}
				out["result"] = v
			}
		case driver.StateFailure, driver.StateRetry, driver.StateRevoked:
			e := doc.Exception()
			out["exception"] = e.Type + ": " + driver.Repr(e.Message)
			if doc.Traceback != "" {
				out["traceback"] = doc.Traceback
			}
		default:
			var v any
			if err := doc.DecodeResult(&v); err == nil && v != nil {
				out["meta"] = v
			}
		}
	}
	if c.json {
		if err := c.printJSON(out); err != nil {
			return err
		}
	} else {
		rows := [][]string{{"ID", id}, {"STATE", string(state)}}
		for _, k := range []string{"result", "meta", "exception", "date_done", "traceback"} {
			if v, ok := out[k]; ok {
				rows = append(rows, []string{strings.ToUpper(k), str(v)})
			}
		}
		tw := rows
		if err := c.table(tw[0], tw[1:]); err != nil {
			return err
		}
	}
	if wait > 0 && !state.Ready() {
		return fmt.Errorf("%w: task %s still %s after %v", errNoReply, id, state, wait)
	}
	return nil
}
