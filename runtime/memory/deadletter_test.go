package memory_test

import (
	"testing"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/memory"
	"github.com/taskgen/taskgen/runtime/transporttest"
)

func TestBroker_DeadLetterStore(t *testing.T) {
	transporttest.RunDeadLetterStore(t, func(*testing.T) driver.Broker { return memory.NewBroker() })
}
