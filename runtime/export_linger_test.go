package runtime

import "time"

// SetWorkerEventLinger sets the BatchLinger of the event dispatchers of
// workers made after it (0: the default) and returns a function restoring
// the previous value, for the events benchmarks.
func SetWorkerEventLinger(d time.Duration) (restore func()) {
	old := workerEventLinger
	workerEventLinger = d
	return func() { workerEventLinger = old }
}
