//go:build reliability

package reliability_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
)

// TestBrokerRestartRedis: Redis with appendonly yes + appendfsync always is
// SIGKILLed mid-stream and restarted, twice, while producers publish and a
// worker consumes. Every Delay that returned nil runs; producers see errors
// during the outage.
func TestBrokerRestartRedis(t *testing.T) {
	srv, url := privateRedis(t, "appendonly yes", "appendfsync always")
	url = withQuery(url, "visibility_timeout=2s&restore_interval=300ms&publish_timeout=1s")
	ctx := ctxT(t, 3*time.Minute)
	s := newSink(t)
	queue := "rel.restart." + randID()
	wapp, _ := newApp(t, "worker", url)
	inProcessWorker(t, wapp, s, runtime.WorkerOptions{Queues: []string{queue}, Concurrency: 8})
	papp, plog := newApp(t, "producer", url)
	stop := make(chan struct{})
	p := runProducer(ctx, papp, queue, 4, 2*time.Millisecond, 1500*time.Millisecond, stop, plog)

	time.Sleep(2 * time.Second)
	outages := 0
	for range 2 {
		srv.Kill() // SIGKILL: nothing flushed beyond what appendfsync always already wrote
		outages++
		time.Sleep(3 * time.Second) // longer than publish_timeout: Delays must fail, not hang
		srv.Start()
		time.Sleep(2 * time.Second)
	}
	close(stop)
	p.wait()
	confirmed, failed, errs := p.snapshot()
	lost, dups := s.waitAll(confirmed, 60*time.Second)
	ranUnconfirmed := 0
	counts := s.counts()
	for _, id := range failed {
		if counts[id] > 0 {
			ranUnconfirmed++
		}
	}
	t.Logf("redis restart: confirmed %d, lost %d, duplicates %d, producer errors %d (%s), unconfirmed that ran anyway %d",
		len(confirmed), len(lost), dups, errs, p.errorKinds(), ranUnconfirmed)
	report(t, figure{Scenario: "2 broker SIGKILL+restart ×2 (appendfsync always)", Broker: "redis", Tasks: int64(len(confirmed)), Lost: int64(len(lost)), Duplicates: int64(dups),
		Surfaced: errs, Notes: fmt.Sprintf("%d Delays failed during the outages (%d of them ran anyway: at-least-once)", len(failed), ranUnconfirmed)})
	require.Empty(t, lost, "confirmed but never run: %v", head(lost, 10))
	require.Positive(t, errs, "producers saw no error during %d outages", outages)
}

// TestRabbitMQPrivate runs, on a private RabbitMQ node (PrivateEnv), the
// broker restart scenario and then, because the restart loads a config with
// a TLS listener, the amqps:// checks.
func TestRabbitMQPrivate(t *testing.T) {
	testenv.PrivateEnv(t)
	dir := os.Getenv("TASKGEN_TESTENV_DIR")
	pki := newPKI(t)
	tlsPort := freePort(t)
	conf := filepath.Join(dir, "rabbitmq", "rabbitmq.conf")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = fmt.Fprintf(f, "listeners.ssl.default = 127.0.0.1:%d\nssl_options.cacertfile = %s\nssl_options.certfile = %s\nssl_options.keyfile = %s\nssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n",
		tlsPort, pki.caFile, pki.certFile, pki.keyFile)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	t.Run("restart", func(t *testing.T) { rabbitRestart(t) })
	t.Run("tls", func(t *testing.T) { rabbitTLS(t, pki, tlsPort) })
}

func rabbitRestart(t *testing.T) {
	url := testenv.AMQPURL(t)
	ctx := ctxT(t, 3*time.Minute)
	s := newSink(t)
	queue := "rel.restart." + randID()
	wapp, _ := newApp(t, "worker", url)
	inProcessWorker(t, wapp, s, runtime.WorkerOptions{Queues: []string{queue}, Concurrency: 8})
	papp, plog := newApp(t, "producer", url)
	stop := make(chan struct{})
	p := runProducer(ctx, papp, queue, 4, 2*time.Millisecond, 3*time.Second, stop, plog)
	time.Sleep(2 * time.Second)
	start := time.Now()
	testenv.RestartRabbitMQ(t) // clean stop (SIGTERM) and start: durable queues, persistent messages
	outage := time.Since(start)
	time.Sleep(3 * time.Second)
	close(stop)
	p.wait()
	confirmed, failed, errs := p.snapshot()
	lost, dups := s.waitAll(confirmed, 60*time.Second)
	counts := s.counts()
	ranUnconfirmed := 0
	for _, id := range failed {
		if counts[id] > 0 {
			ranUnconfirmed++
		}
	}
	t.Logf("rabbitmq restart (%v): confirmed %d, lost %d, duplicates %d, producer errors %d (%s), unconfirmed that ran %d",
		outage.Round(time.Millisecond), len(confirmed), len(lost), dups, errs, p.errorKinds(), ranUnconfirmed)
	report(t, figure{Scenario: "2 broker restart (durable, persistent, confirms)", Broker: "rabbitmq", Tasks: int64(len(confirmed)), Lost: int64(len(lost)), Duplicates: int64(dups),
		Surfaced: errs, Notes: fmt.Sprintf("outage %.1f s; %d Delays failed (%d ran anyway)", outage.Seconds(), len(failed), ranUnconfirmed)})
	require.Empty(t, lost, "confirmed but never run: %v", head(lost, 10))
	require.Positive(t, errs, "producers saw no error during the restart")
}
