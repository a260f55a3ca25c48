// Package transporttest is the conformance suite of taskgen transports: the
// behaviours every implementation of the runtime/driver interfaces must show,
// whatever carries the messages. It is for transport authors, as
// riverdrivertest is for River's drivers.
//
// A transport runs the whole suite from one short test:
//
//	func TestConformance(t *testing.T) {
//		transporttest.Run(t, transporttest.Harness{
//			Open:        func(t *testing.T) driver.Broker { ... },
//			DeadLetters: func(t *testing.T, b driver.Broker, queue string) []transporttest.DeadLetter { ... },
//			Priority:    transporttest.HighestFirst,
//			NewServer:   func(t *testing.T) transporttest.Server { ... },
//		})
//	}
//
// The subtests cover publish and consume, ack, requeue, reject to the dead
// letters, delayed delivery, priorities, the prefetch bound, redelivery after
// a consumer dies, queue lengths, events and remote control fan-out, Close,
// and surviving a server restart. Each subtest uses queue names, node names
// and event hostnames of its own, so the suite can share a server with other
// tests.
package transporttest

import (
	"testing"

	"github.com/taskgen/taskgen/runtime/driver"
)

// Harness tells Run how to reach the transport under test. Open and
// DeadLetters are required; every other field is optional, and leaving one
// unset says the transport genuinely lacks what it describes.
type Harness struct {
	// Open returns a new broker with connections of its own to the server
	// under test. Every broker opened during one test reaches the same queues
	// and fan-out as the others, so that one can die while another goes on.
	// The broker must implement driver.Delayer, driver.QueueInspector,
	// driver.EventTransport and driver.ControlTransport. Run closes it at
	// the end of the test; closing it twice must be harmless.
	Open func(t *testing.T) driver.Broker

	// DeadLetters returns the messages Delivery.Reject set aside from queue,
	// oldest first, as seen through b (a broker Open returned).
	DeadLetters func(t *testing.T, b driver.Broker, queue string) []DeadLetter

	// Priority is how the transport orders the ready messages of one queue
	// by Message.Priority. The zero value, FIFO, skips the priorities test.
	Priority PriorityOrder

	// InProcess says the broker lives in the test process (memory://): the
	// brokers Open returns within a test are one and the same, so there is
	// no connection to lose and a consumer cannot die while the broker goes
	// on. It skips the redelivery-after-death test.
	InProcess bool

	// NewServer starts a server private to t, for the restart test (which
	// must not disturb other tests sharing the usual server). nil: the
	// transport has no server to restart. Run calls it from a test that is
	// not parallel, so it may use t.Setenv, provided the test calling Run is
	// not parallel either.
	NewServer func(t *testing.T) Server
}

// Server is a server private to one test, made by Harness.NewServer.
type Server struct {
	// Open returns a new broker connected to this server; its Publish must
	// fail within a few seconds while the server is down.
	Open func(t *testing.T) driver.Broker
	// Stop stops the server; clients see their connections drop.
	Stop func(t *testing.T)
	// Start starts it again on the same address and returns once it
	// accepts clients. Queued messages need not survive.
	Start func(t *testing.T)
}

// DeadLetter is one message set aside by Delivery.Reject.
type DeadLetter struct {
	// TaskID is the task id of the message (Message.Headers.ID).
	TaskID string
	// Reason is the reason given to Reject.
	Reason string
}

// PriorityOrder is how a transport orders the ready messages of a queue.
type PriorityOrder int

const (
	// FIFO ignores Message.Priority (the memory transport).
	FIFO PriorityOrder = iota
	// HighestFirst delivers higher priorities first (AMQP priority queues,
	// x-max-priority).
	HighestFirst
	// LowestFirst delivers lower priorities first, as kombu's Redis
	// transport does (priority 0 is the most urgent).
	LowestFirst
)

// Run runs the conformance suite against the transport h describes, as
// subtests of t. The restart test runs first and alone; every other subtest
// runs in parallel with the others.
func Run(t *testing.T, h Harness) {
	if h.Open == nil || h.DeadLetters == nil {
		t.Fatal("transporttest: Harness.Open and Harness.DeadLetters are required")
	}
	s := &suite{h: h}
	t.Run("Restart", s.testRestart)
	for _, c := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"PublishConsume", s.testPublishConsume},
		{"ConsumeSeveralQueues", s.testConsumeSeveralQueues},
		{"Ack", s.testAck},
		{"Requeue", s.testRequeue},
		{"RejectToDeadLetter", s.testReject},
		{"Delay", s.testDelay},
		{"Priority", s.testPriority},
		{"PrefetchBound", s.testPrefetch},
		{"RedeliveryAfterConsumerDies", s.testConsumerDies},
		{"QueueLength", s.testQueueLength},
		{"Events", s.testEvents},
		{"Control", s.testControl},
		{"ControlReplies", s.testReplies},
		{"Close", s.testClose},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t)
		})
	}
}

type suite struct{ h Harness }
