//go:build reliability

package reliability_test

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/reliability/internal/faultproxy"
	"github.com/taskgen/taskgen/runtime"
)

// TestNetworkFaults: worker and producer reach the broker through a TCP
// proxy on loopback that cuts every connection, stalls (forwards nothing
// while keeping connections open), and refuses connections for a while.
// Both recover by themselves; every confirmed Delay runs.
func TestNetworkFaults(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		srv, u := privateRedis(t)
		runNetFaults(t, "redis", u, srv.Addr(), "visibility_timeout=3s&restore_interval=500ms&publish_timeout=2s&socket_timeout=2s")
	})
	t.Run("rabbitmq", func(t *testing.T) {
		u := testenv.AMQPURL(t)
		pu, err := url.Parse(u)
		require.NoError(t, err)
		runNetFaults(t, "rabbitmq", u, pu.Host, "heartbeat=1s&connect_timeout=2s")
	})
}

func runNetFaults(t *testing.T, brokerName, brokerURL, addr, query string) {
	proxy, err := faultproxy.New(addr)
	require.NoError(t, err)
	t.Cleanup(func() { proxy.Close() })
	pu, err := url.Parse(brokerURL)
	require.NoError(t, err)
	pu.Host = proxy.Addr()
	via := withQuery(pu.String(), query)

	ctx := ctxT(t, 3*time.Minute)
	s := newSink(t)
	queue := "rel.net." + randID()
	wapp, _ := newApp(t, "worker", via)
	inProcessWorker(t, wapp, s, runtime.WorkerOptions{Queues: []string{queue}, Concurrency: 8})
	papp, plog := newApp(t, "producer", via)
	stop := make(chan struct{})
	p := runProducer(ctx, papp, queue, 4, 5*time.Millisecond, 2*time.Second, stop, plog)

	step := func(what string, f func()) {
		f()
		fmt.Fprintf(plog, "fault: %s\n", what)
	}
	time.Sleep(1500 * time.Millisecond)
	step("cut", func() { proxy.Cut() })
	time.Sleep(2 * time.Second)
	step("stall 4s", func() { proxy.Stall(true) })
	time.Sleep(4 * time.Second)
	step("resume", func() { proxy.Stall(false) })
	time.Sleep(2 * time.Second)
	step("cut + refuse 2s", func() { proxy.Refuse(true); proxy.Cut() })
	time.Sleep(2 * time.Second)
	step("accept", func() { proxy.Refuse(false) })
	time.Sleep(1500 * time.Millisecond)
	step("stall 1s then cut", func() { proxy.Stall(true); time.Sleep(time.Second); proxy.Cut(); proxy.Stall(false) })
	time.Sleep(2 * time.Second)
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
	// After the faults both sides work again: a fresh batch runs.
	var after []string
	for i := range 50 {
		id := fmt.Sprintf("after-%d-%s", i, randID())
		_, err := recordStub(papp, queue).Delay(ctx, id, 0)
		require.NoError(t, err, "publishing after the faults")
		after = append(after, id)
	}
	lostAfter, _ := s.waitAll(after, 30*time.Second)
	t.Logf("%s via proxy: confirmed %d, lost %d, duplicates %d, producer errors %d (%s), unconfirmed that ran %d, connections %d",
		brokerName, len(confirmed), len(lost), dups, errs, p.errorKinds(), ranUnconfirmed, proxy.Accepted())
	report(t, figure{Scenario: "3 network faults via TCP proxy (cut, stall 4 s, refuse 2 s, stall+cut)", Broker: brokerName, Tasks: int64(len(confirmed) + len(after)),
		Lost: int64(len(lost) + len(lostAfter)), Duplicates: int64(dups), Surfaced: errs,
		Notes: fmt.Sprintf("%d reconnections through the proxy; %d failed Delays ran anyway", proxy.Accepted(), ranUnconfirmed)})
	require.Empty(t, lost, "confirmed but never run: %v", head(lost, 10))
	require.Empty(t, lostAfter, "the worker did not recover")
}
