package redis_test

import (
	"testing"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/transporttest"
)

func TestBroker_DeadLetterStore(t *testing.T) {
	transporttest.RunDeadLetterStore(t, func(t *testing.T) driver.Broker { return openBroker(t, testURL(t, "", "")) })
}

// With dead_letter_queue one list holds every queue's dead letters: each
// queue sees only its own.
func TestBroker_DeadLetterStore_SharedList(t *testing.T) {
	transporttest.RunDeadLetterStore(t, func(t *testing.T) driver.Broker {
		return openBroker(t, testURL(t, "", "dead_letter_queue=all.dead"))
	})
}
