package redis_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/redis"
	"github.com/taskgen/taskgen/runtime/transporttest"
)

// TestConformance runs the transport conformance suite on the shared Redis,
// each test under a global_keyprefix of its own, with a visibility timeout
// of a second so that a dead consumer's messages come back quickly; the
// restart test has a redis-server of its own.
func TestConformance(t *testing.T) {
	var urls sync.Map // test name -> broker URL
	transporttest.Run(t, transporttest.Harness{
		Open: func(t *testing.T) driver.Broker {
			raw, _ := urls.LoadOrStore(t.Name(), testURL(t, "", "visibility_timeout=1&restore_interval=200ms"))
			return openBroker(t, raw.(string))
		},
		DeadLetters: deadLetters,
		Priority:    transporttest.LowestFirst,
		NewServer: func(t *testing.T) transporttest.Server {
			srv := testenv.NewRedisServer(t)
			return transporttest.Server{
				Open:  func(t *testing.T) driver.Broker { return openBroker(t, srv.URL()+"?publish_timeout=1s") },
				Stop:  func(*testing.T) { srv.Stop() },
				Start: func(*testing.T) { srv.Start() },
			}
		},
	})
}

// TestScheduleStoreConformance runs the schedule store suite on the
// shared Redis, through a backend and through a broker under another key
// prefix.
func TestScheduleStoreConformance(t *testing.T) {
	t.Run("Backend", func(t *testing.T) {
		transporttest.ScheduleStore(t, func(t *testing.T) driver.ScheduleStore { return openBackend(t, testURL(t, "", "")) })
	})
	t.Run("Broker", func(t *testing.T) {
		transporttest.ScheduleStore(t, func(t *testing.T) driver.ScheduleStore { return openBroker(t, testURL(t, "", "")) })
	})
}

// deadLetters is Harness.DeadLetters for the Redis broker.
func deadLetters(t *testing.T, b driver.Broker, queue string) []transporttest.DeadLetter {
	dls, err := b.(*redis.Broker).DeadLetters(context.Background(), queue, 0)
	require.NoError(t, err)
	var out []transporttest.DeadLetter
	for _, dl := range slices.Backward(dls) { // newest first
		var env struct {
			Headers struct{ ID string } `json:"headers"`
		}
		require.NoError(t, json.Unmarshal(dl.Raw, &env), "%s", dl.Raw)
		out = append(out, transporttest.DeadLetter{TaskID: env.Headers.ID, Reason: dl.Reason})
	}
	return out
}

// TestSentinelConformance runs the transport conformance suite and the
// schedule store suite through Redis Sentinel: a master, two replicas and
// three sentinels of the test's own, every broker and backend opened with a
// sentinel:// URL list, each test under a key prefix of its own. Its
// restart test is a failover: Stop SIGKILLs the master of a second
// deployment, Start waits until the sentinels promoted a replica (and
// starts the old master again, which rejoins as a replica); the consumer
// and the events, control and reply subscriptions opened before must
// deliver again.
func TestSentinelConformance(t *testing.T) {
	s := testenv.NewRedisSentinel(t, testenv.SentinelConfig{})
	var urls sync.Map // test name -> broker URL
	transporttest.Run(t, transporttest.Harness{
		Open: func(t *testing.T) driver.Broker {
			raw, _ := urls.LoadOrStore(t.Name(), testURL(t, s.URL(), "visibility_timeout=1&restore_interval=200ms"))
			return openBroker(t, raw.(string))
		},
		DeadLetters: deadLetters,
		Priority:    transporttest.LowestFirst,
		NewServer: func(t *testing.T) transporttest.Server {
			d := testenv.NewRedisSentinel(t, testenv.SentinelConfig{})
			var old *testenv.RedisServer
			return transporttest.Server{
				Open: func(t *testing.T) driver.Broker { return openBroker(t, d.URL()+"&publish_timeout=1s") },
				Stop: func(*testing.T) { old = d.KillMaster() },
				Start: func(*testing.T) {
					start := time.Now()
					m := d.WaitFailover(old.Addr())
					t.Logf("failover from %s to %s in %v", old.Addr(), m.Addr(), time.Since(start).Round(time.Millisecond))
					old.Start()
				},
			}
		},
	})
	t.Run("ScheduleStore", func(t *testing.T) {
		t.Run("Backend", func(t *testing.T) {
			transporttest.ScheduleStore(t, func(t *testing.T) driver.ScheduleStore { return openBackend(t, testURL(t, s.URL(), "")) })
		})
		t.Run("Broker", func(t *testing.T) {
			transporttest.ScheduleStore(t, func(t *testing.T) driver.ScheduleStore { return openBroker(t, testURL(t, s.URL(), "")) })
		})
	})
}
