package runtime

import (
	"fmt"
	"time"

	"github.com/taskgen/taskgen/runtime/driver"
)

// Option is a per-call option given to a stub's With, Celery's apply_async
// arguments. Options are small typed values that print well in logs.
type Option interface {
	apply(*callOptions)
	String() string
}

type callOptions struct {
	app       *App
	countdown time.Duration
	eta       time.Time
	expires   time.Time
	queue     string
	priority  *uint8
	taskID    string
	headers   map[string]any
	parentID  string
	rootID    string
	// unique: runtime.Unique's key and ttl.
	uniqueKey string
	uniqueTTL time.Duration
}

type optionFunc struct {
	f    func(*callOptions)
	text string
}

func (o optionFunc) apply(c *callOptions) { o.f(c) }
func (o optionFunc) String() string       { return o.text }

// Countdown delays the task by d from now (Celery's countdown).
func Countdown(d time.Duration) Option {
	return optionFunc{func(c *callOptions) { c.countdown = d; c.eta = time.Time{} }, fmt.Sprintf("Countdown(%s)", d)}
}

// ETA runs the task no earlier than t (Celery's eta).
func ETA(t time.Time) Option {
	return optionFunc{func(c *callOptions) { c.eta = t; c.countdown = 0 }, "ETA(" + driver.FormatTime(t) + ")"}
}

// Expires revokes the task instead of running it when it starts after t.
func Expires(t time.Time) Option {
	return optionFunc{func(c *callOptions) { c.expires = t }, "Expires(" + driver.FormatTime(t) + ")"}
}

// Queue sends the task to the named queue instead of the task's default.
func Queue(name string) Option {
	return optionFunc{func(c *callOptions) { c.queue = name }, fmt.Sprintf("Queue(%q)", name)}
}

// Priority sets the message priority (RabbitMQ: higher first, 0–255, needs a
// priority queue; Redis: 0–9, lower first, as in Celery).
func Priority(n uint8) Option {
	return optionFunc{func(c *callOptions) { c.priority = &n }, fmt.Sprintf("Priority(%d)", n)}
}

// TaskID sets the task id instead of a random UUID.
func TaskID(id string) Option {
	return optionFunc{func(c *callOptions) { c.taskID = id }, fmt.Sprintf("TaskID(%q)", id)}
}

// Headers adds custom message headers (they reach the task through
// TaskFromContext). Values must be strings, booleans, numbers, nil, lists or maps.
func Headers(h map[string]any) Option {
	cp := make(map[string]any, len(h))
	for k, v := range h {
		cp[k] = v
	}
	return optionFunc{func(c *callOptions) {
		if c.headers == nil {
			c.headers = make(map[string]any, len(cp))
		}
		for k, v := range cp {
			c.headers[k] = v
		}
	}, fmt.Sprintf("Headers(%v)", cp)}
}

// WithApp sends through app instead of the process's default app.
func WithApp(app *App) Option {
	return optionFunc{func(c *callOptions) { c.app = app }, "WithApp(...)"}
}
