//go:build reliability

package reliability_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/reliability/tasks"
	"github.com/taskgen/taskgen/runtime"
	rredis "github.com/taskgen/taskgen/runtime/redis"
)

// Regression tests of bugs this suite found (docs/RELIABILITY.md §Bugs found).

// TestRedisAuthFailureIsNotSilent: when Redis refuses the connection's AUTH
// (wrong password, user disabled), Publish must return an error. It used to
// return nil with the message not in the queue (silent loss): flushPublish
// ignored pipe.Exec's error, and go-redis leaves the commands' own Err() nil
// when the connection could not be initialised.
func TestRedisAuthFailureIsNotSilent(t *testing.T) {
	_, okURL := privateRedis(t)
	bad := strings.Replace(okURL, redisPassword, redisPassword+"-wrong", 1)
	log, f := logger(t, "authfail", -4)
	app, err := runtime.New(runtime.Config{Broker: bad, Logger: log, PublishTimeout: 2 * time.Second})
	require.NoError(t, err)
	defer app.Close()
	good, err := runtime.New(runtime.Config{Broker: okURL, Logger: log})
	require.NoError(t, err)
	defer good.Close()
	ctx := ctxT(t, 10*time.Second)
	queue := "rel.authfail." + randID()
	_, err = tasks.Record.With(runtime.WithApp(app), runtime.Queue(queue)).Delay(ctx, "x", 0)
	n, lerr := good.Broker().(*rredis.Broker).QueueLength(ctx, queue)
	require.NoError(t, lerr)
	if err != nil {
		f.WriteString("auth failure error: " + err.Error() + "\n")
		require.NotContains(t, err.Error(), redisPassword)
	}
	require.Error(t, err, "Delay returned nil but the queue holds %d messages: silent loss", n)
}
