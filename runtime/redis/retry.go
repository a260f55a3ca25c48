package redis

import (
	"time"

	"github.com/taskgen/taskgen/runtime/internal/reconnect"
)

// The waits between retries after Redis failed to answer, one policy per
// kind of work; each loop holds a reconnect.Backoff of its policy and
// resets it on success.
var (
	// consumePolicy spaces a consumer's fetches and blocking pops while
	// Redis is unreachable.
	consumePolicy = reconnect.Policy{Min: 50 * time.Millisecond, Max: 5 * time.Second}
	// ackPolicy spaces retried acknowledgements, inbox records and the
	// remote-control reply reader.
	ackPolicy = reconnect.Policy{Min: 50 * time.Millisecond, Max: 2 * time.Second}
	// commandPolicy spaces retried publishes and bounded commands, within
	// the publish timeout.
	commandPolicy = reconnect.Policy{Min: 20 * time.Millisecond, Max: 500 * time.Millisecond}
	// subscribePolicy spaces re-subscriptions of a lost pub/sub connection.
	subscribePolicy = reconnect.Policy{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	// backendPolicy spaces the result backend's reads while waiting for a
	// result and Redis is unreachable.
	backendPolicy = reconnect.Policy{Min: 100 * time.Millisecond, Max: 2 * time.Second}
)
