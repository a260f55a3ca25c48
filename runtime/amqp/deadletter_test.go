package amqp_test

import (
	"testing"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/transporttest"
)

func TestBroker_DeadLetterStore(t *testing.T) {
	transporttest.RunDeadLetterStore(t, func(t *testing.T) driver.Broker { return openBroker(t, testenv.AMQPURL(t)) })
}

func TestBroker_DeadLetterStore_Quorum(t *testing.T) {
	transporttest.RunDeadLetterStore(t, func(t *testing.T) driver.Broker {
		return openBroker(t, quorumURL(t, ""))
	})
}
