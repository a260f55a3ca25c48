package monitor

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskgen/taskgen/runtime/driver"
)

// BrokerNode is one node of the monitor's broker.
type BrokerNode struct {
	URL     string // redacted
	Current bool   // the node in use now
}

// BrokerNodes are the nodes behind the monitor's broker URL and the one in
// use: the RabbitMQ nodes of an amqp:// list and the one connections go
// to, the sentinels of a sentinel:// list and the master they name (which
// is not one of the sentinels), or the one server of any other URL.
type BrokerNodes struct {
	Nodes []BrokerNode
	// Current is the node in use ("" when unknown: no sentinel answers).
	Current string
	// Listed is false when the transport does not implement
	// driver.NodeLister: Nodes is then the broker URL alone.
	Listed bool
}

// BrokerNodes asks the broker for its nodes (driver.NodeLister); for
// Redis Sentinel this asks the sentinels, with a short timeout.
func (m *Monitor) BrokerNodes() BrokerNodes {
	nl, ok := m.app.Broker().(driver.NodeLister)
	if !ok {
		u := driver.Redact(m.app.Config().Broker)
		return BrokerNodes{Nodes: []BrokerNode{{URL: u, Current: true}}, Current: u}
	}
	cur := nl.CurrentNode()
	out := BrokerNodes{Current: cur, Listed: true}
	for _, n := range nl.Nodes() {
		out.Nodes = append(out.Nodes, BrokerNode{URL: n, Current: n == cur})
	}
	return out
}

// Sentinels reports whether the nodes are a sentinel list (the current
// node is then the master, not one of them).
func (b BrokerNodes) Sentinels() bool {
	for _, n := range b.Nodes {
		if n.Current {
			return false
		}
	}
	return b.Listed && len(b.Nodes) > 0 && len(b.Nodes[0].URL) > 11 && b.Nodes[0].URL[:11] == "sentinel://"
}

// apiBroker answers GET /api/broker: the broker's redacted URL, transport,
// nodes and the current one.
//
//	{"url": "amqp://taskgen:xxxxx@h1:5672/v;amqp://…", "transport": "*amqp.Broker",
//	 "nodes": [{"url": "amqp://taskgen:xxxxx@h1:5672/v", "current": true}, …],
//	 "current": "amqp://taskgen:xxxxx@h1:5672/v", "role": "node"}
//
// role says what current is: "node" (one of nodes) or "master" (the
// master named by the sentinels of nodes), "" when unknown.
func (m *Monitor) apiBroker(w http.ResponseWriter, r *http.Request) {
	bn := m.BrokerNodes()
	nodes := make([]object, 0, len(bn.Nodes))
	for _, n := range bn.Nodes {
		nodes = append(nodes, object{{"url", n.URL}, {"current", n.Current}})
	}
	writeJSON(w, http.StatusOK, object{
		{"url", driver.Redact(m.app.Config().Broker)},
		{"transport", fmt.Sprintf("%T", m.app.Broker())},
		{"nodes", nodes},
		{"current", nullable(bn.Current)},
		{"role", bn.role()},
	})
}

func (b BrokerNodes) role() string {
	switch {
	case b.Current == "":
		return ""
	case b.Sentinels():
		return "master"
	default:
		return "node"
	}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nodeCollector exports taskgen_broker_node_current: 1 for the node in
// use, 0 for the others, read from the broker at each scrape.
type nodeCollector struct{ m *Monitor }

var nodeCurrentDesc = prometheus.NewDesc("taskgen_broker_node_current",
	"1 for the broker node the monitor uses now (the RabbitMQ node of a URL list it connects to, the master the sentinels name), 0 for the other nodes of the list; role is node, sentinel or master.",
	[]string{"node", "role"}, nil)

// Describe sends the collector's descriptor.
func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- nodeCurrentDesc }

// Collect asks the broker for its nodes and sends one gauge per node.
func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	bn := c.m.BrokerNodes()
	sentinels := bn.Sentinels()
	for _, n := range bn.Nodes {
		role, v := "node", 0.0
		if sentinels {
			role = "sentinel"
		}
		if n.Current {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(nodeCurrentDesc, prometheus.GaugeValue, v, n.URL, role)
	}
	if sentinels && bn.Current != "" {
		ch <- prometheus.MustNewConstMetric(nodeCurrentDesc, prometheus.GaugeValue, 1, bn.Current, "master")
	}
}
