package driver

// NodeLister is implemented by brokers that stand for several servers (a
// RabbitMQ cluster reached through a URL list, Redis Sentinel) or that can
// name the one server they use, so that monitors can show the cluster and
// the node in use (taskmon's Broker panel, /api/broker and the
// taskgen_broker_node_current gauge). Every URL they return has its
// password redacted.
type NodeLister interface {
	// Nodes returns the broker's nodes, in the order of its URL list: the
	// RabbitMQ nodes of an amqp:// list, the sentinels of a sentinel://
	// list (sentinel://host:port), the one server of a redis:// URL.
	Nodes() []string
	// CurrentNode returns the node in use now: the RabbitMQ node the next
	// connection dials first, the master the sentinels name
	// (redis://host:port, not one of Nodes; "" when no sentinel answers),
	// the server of a redis:// URL. It may ask the servers, with a short
	// timeout.
	CurrentNode() string
}
