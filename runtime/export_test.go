package runtime

// Names the external tests (package runtime_test) use that are not part of
// the application API.
type (
	EventDispatcher        = eventDispatcher
	EventDispatcherOptions = eventDispatcherOptions
)

// NewEventDispatcher is newEventDispatcher, for the event tests.
var NewEventDispatcher = newEventDispatcher

// Events returns the worker's event dispatcher, or nil when events are off
// (WorkerOptions.WithoutEvents, or a transport without EventTransport).
func (w *Worker) Events() *EventDispatcher { return w.events }
