// Package driver is the contract between taskgen's runtime and its transports:
// it is for transport authors, the way database/sql/driver is for database
// drivers. Application code uses package runtime and imports a transport for
// its side effect; it never needs this package.
//
// A transport implements [Broker] (publish, consume, acknowledge through
// [Delivery]) and, where it can, the optional interfaces the runtime discovers
// by type assertion: [Delayer] for delayed delivery, [QueueInspector] for queue
// lengths, [EventTransport] for Celery events, [ControlTransport] for remote
// control (Celery's pidbox), [PublishBounder] when it bounds its own publishes.
// A result store implements [ResultBackend], and [GroupBackend] when it
// keeps groups and counts chords (workflows with a chord need one). Each
// registers itself by URL scheme in an init function:
//
//	func init() { driver.RegisterBroker("redis", open) }
//
// The package also holds what transports and monitors share about Celery's
// wire format: the [Message] model and its [TaskHeaders], result documents
// ([ResultDoc]) and group documents ([EncodeGroupDoc]), task states ([State]), event names and routing
// ([EventExchange], [EventRoutingKey]) and task ids ([NewID]).
//
// Every transport must pass the conformance suite in package
// runtime/transporttest.
package driver
