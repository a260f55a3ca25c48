package memory_test

import (
	"sync"
	"testing"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/memory"
	"github.com/taskgen/taskgen/runtime/transporttest"
)

// TestConformance runs the transport conformance suite: every test gets a
// broker of its own, which every Open of the test returns.
func TestConformance(t *testing.T) {
	var brokers sync.Map // test name -> *memory.Broker
	transporttest.Run(t, transporttest.Harness{
		Open: func(t *testing.T) driver.Broker {
			b, _ := brokers.LoadOrStore(t.Name(), memory.NewBroker())
			return b.(*memory.Broker)
		},
		DeadLetters: func(t *testing.T, b driver.Broker, queue string) []transporttest.DeadLetter {
			var out []transporttest.DeadLetter
			for _, d := range b.(*memory.Broker).DeadLetters() {
				if d.Queue == queue {
					out = append(out, transporttest.DeadLetter{TaskID: d.Message.Headers.ID, Reason: d.Reason})
				}
			}
			return out
		},
		InProcess: true,
	})
}

// TestScheduleStoreConformance runs the schedule store suite on a memory
// backend and a memory broker.
func TestScheduleStoreConformance(t *testing.T) {
	t.Run("Backend", func(t *testing.T) {
		b := memory.NewBackend()
		transporttest.ScheduleStore(t, func(*testing.T) driver.ScheduleStore { return b })
	})
	t.Run("Broker", func(t *testing.T) {
		b := memory.NewBroker()
		transporttest.ScheduleStore(t, func(*testing.T) driver.ScheduleStore { return b })
	})
}
