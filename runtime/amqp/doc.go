// Package amqp is taskgen's RabbitMQ transport (AMQP 0-9-1, through
// github.com/rabbitmq/amqp091-go). Importing it registers the amqp:// and
// amqps:// broker URL schemes:
//
//	import _ "github.com/taskgen/taskgen/runtime/amqp"
//
//	app, err := runtime.New(runtime.Config{
//		Broker:  "amqp://myuser:mypassword@localhost:5672/myvhost",
//		Backend: "redis://localhost:6379/1",
//	})
//
// It speaks Celery's topology and message format, so Go and Python (Celery
// 5.x) producers and workers share queues. Results travel through this
// package only with the rpc:// result backend ([RPCBackend], Celery's RPC
// backend: replies to the caller's queue, not persisted); otherwise use a
// result backend that stores them (redis://).
//
// # Setting up RabbitMQ
//
// As in Celery's guide ("Using RabbitMQ"), create a user, a virtual host, and
// give the user all permissions on that virtual host:
//
//	sudo rabbitmqctl add_user myuser mypassword
//	sudo rabbitmqctl add_vhost myvhost
//	sudo rabbitmqctl set_user_tags myuser mytag
//	sudo rabbitmqctl set_permissions -p myvhost myuser ".*" ".*" ".*"
//
// The URL is then amqp://myuser:mypassword@localhost:5672/myvhost.
//
// # URLs
//
// URLs are read as Celery (kombu) reads them:
//
//	amqp://user:password@host:5672/vhost    the virtual host is the path, URL-decoded
//	amqp://guest:guest@host:5672//          the virtual host "/" (also amqp://host/%2F)
//	amqp://host                             guest:guest on "/" at port 5672
//	amqps://user:password@host:5671/vhost   TLS (default port 5671)
//
// A password containing reserved characters (@ : / ? # ;) must be
// percent-encoded. Passwords never appear in logs or errors: URLs are
// printed through [runtime.Redact].
//
// # Clusters: URL lists
//
// The nodes of a RabbitMQ cluster are given as kombu's failover list, URLs
// separated by ';':
//
//	amqp://u:p@h1:5672/v?queue_type=quorum;amqp://u:p@h2:5672/v;amqp://u:p@h3:5672/v
//
// Every connection the broker opens (publishers, consumers, events, remote
// control) dials the node that served the last connection, and when that
// fails the next nodes of the list in turn, wrapping around; a connection
// that a node drops makes the next node the first one dialed (kombu's
// round-robin failover), so a dead or partitioned node does not cost each
// reconnect a connect_timeout. The transport options stand on the first
// URL and apply to every node; a later URL may repeat them but not differ.
// All URLs must have one scheme (amqp or amqps) and name one virtual host;
// each amqps:// node is verified under its own host name unless
// server_name_indication is set. A list that cannot be read whole (an
// empty entry, mixed schemes, a bad query) is refused with an error, never
// cut to its first URL. When every node fails, the error names each node's
// failure. [NewList] takes the parsed list; [runtime.New] and
// [driver.OpenBroker] accept the string.
//
// A list only finds another node; it does not make a queue survive the
// death of the node it lives on. Classic queues live on one node; use
// quorum queues (queue_type=quorum) on a cluster.
//
// # Options
//
// Options ride on the query string, e.g.
// amqp://host//?heartbeat=30&max_priority=10. An unknown option is an error.
//
//   - heartbeat: AMQP heartbeat interval, in seconds or as a Go duration
//     ("30", "30s"; default 10 s, 0 lets the server choose). Dead connections
//     are noticed after about two intervals.
//   - connect_timeout: TCP and handshake timeout of one connection attempt
//     (default 10 s).
//   - confirm_timeout: how long Publish waits for one publisher confirm
//     (seconds or a Go duration; default: as long as the caller's context
//     allows). A confirm that does not come in time is an error, not retried.
//   - max_priority: 1–255 declares every task queue with x-max-priority, as
//     Celery's task_queue_max_priority does. Off by default, as in Celery.
//     RabbitMQ refuses to re-declare a queue with other arguments, so use the
//     same value as the Python side (see Declarations).
//   - publish_channels: number of confirm-mode channels that publishers share
//     (default 4).
//   - consume_connections: number of connections (1–16, default 1) each
//     Consume call receives on; they share its prefetch (see Consuming).
//     amqp091-go decodes every frame of a connection in one reader
//     goroutine, so n connections decode deliveries in parallel. On a
//     2-core machine shared with RabbitMQ, 2 gave no gain and cost RabbitMQ
//     about 10 % more CPU per message; it is meant for a client whose reader
//     goroutine is saturated while the broker has cores to spare.
//   - dead_letter_exchange: name of the dead-letter exchange (default
//     "taskgen.dlx").
//   - delay_prefix: name prefix of the delay wait queues (default
//     "taskgen.delay"; classic queues only).
//   - queue_type: "classic" (default) or "quorum": task queues and their
//     dead-letter queues are declared with x-queue-type "quorum", what
//     Celery 5.5 declares with task_default_queue_type = "quorum" (a
//     Queue's queue_arguments={"x-queue-type": "quorum"}); delays then go
//     through kombu's native delayed delivery (see Delays). Quorum queues
//     are replicated on a majority of the cluster's nodes, so a confirmed
//     message survives the death of any minority of them. They have no
//     priorities in RabbitMQ 3.x, so max_priority with queue_type=quorum is
//     an error.
//   - delivery_limit: with queue_type=quorum, declare task queues with
//     x-delivery-limit N, x-dead-letter-exchange = dead_letter_exchange and
//     x-dead-letter-routing-key = the queue: a message delivered N+1 times
//     without being settled (a task that kills its worker, or a worker
//     stopped N+1 times while holding it) is dead-lettered by RabbitMQ into
//     <queue>.dead_letter, where the worker's own dead letters go, with
//     x-first-death-reason "delivery_limit". Every return counts: a
//     requeue (graceful shutdown) as well as a lost connection. Off by
//     default, because Celery does not declare these arguments (RabbitMQ 4
//     applies a limit of 20 of its own, dropping the message when no
//     dead-letter exchange is declared).
//   - cacertfile, certfile, keyfile, server_name_indication: TLS settings for
//     amqps:// (PEM files), as in RabbitMQ's URI specification. Without them
//     the system roots verify the server.
//
// # Declarations
//
// RabbitMQ refuses (406 PRECONDITION_FAILED) to re-declare a queue with
// other arguments, so the options that shape queues (max_priority,
// queue_type, delivery_limit) must match the other side's declaration:
//
//	Go URL query                             Celery (kombu) queue_arguments
//	(none)                                   none
//	max_priority=10                          {"x-max-priority": 10}  (task_queue_max_priority = 10)
//	queue_type=quorum                        {"x-queue-type": "quorum"}  (task_default_queue_type = "quorum")
//	queue_type=quorum&delivery_limit=5       {"x-queue-type": "quorum", "x-delivery-limit": 5,
//	                                          "x-dead-letter-exchange": "taskgen.dlx",
//	                                          "x-dead-letter-routing-key": <queue>}
//
// Celery 5.2–5.4 workers cannot consume quorum queues as they are: they set
// their prefetch with global QoS on RabbitMQ, which quorum queues refuse
// (540 NOT_IMPLEMENTED). Celery 5.5 detects quorum queues
// (worker_detect_quorum_queues) and uses per-consumer QoS; for older
// versions make kombu believe the server has the spec's QoS semantics
// before the worker starts:
//
//	from kombu.transport import pyamqp
//	pyamqp.Transport.qos_semantics_matches_spec = lambda self, connection: True
//
// taskgen always uses per-consumer QoS, on classic and quorum queues.
//
// Each queue q is declared as Celery declares it (task_create_missing_queues):
// a durable direct exchange named q, a durable queue q without arguments
// (x-max-priority only with max_priority), and a binding q → q with routing
// key q. For Celery's default queue this is exchange "celery", queue "celery",
// routing key "celery". A connection declares each queue once, before its
// first publish or consume. Python and Go therefore declare identical
// entities and neither gets 406 PRECONDITION_FAILED. If a queue or exchange
// already exists with other arguments (for example a Python deployment with
// task_queue_max_priority while this URL has no max_priority), the transport
// logs a warning and uses the existing entity (passive declare) instead of
// failing.
//
// # Publishing
//
// Messages go to the default exchange "" with routing key = queue name, as
// Celery publishes to direct queues: persistent (delivery_mode 2), with
// content_type, content_encoding, correlation_id, reply_to, priority and the
// expiration property (milliseconds) when the task has expires. Headers are an
// AMQP field table typed the way py-amqp reads them: strings, booleans, nil,
// 32-bit integers (64-bit only when a value does not fit), float64, arrays and
// nested tables; eta and expires are ISO-8601 strings; never int16.
//
// Publishing uses publisher confirms: Publish returns nil only after RabbitMQ
// confirmed the message. When the connection is lost before the confirm
// arrives, or RabbitMQ sends a negative confirm (it could not store the
// message just then, as a quorum queue electing a new leader after its
// node died), Publish reconnects if need be and publishes again
// (at-least-once: such a message may exist twice, with the same task id)
// until ctx ends or, for a ctx without deadline, for at most
// TransportOptions.ConnectTimeout; then it returns an error. Concurrent
// publishers share a small pool of confirm channels and each waits only for
// its own confirmation, so concurrent Delay calls do not wait in line.
// A message published to a queue that was deleted after this connection
// declared it is dropped by RabbitMQ (no mandatory flag), as in Celery.
//
// # Consuming
//
// Each Consume call opens consume_connections connections of its own
// (default 1; never more than prefetch), each with one channel that
// consumes every queue, and forwards what they receive to one delivery
// channel. The prefetch (the worker passes concurrency × 4, Celery's default
// multiplier) is split among them: each channel's basic.qos prefetch_count is
// prefetch/n, the first prefetch mod n channels one more, so together they
// never hold more than prefetch un-acknowledged messages of a queue. RabbitMQ
// hands a queue's messages round-robin to the consumers that have room. As
// with Celery on RabbitMQ, the prefetch count applies per consumer, that is
// per queue: a worker consuming k queues may hold up to k × prefetch
// un-acknowledged messages. With the default of 1 this is Celery's shape,
// one connection and one channel. A message whose headers are not protocol v2
// task headers or whose content type is neither application/json nor
// application/x-msgpack is delivered with a nil Message and a DecodeError, so
// the worker dead-letters it. The header table is converted to runtime
// headers on the first call of Message (or DecodeError), in the caller's
// goroutine, not in the goroutine that reads from RabbitMQ.
//
// Acknowledgements are batched per channel: Ack records the delivery as
// finished and the acknowledger of its channel sends basic.ack with
// multiple=true up to the highest delivery tag below which every delivery is
// finished (completion out of order is normal), as soon as a quarter of the
// channel's prefetch share is due, and at most 1 ms after a delivery
// finished. Finished deliveries stuck behind an unfinished one for 10–20 ms
// are acknowledged one by one, so a long task does not hold the prefetch
// window. The multiple ack never names a tag already settled on its own
// (RabbitMQ would close the channel with "unknown delivery tag"), and an ack
// is only ever sent on the channel that received the delivery. Ack
// therefore returns before the ack reaches the broker; if the connection
// dies in between, RabbitMQ redelivers the message (at-least-once, as for
// any un-acknowledged message).
//
// Requeue is basic.nack with requeue=true. Reject(reason) publishes a copy of
// the message (original properties, headers and body, plus the headers
// x-taskgen-dead-letter-reason and x-taskgen-dead-letter-queue) to the
// dead-letter exchange "taskgen.dlx" (direct, durable) with routing key =
// the original queue, which is bound to the durable queue
// "<queue>.dead_letter"; after the confirm it acknowledges the original.
// basic.reject onto an x-dead-letter-exchange is not used because it would
// need queue arguments that Celery does not declare (406 on re-declaration).
//
// When a connection or channel is lost, Consume reconnects it with backoff
// (100 ms doubling to 2 s), re-declares and resumes with the same prefetch
// share, while the other connections go on; the delivery channel stays
// open. Deliveries of the lost connection can no longer be acknowledged:
// their Ack and Reject return an error, and RabbitMQ redelivers them. Their
// Requeue returns nil: RabbitMQ has already requeued them. Those still
// waiting in the delivery channel's buffer are dropped, not run twice
// (deliveries of the other connections stay). When ctx ends, the consumers
// are cancelled, messages still buffered are requeued, the delivery channel
// is closed, and each connection stays open until every delivery it handed
// out has been settled (or Close is called), so the worker's final acks land.
//
// # Delays
//
// [Broker.Defer] parks a message in RabbitMQ until it is due, without any
// plugin and without holding it un-acknowledged (so RabbitMQ's
// consumer_timeout never fires): it is published to a wait queue
//
//	<delay_prefix>.<queue>.<N>s    e.g. taskgen.delay.celery.64s
//
// where N is the largest power of two (1 s … 2^22 s, about 48 days) not
// above the remaining delay; a message due within a second is published to
// queue directly. Wait queues are durable, have no consumers, and carry
// x-message-ttl = N s, x-dead-letter-exchange "" and
// x-dead-letter-routing-key = queue: after N seconds RabbitMQ moves the
// message to its queue. The message keeps its eta header (and loses its
// expiration property, which would cut the wait short; the expires header
// still revokes it); a worker that receives it still early either defers it
// again at a lower level (beyond the worker's DelayHorizon) or holds it in
// memory (within it). A delay of D therefore takes at most about
// log2(D/DelayHorizon)+1 hops. Dead-lettering headers added by RabbitMQ
// (x-death, x-first-death-*, x-last-death-*) are dropped on receipt. Wait
// queues are never deleted by the transport. Messages in them survive a
// RabbitMQ restart (durable queues, persistent messages).
//
// With queue_type=quorum the wait queues above are not used: Defer
// publishes through kombu's native delayed delivery, the mechanism Celery
// 5.5 uses for ETA tasks on quorum queues, sharing its entities:
//
//	exchange celery_delayed_<l>       l = 27 … 0: topic, durable
//	queue    celery_delayed_<l>       quorum; x-message-ttl 2^l s, x-overflow reject-publish,
//	                                  x-dead-letter-exchange celery_delayed_<l-1> (level 0:
//	                                  celery_delayed_delivery), x-dead-letter-strategy at-least-once
//	exchange celery_delayed_delivery  topic, durable
//
// The message is published to celery_delayed_27 with the routing key
// kombu's calculate_routing_key makes, the delay in whole seconds as 28
// binary digits then the queue name ("0.….1.0.1.celery" for 5 s); each
// level sends it into its queue when its digit is 1 and on to the next
// level when 0, so the waits add up to the delay, and RabbitMQ moves it a
// level down only once the next level holds it (at-least-once
// dead-lettering). The delivery exchange routes it to the queue, which is
// bound to it with 28 '*' words and the queue name (kombu binds "#.<queue>",
// which also matches queues whose names end in ".<queue>"). Every
// connection that declares a task queue declares these entities (once) and
// binds the queue, as a Celery 5.5 worker does at start, so a Celery 5.5
// producer's ETA tasks reach a queue only Go workers consume. The delay is
// truncated to whole seconds and capped at 2^28-1 s (about 8.5 years): the
// message arrives up to a second early and the worker holds it for the
// rest, or defers it again. Entities that a Celery app declared as classic
// queues (broker_native_delayed_delivery_queue_type = "classic") are used
// as they are, with a warning.
//
// # Queue lengths
//
// [Broker.QueueLength] reads the ready-message count with a passive declare.
//
// # Events and remote control
//
// The broker implements [runtime.EventTransport] (Celery events, so that
// Flower, `celery events` and taskmon see Go workers and Go monitors see
// Python workers) and [runtime.ControlTransport] (Celery's pidbox: `celery
// inspect`, `celery control`, revoke). It declares Celery's entities with
// Celery's flags and arguments, so either side may declare first:
//
//	exchange celeryev                   topic, durable
//	queue    celeryev.<uuid4>           one per SubscribeEvents: not durable, auto-delete,
//	                                    x-message-ttl 5000, x-expires 60000; bound with "#"
//	exchange celery.pidbox              fanout, not durable
//	queue    <nodename>.celery.pidbox   a worker's control queue: not durable, auto-delete,
//	                                    x-expires 10000, x-message-ttl 300000; bound with ""
//	exchange reply.celery.pidbox        direct, not durable
//	queue    <oid>.reply.celery.pidbox  a client's replies: not durable, auto-delete,
//	                                    x-expires 10000, x-message-ttl 300000; bound with <oid>
//
// Integer arguments are 32-bit, as py-amqp writes them. An exchange or queue
// that already exists with other settings is used as it is, with a warning.
//
// Events are published to celeryev with routing key = the event type with
// '-' replaced by '.' ("worker.heartbeat", "task.multi" for a list),
// delivery_mode 1, headers {"hostname": nodename}, JSON. Control requests
// are published to celery.pidbox with routing key "", headers {"clock",
// "expires"} and delivery_mode 2, as kombu does; replies to the request's
// reply_to exchange (declared direct, not durable) and routing key, with
// headers {"ticket", "clock"} and delivery_mode 1. Header tables are typed
// as for tasks (see Publishing). Received messages are handed over as they
// came (a "task.multi" body is a JSON list; the consumer splits it), with
// header integers as int64.
//
// This traffic uses two connections of its own, opened on first use: one
// publishes on a channel without publisher confirms (events are transient;
// a lost one is not resent), one carries the consumers, each on its own
// channel, consumed with no-ack as Celery does. A channel error there (406,
// 404) closes only that channel, which is reopened; it never touches task
// publishing or consumption. SubscribeEvents, ConsumeControl and
// ConsumeReplies return once their queue is bound; when the connection is
// lost they reconnect with backoff (100 ms doubling to 2 s) and their
// channel stays open until ctx ends or the broker is closed. While the
// broker is unreachable, PublishEvent fails at once between connection
// attempts (100 ms doubling to 5 s apart) instead of waiting, and all fanout
// publishes fail at once while RabbitMQ blocks publishers (a resource
// alarm), so the event sender never stalls. A subscriber more than
// [EventBuffer] events behind loses events (counted by
// [Broker.DroppedEvents]) rather than letting them pile up in memory.
package amqp
