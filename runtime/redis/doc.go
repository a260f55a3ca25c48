// Package redis is taskgen's Redis transport and result backend, compatible
// with Celery 5 and kombu: Go and Python producers, workers and result
// readers can share one Redis. Import it for its side effect:
//
//	import _ "github.com/taskgen/taskgen/runtime/redis"
//
//	app, err := runtime.New(runtime.Config{
//		Broker:  "redis://127.0.0.1:6379/0?visibility_timeout=30m",
//		Backend: "redis://127.0.0.1:6379/1",
//	})
//
// It needs Redis 6.2 or later (RPOP with a count, BLMOVE, LMOVE, cjson and
// cmsgpack in Lua); the tests run against Redis 7.0. On an older server
// consumers log "unknown command" errors and retry.
//
// # URLs
//
// Celery's forms are accepted for both the broker and the backend:
//
//	redis://[[user]:password@]host[:port][/db][?option=value&…]
//	rediss://…   TLS; e.g. rediss://:secret@host:6380/0?ssl_cert_reqs=required
//	sentinel://[[user]:password@]host1[:port][/db];sentinel://host2[:port];…?master_name=NAME[&option=value&…]
//
// The host defaults to localhost, the port to 6379 (26379 for a sentinel)
// and the database to 0. Passwords never appear in logs or errors
// (runtime.Redact). A list of URLs separated by ';' is only valid with
// sentinel:// (see Sentinel); a redis:// or rediss:// URL names one server,
// and a list of them is an error.
//
// # Sentinel
//
// A sentinel:// list names the Redis Sentinels watching a master and its
// replicas, in kombu's form (Celery's broker_url and result_backend for
// Sentinel), for the broker and the backend alike:
//
//	sentinel://:secret@10.0.0.1:26379/0;sentinel://10.0.0.2:26379;sentinel://10.0.0.3:26379?master_name=mymaster
//
// Clients ask a sentinel for the master's address (go-redis's failover
// client), listen for +switch-master and reconnect to the new master after
// a failover. As in kombu and Celery, the master's user, password and
// database come from the first URL; a later URL may repeat them but not
// differ (kombu would silently ignore it). Options, kombu's
// broker_transport_options, may stand on the query of any URL of the list
// (usually the last or the first) and apply to all; one given twice with
// different values is an error. Besides every option of redis:// URLs:
//
//	master_name             required: the name the sentinels monitor the master
//	                        under (kombu's master_name transport option).
//	sentinel_password, sentinel_username
//	                        credentials of the sentinels themselves (Sentinel's
//	                        requirepass; kombu's sentinel_kwargs={"password": …}).
//	                        Its value is redacted in this package's logs and
//	                        errors.
//	ssl                     true: TLS to the sentinels and the data nodes (what
//	                        Celery's broker_use_ssl turns on); any ssl_* option
//	                        also turns it on. Each node is verified against the
//	                        address it is dialled at (go-redis has one TLS
//	                        configuration for sentinels and data nodes).
//
// Everything else works through it unchanged: the Lua scripts, consumers,
// the pub/sub of events and remote control (PUBLISH is replicated, and
// subscriptions re-subscribe on the new master), delayed messages and
// runtime/beat's state. During a failover (about 2 s after the master dies
// with down-after-milliseconds 1000, the tests' setting; Sentinel's default
// is 30 s) commands fail; Publish retries until publish_timeout, consumers
// back off and resume. Replication is asynchronous: a write the master
// acknowledged but had not sent to the promoted replica is lost unless
// min_replicas asks for acknowledgement (see Replica acknowledgement).
// min_other_sentinels is not supported.
//
// # Replica acknowledgement
//
// min_replicas=N (any scheme) makes each publish — one pipeline of however
// many concurrent Publish calls — end with WAIT N min_replicas_timeout on
// the same connection, so that Publish returns only once N replicas hold
// the messages: a confirmed Delay then survives the master's death. Result
// stores, group documents and chord counters wait the same way. When fewer
// than N replicas acknowledged in time, Publish (or Store) returns an error
// wrapping ErrNotReplicated: the write was made on the master and may or
// may not survive, so a caller that retries may duplicate it (at least
// once). A connection lost before WAIT answered is retried like any other
// publish failure. min_replicas_timeout defaults to 5s (never more than
// publish_timeout): long enough to ride out the second or so after a
// failover when the promoted master's remaining replicas reattach, short
// enough to report replicas that are gone. The connection read timeout is
// raised to min_replicas_timeout + 1s when it is shorter. Acknowledgements,
// fetches and restores do not wait: if the master dies before replicating
// one, the message is still in its queue or the unacked hash of the new
// master and runs again (a duplicate, never a loss). Redis's
// min-replicas-to-write setting is complementary (it refuses writes while
// replicas are missing) but acknowledges nothing.
//
// # Options
//
// Options ride on the query, like Celery's transport options. Durations are
// Go durations ("30s", "1h") or a number of seconds ("30", "0.5").
//
//	visibility_timeout      how long a delivered, un-acknowledged message stays
//	                        reserved before any consumer (Go or Python) puts it
//	                        back in its queue; default 1h (kombu's default).
//	                        Delays never cause that (see Delays).
//	visibility_heartbeat    true (default): a live Go consumer refreshes the
//	                        unacked_index score of its un-settled deliveries every
//	                        visibility_timeout/3, so a task running longer than
//	                        the timeout on a live worker is not run twice, while a
//	                        dead worker's tasks come back after the timeout.
//	                        false: kombu's behaviour (long tasks run twice).
//	global_keyprefix        prefix of every key (kombu's global_keyprefix); on a
//	                        backend URL, of the result keys and channels.
//	fetch_batch             most messages fetched per round trip (default 64;
//	                        prefetch_batch is an alias); never more than the
//	                        consumer's free prefetch slots.
//	dead_letter_queue       list receiving dead letters; default
//	                        "<queue>.dead_letter" per consumed queue.
//	restore_interval        how often consumers restore messages whose visibility
//	                        timeout expired; default min(visibility_timeout/2, 10s).
//	unacked_restore_limit   most messages restored per pass (default 1000).
//	delayed_key             sorted set of deferred messages (default
//	                        "taskgen.delayed").
//	delay_poll_interval     how often consumers move due deferred messages to
//	                        their queues (default 250ms).
//	poll_timeout            how long an idle consumer blocks in BLMOVE at a time
//	                        (default 1s, like kombu's BRPOP); bounds how late an
//	                        idle consumer sees the first message of priority > 2
//	                        on a queue. Shutdown does not wait for it (CLIENT
//	                        UNBLOCK).
//	publish_timeout         bound on Publish during an outage (default the app's
//	                        PublishTimeout, 10s); the caller's ctx also bounds it.
//	result_key_prefix       result key prefix (default "celery-task-meta-").
//	socket_timeout          read and write timeout of commands.
//	socket_connect_timeout  dial timeout.
//	ssl_cert_reqs           rediss (or sentinel) only: required (default),
//	                        optional or none (CERT_* spellings accepted; none
//	                        skips verification).
//	ssl_ca_certs, ssl_certfile, ssl_keyfile
//	                        rediss (or sentinel) only: PEM files of the CA and
//	                        client key pair.
//	min_replicas            replicas that must acknowledge each publish and
//	                        result store (Redis WAIT); default 0 (see Replica
//	                        acknowledgement).
//	min_replicas_timeout    how long that WAIT may take (default 5s).
//
// Any other option is handed to go-redis (redis.ParseURL): dial_timeout,
// read_timeout, write_timeout, pool_size, max_retries, client_name,
// skip_verify, …; an unknown name is an error.
//
// # Layout (kombu's)
//
// A queue q is a list per priority step: "q" for priorities 0–2, then
// "q\x06\x163", "q\x06\x166", "q\x06\x169". On Redis 0 is the HIGHEST
// priority (kombu's order, the opposite of RabbitMQ). Producers LPUSH
// kombu's JSON envelope (base64 body, delivery_tag, delivery_info) and add
// "q\x06\x16\x06\x16q" to the set "_kombu.binding.q" once per queue, as
// Python does when it declares the queue. Concurrent Publish calls are
// combined: one caller writes every pending message in one pipeline (one
// LPUSH with several values per list) while the others wait for Redis's
// reply to theirs. Up to four such pipelines are in flight at once, on
// pooled connections of their own; a further one starts only once as many
// messages are pending as the last pipeline carried, so the batches stay
// large while round trips overlap.
//
// Consumers pop with a Lua script that takes up to fetch_batch messages in
// priority order (rotating among queues) and, in the same atomic step,
// records each in kombu's ack emulation: ZADD unacked_index <now> <tag> and
// HSET unacked <tag> [envelope, "", queue] (the ZADD also names a keeper
// member scored +inf that keeps the sorted set a skiplist: see
// docs/celery-interop.md). Inside the script it pops in
// chunks whose reply stays under 512 KiB, so large envelopes cost Redis time
// linear in their size (Redis grows one large reply to a script by 1 MiB at a
// time). An idle consumer does not BRPOP
// as kombu does: a message BRPOP pops lives only in the reply, and Redis
// dying after writing the pop to its AOF but before the reply arrives loses
// it. Instead, one goroutine per queue blocks in BLMOVE from the queue's
// default-priority list into an inbox list of the consumer
// ("_taskgen.inbox.<consumer>.<list>", registered with the time and source
// list in the hash "_taskgen.inboxes"); it hands the message to the worker
// at once and meanwhile records it from the inbox with the fetch script (an
// Ack, Requeue or Reject that comes first is written after the record, so
// kombu's bookkeeping never keeps a stale entry). The lists of priorities
// above 2 (Redis lists 3, 6, 9) get a blocker of their own once a message
// came from them; until then an idle consumer fetches them when a poll
// ends, within poll_timeout. A consumer returns its
// inbox to the queue when it stops; RestoreVisible returns the inbox of a
// consumer whose registration was not refreshed for max(10×poll_timeout,
// 30s). Acknowledgements are pipelined ZREM/HDEL in
// batches, written right after Ack returns. Every consumer, under the
// unacked_mutex lock (SET NX PX 10000: kombu's 300 s would stop every
// restore for five minutes after a worker is killed holding it; entries are
// restored by atomic scripts, so the lock only saves duplicate work),
// restores entries older than the
// visibility timeout to the front of their queue marked redelivered, in
// kombu's format, so a Python worker restores a dead Go worker's tasks and
// the reverse.
//
// # Dead letters
//
// A delivery the worker rejects (undecodable envelope, unregistered task,
// undecodable arguments) is removed from the ack bookkeeping and LPUSHed,
// atomically, to the dead-letter list as a JSON object
//
//	{"reason": "...", "queue": "q", "time": "...", "hostname": "...", "message": "<original bytes>"}
//
// ("message_base64" instead of "message" when the bytes are not UTF-8).
// Broker.DeadLetters reads them; LLEN gives the count.
//
// # Delays
//
// Broker.Defer (used by workers for countdowns, ETAs and retry backoffs
// beyond the worker's DelayHorizon) parks the envelope in the sorted set
// delayed_key scored by its due time; consumers of any queue move due
// messages to their lists with a Lua script, waking when the earliest one
// is due (and at least every delay_poll_interval). A parked message is in no list
// and not in the unacked hash, so the visibility timeout never makes it run
// twice. At least one Go consumer must be running for parked messages to
// move.
//
// # Results
//
// The backend stores Celery's documents with SETEX celery-task-meta-<id>
// (SET when the app keeps results forever) plus PUBLISH on the same name,
// in one MULTI/EXEC. Wait subscribes first, then reads the key, then waits
// for published documents: no polling. All waiters share one pub/sub
// connection and read the key again after it reconnects.
//
// # Events and remote control
//
// The Broker implements runtime.EventTransport (Celery events) and
// runtime.ControlTransport (Celery's pidbox remote control) the way kombu
// 5's Redis transport does (WIRE §3.5, §6, §7), so that Flower, `celery
// events`, `celery inspect`/`celery control` and Python workers interoperate
// with Go workers and Go clients:
//
//   - Fanout exchanges are Redis pub/sub. A message to exchange x with
//     routing key k is PUBLISHed on "/<db>.x/<k>" ("/<db>.x" when k is
//     empty), where db is the URL's database number (pub/sub is not per
//     database), prefixed by global_keyprefix. The payload is the JSON
//     envelope of task messages: base64 body, content-type,
//     content-encoding, headers, properties {delivery_mode, delivery_info
//     {exchange, routing_key}, priority, body_encoding, delivery_tag}.
//   - Events go to the "celeryev" exchange, which Celery forces to fanout on
//     Redis: channel "/<db>.celeryev/<routing key>" (worker.heartbeat,
//     task.multi, …), delivery_mode 1. SubscribeEvents PSUBSCRIBEs
//     "/<db>.celeryev/*" on a connection of its own and, like Celery's
//     EventReceiver, adds "#\x06\x16\x06\x16celeryev.<uuid4>" to
//     _kombu.binding.celeryev while it runs. Events are transient:
//     PublishEvent gives up after a second (and at once for a short while
//     after a connection failure), and a subscriber more than EventBuffer
//     events behind loses events (Broker.DroppedEvents).
//   - Control requests are PUBLISHed on "/<db>.celery.pidbox"
//     (delivery_mode 2); ConsumeControl PSUBSCRIBEs that channel on a
//     connection of its own and, like a Python worker, adds
//     "\x06\x16\x06\x16<node>.celery.pidbox" to _kombu.binding.celery.pidbox
//     while it runs.
//   - Replies are not pub/sub: reply.celery.pidbox is a direct exchange.
//     Reply reads _kombu.binding.reply.celery.pidbox and LPUSHes the
//     envelope (delivery_mode 1, delivery_info {"exchange":
//     "reply.celery.pidbox", "routing_key": <oid>}) onto every list bound
//     with the reply's routing key, normally "<oid>.reply.celery.pidbox", in
//     one Lua call; a reply nobody is bound for is dropped, as kombu drops
//     it. Reply lists expire 300 s after their last reply (Celery's
//     control_queue_ttl), so a client that died leaves nothing behind.
//     ConsumeReplies adds "<oid>\x06\x16\x06\x16<oid>.reply.celery.pidbox"
//     to that set before it returns, BRPOPs the list, and removes the member
//     and the list when its ctx ends, as kombu's Mailbox does.
//
// Subscriptions return once Redis has confirmed the PSUBSCRIBE (or the
// binding is written), so nothing published after the call returns is
// missed. They survive connection loss and Redis restarts: the connection is
// checked with PING when idle, and re-subscribed (binding re-added) with
// backoff after a failure; messages published while it was down are lost,
// as with kombu. Their channels are closed when ctx ends or the broker is
// closed.
//
// # Connection loss
//
// Commands reconnect by themselves. Consumers log the failure, back off
// (50 ms doubling to 5 s) and resume when Redis returns; acknowledgements
// that could not be written are retried. Publish retries connection
// failures (a restarted server leaves dead pooled connections) and returns an
// error after publish_timeout or when the caller's ctx ends, whichever comes
// first; it never hangs. A retried LPUSH whose first reply was lost may
// duplicate a message (at least once).
//
// Keys touched by the Lua scripts are not all declared, so Redis Cluster is
// not supported (neither is it by kombu); Sentinel is (see Sentinel).
package redis
