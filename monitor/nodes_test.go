package monitor

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	_ "github.com/taskgen/taskgen/runtime/amqp"
	"github.com/taskgen/taskgen/runtime/driver"
	_ "github.com/taskgen/taskgen/runtime/redis"
)

// brokerAnswer is GET /api/broker's document.
type brokerAnswer struct {
	URL       string `json:"url"`
	Transport string `json:"transport"`
	Nodes     []struct {
		URL     string `json:"url"`
		Current bool   `json:"current"`
	} `json:"nodes"`
	Current *string `json:"current"`
	Role    string  `json:"role"`
}

// nodesMonitor runs a monitor on broker (its events subscribed), served
// over HTTP.
func nodesMonitor(t *testing.T, broker string) string {
	t.Helper()
	app, err := runtime.New(runtime.Config{Broker: broker, Logger: quietLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	m, err := New(Config{App: app, PollInterval: 200 * time.Millisecond, Queues: []string{"celery"}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	select {
	case <-m.Subscribed():
	case <-time.After(30 * time.Second):
		t.Fatal("monitor did not subscribe")
	}
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	return srv.URL
}

func getBroker(t *testing.T, base string) brokerAnswer {
	t.Helper()
	resp, err := http.Get(base + "/api/broker")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
	var a brokerAnswer
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&a))
	return a
}

func getPage(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// currentOf returns the nodes marked current, and checks that current
// names the one.
func (a brokerAnswer) currentNodes() []string {
	var out []string
	for _, n := range a.Nodes {
		if n.Current {
			out = append(out, n.URL)
		}
	}
	return out
}

// A Redis Sentinel deployment: the API lists the sentinels and names the
// master they agree on; after the master is killed and the sentinels fail
// over, it names the new one, as do the dashboard, the broker page and
// taskgen_broker_node_current.
func TestBrokerNodes_RedisSentinelFailover(t *testing.T) {
	t.Parallel()
	d := testenv.NewRedisSentinel(t, testenv.SentinelConfig{})
	base := nodesMonitor(t, d.URL())

	a := getBroker(t, base)
	require.Len(t, a.Nodes, 3)
	for i, s := range d.SentinelAddrs() {
		require.Equal(t, "sentinel://"+s, a.Nodes[i].URL)
		require.False(t, a.Nodes[i].Current, "a sentinel is not the node in use")
	}
	require.Equal(t, "master", a.Role)
	require.Equal(t, "*redis.Broker", a.Transport)
	old := d.MasterAddr()
	require.NotNil(t, a.Current)
	require.Equal(t, "redis://"+old, *a.Current)

	page := getPage(t, base+"/")
	require.Contains(t, page, `id="broker-nodes"`)
	require.Contains(t, page, "redis://"+old)
	fs, _, _ := scrape(t, base, "")
	require.Equal(t, 1.0, value(fs.metric(t, "taskgen_broker_node_current", "node", "redis://"+old, "role", "master")))
	require.Equal(t, 0.0, value(fs.metric(t, "taskgen_broker_node_current", "node", "sentinel://"+d.SentinelAddrs()[0], "role", "sentinel")))

	d.KillMaster()
	nw := d.WaitFailover(old).Addr()
	require.NotEqual(t, old, nw)
	require.Eventually(t, func() bool {
		a = getBroker(t, base)
		return a.Current != nil && *a.Current == "redis://"+nw
	}, 10*time.Second, 50*time.Millisecond, "the API still names %v, not the new master %s", a.Current, nw)
	require.Contains(t, getPage(t, base+"/broker"), "redis://"+nw)
	fs, _, _ = scrape(t, base, "")
	require.Equal(t, 1.0, value(fs.metric(t, "taskgen_broker_node_current", "node", "redis://"+nw, "role", "master")))
	require.Nil(t, fs.find("taskgen_broker_node_current", "node", "redis://"+old, "role", "master"))
}

// A RabbitMQ cluster reached through a URL list: the API lists its nodes
// (passwords redacted) with the one the monitor uses marked; once that node
// is killed, the monitor's connections move to another and the API says so.
func TestBrokerNodes_RabbitClusterFailover(t *testing.T) {
	testenv.SkipIfShort(t, "starts a 3-node RabbitMQ cluster")
	c := testenv.NewRabbitCluster(t, 3)
	base := nodesMonitor(t, c.URLs())

	a := getBroker(t, base)
	require.Len(t, a.Nodes, 3)
	for i, n := range a.Nodes {
		require.Equal(t, driver.Redact(c.URL(i)), n.URL)
		require.Contains(t, n.URL, ":xxxxx@", "the password is redacted")
	}
	require.Equal(t, "node", a.Role)
	cur := a.currentNodes()
	require.Len(t, cur, 1)
	require.Equal(t, cur[0], *a.Current)
	killed := -1
	for i, n := range a.Nodes {
		if n.Current {
			killed = i
		}
	}
	require.Contains(t, getPage(t, base+"/"), `<tr data-node="`+cur[0]+`" class="current">`)
	fs, _, _ := scrape(t, base, "")
	require.Equal(t, 1.0, value(fs.metric(t, "taskgen_broker_node_current", "node", cur[0], "role", "node")))

	c.Kill(t, killed)
	require.Eventually(t, func() bool {
		a = getBroker(t, base)
		return a.Current != nil && *a.Current != cur[0]
	}, 60*time.Second, 100*time.Millisecond, "the API still names the killed node %s", cur[0])
	now := a.currentNodes()
	require.Len(t, now, 1)
	require.NotEqual(t, cur[0], now[0])
	fs, _, _ = scrape(t, base, "")
	require.Equal(t, 0.0, value(fs.metric(t, "taskgen_broker_node_current", "node", cur[0], "role", "node")))
	require.Equal(t, 1.0, value(fs.metric(t, "taskgen_broker_node_current", "node", now[0], "role", "node")))
}

// A plain Redis URL is one node, the current one; a transport that lists
// no nodes (memory://) shows its URL alone.
func TestBrokerNodes_SingleServer(t *testing.T) {
	t.Parallel()
	url := testenv.RedisURL(t)
	a := getBroker(t, nodesMonitor(t, url))
	require.Len(t, a.Nodes, 1)
	require.Equal(t, driver.Redact(url), a.Nodes[0].URL)
	require.True(t, a.Nodes[0].Current)
	require.Equal(t, "node", a.Role)

	e := newEnv(t, nil)
	a = getBroker(t, e.url)
	require.Len(t, a.Nodes, 1)
	require.True(t, strings.HasPrefix(a.Nodes[0].URL, "memory://"))
	require.True(t, a.Nodes[0].Current)
}
