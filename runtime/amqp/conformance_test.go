package amqp_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime/amqp"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/transporttest"
)

// TestConformance runs the transport conformance suite on the shared
// RabbitMQ, with priority queues (max_priority=9); the restart test has a
// RabbitMQ of its own (testenv.PrivateEnv), so TestConformance is not
// parallel.
func TestConformance(t *testing.T) {
	open := func(t *testing.T, raw string) driver.Broker {
		u, err := url.Parse(withQuery(raw, "max_priority=9"))
		require.NoError(t, err)
		b, err := amqp.New(u, driver.TransportOptions{Hostname: "test@conformance", ConnectTimeout: 2 * time.Second, Logger: testLogger})
		require.NoError(t, err)
		return b
	}
	transporttest.Run(t, transporttest.Harness{
		Open: func(t *testing.T) driver.Broker { return open(t, testenv.AMQPURL(t)) },
		DeadLetters: func(t *testing.T, _ driver.Broker, queue string) []transporttest.DeadLetter {
			// Read without acknowledging: closing the channel requeues them.
			conn, ch := rawConn(t, testenv.AMQPURL(t))
			defer conn.Close()
			var out []transporttest.DeadLetter
			for {
				d, ok, err := ch.Get(queue+amqp.DeadLetterQueueSuffix, false)
				require.NoError(t, err)
				if !ok {
					return out
				}
				reason, _ := d.Headers[amqp.HeaderDeadLetterReason].(string)
				out = append(out, transporttest.DeadLetter{TaskID: d.CorrelationId, Reason: reason})
			}
		},
		Priority: transporttest.HighestFirst,
		NewServer: func(t *testing.T) transporttest.Server {
			testenv.PrivateEnv(t)
			raw := testenv.AMQPURL(t)
			return transporttest.Server{
				Open:  func(t *testing.T) driver.Broker { return open(t, raw) },
				Stop:  func(t *testing.T) { testenv.StopRabbitMQ(t) },
				Start: func(t *testing.T) { testenv.StartRabbitMQ(t) },
			}
		},
	})
}
