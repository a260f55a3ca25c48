// Package monitor is taskgen's web monitor, the engine of cmd/taskmon: the
// counterpart of Celery's Flower. It consumes the Celery events of one broker
// (any transport implementing driver.EventTransport) and serves a web UI,
// Flower's REST API and Prometheus metrics. Go workers send events by
// default; Python workers need `celery worker -E`.
//
// # In process
//
// A program that already has an [runtime.App] starts a monitor beside its
// workers with [Start]:
//
//	url, stop, err := monitor.Start(ctx, app, "127.0.0.1:0")
//	if err != nil { … }
//	defer stop()
//	fmt.Println("monitor on", url)
//
// [New] and [Config] give the other knobs (task bound, queues polled, basic
// auth, clock); [Serve] blocks until its context ends, as cmd/taskmon does.
//
// # State
//
// [State] is bounded: it keeps the last MaxTasks tasks (default 10 000; the
// oldest seen is evicted first), every worker, 10 minutes of per-second
// succeeded/failed/retried counts and of queue depths, and monotonic counters
// for the metrics. It follows celery.events.state where Flower depends on it:
//
//   - A worker is online while it has heartbeats and now is before its last
//     heartbeat (local receive time) plus 2 × freq; worker-offline makes it
//     offline at once; task events count as heartbeats; freq is 60 s until a
//     worker event gives it.
//   - An event whose state logically happened before the task's current one
//     (task-started after task-succeeded) only fills in fields; RETRY is
//     outside that order.
//   - Event timestamps are adjusted as Celery's receiver does:
//     timestamp − (utcoffset − local utcoffset) × 3600, utcoffset in hours
//     positive west of UTC.
//   - A message is one event object or a list (task.multi), possibly empty.
//
// # Workflows
//
// Celery's task events carry root_id and parent_id, so the task page links
// a step's parent, root and children, and lists the steps of its workflow
// (the kept tasks sharing its root_id) in the order they were received, a
// group's members by their index, with their states; GET
// /api/task/workflow/<id>[?limit=N] answers {uuid, root_id, total, steps}.
// Celery's events say nothing of groups: Go workers add "group" and
// "group_index" to a group member's task-received and "chord", the chord
// body's id, to a chord header member's. From those the task page links a
// member's group and chord body and a body's group, and /group/<id> lists
// the members and the chord body; GET /api/group/info/<id>[?limit=N]
// answers {id, root_id, parent_id, total, members, chord, chord_body}.
// /api/task/info and /api/tasks add group, group_index and chord to
// Flower's task fields, and fill children.
//
// # Periodic-task schedules
//
// The schedulers of package runtime/beat keep their state in a
// driver.ScheduleStore: the result backend when it is one (Redis, memory),
// else the broker (Redis, memory). The monitor reads the same store
// ([Config.BeatStore] overrides it) for each of [Config.BeatKeys] (default
// "default"), each PollInterval: the leader's schedule document
// (beat.ReadSchedule; the leader stores it every Lease/3 for three lease
// times), the lease (holder, fencing token, time left) and each entry's
// latest claimed and sent slots. /beat shows, per key, the leader, token,
// lease, the document's time and counters (elections, slots sent, missed,
// send errors) and the entries (schedule, signature, catch-up policy, next
// run, last sent, sent, missed). When no scheduler holds the lease the
// page says so and shows the last sent slots from the store (and the last
// leader's entries while its document lasts). GET /api/beat answers
// {key: {leader, token, lease_left_seconds, lease_seconds, updated, stale,
// entries_total, entries, stats, polled, error}}; /metrics adds the
// leaders' taskgen_beat_* metrics (see Metrics). With
// RabbitMQ and no Redis result backend there is no store: /beat says to
// give taskmon the schedulers' -backend, and /api/beat answers 404.
//
// # Metrics
//
// GET /metrics serves [Monitor.Registry] with prometheus/client_golang's
// promhttp: OpenMetrics (with exemplars) to scrapers that ask for it,
// Prometheus' text format otherwise. [State] is a prometheus.Collector:
//
//	taskgen_tasks_total{name,state}             counter: task events by resulting state
//	taskgen_task_runtime_seconds{name}          histogram: runtime of succeeded tasks
//	taskgen_task_queue_wait_seconds{name}       histogram: task-received to task-started (no ETA)
//	taskgen_queue_depth{queue}                  gauge: ready messages at the last poll
//	taskgen_queue_unacked{queue}                gauge: where the transport can say
//	taskgen_workers_online                      gauge: workers alive by Flower's rule
//	taskgen_worker_online{worker}               gauge: 1 or 0 per known worker
//	taskgen_monitor_events_total                counter: events consumed
//	taskgen_monitor_bad_events_total            counter: malformed events
//	taskgen_monitor_tasks                       gauge: tasks kept in memory
//	taskgen_broker_node_current{node,role}      gauge: 1 for the broker node in use
//	                                            (BrokerNodes), 0 for the others
//
// and Flower's, same names, labels and meaning (flower/events.py):
//
//	flower_events_total{worker,type,task}                        counter: task events
//	flower_task_runtime_seconds{worker,task}                     histogram: task-succeeded's runtime
//	flower_task_prefetch_time_seconds{worker,task}               gauge: the latest received-to-started wait, 0 once the task ended
//	flower_worker_prefetched_tasks{worker,task}                  gauge: received (no ETA), not started yet
//	flower_worker_online{worker}                                 gauge: 1 or 0, as taskgen_worker_online
//	flower_worker_number_of_currently_executing_tasks{worker}    gauge: the active field of worker events
//
// The three histograms of runtime and wait keep per bucket the latest
// observation of a task whose events gave a trace context (a trace_id
// field, with an optional span_id, or a W3C traceparent field) as an
// exemplar {trace_id, span_id}. The watched schedules add, from each key's
// latest poll, labelled key="<schedule key>":
//
//	taskgen_beat_leader{key}                       gauge: 1 while the document's scheduler holds the lease
//	taskgen_beat_elections_total{key}              counter: times that scheduler took the lease
//	taskgen_beat_slots_sent_total{key,entry}       counter: slots it published
//	taskgen_beat_slots_missed_total{key,entry}     counter: slots its catch-up policies did not send
//	taskgen_beat_send_errors_total{key}            counter: failed publishes (each is retried)
//	taskgen_beat_fire_lateness_seconds{key}        histogram: publish time minus slot time (1 ms … 10 s)
//
// The beat counters are the leader's since it started: they restart from
// zero when another scheduler takes over. A key no scheduler leads has only
// taskgen_beat_leader 0 (and the last leader's counters while its document
// lasts, three lease times). The Go runtime's and the process's collectors
// complete the registry. docs/grafana-taskgen.json is a Grafana dashboard
// over these metrics.
//
// # HTTP
//
// Pages: / (workers and live graphs over Server-Sent Events, drawn by the
// embedded uPlot), /tasks (search, filters, sorting, pages), /task/<id>,
// /group/<id>, /broker, /beat. Flower's API: GET /api/workers, /api/tasks,
// /api/task/info/<id>, /api/task/result/<id>, /api/queues/length; POST
// /api/task/async-apply/<name>, /api/task/revoke/<id>. Also GET /metrics
// (see Metrics), /api/summary, /api/series,
// /api/events/stream, /api/task/workflow/<id>, /api/group/info/<id>,
// /api/beat, /api/broker (the broker's nodes, see BrokerNodes) and
// /healthcheck. Every route sits behind basic auth when
// configured; browsers' cross-site POSTs are refused; a loopback monitor
// without auth answers only loopback Host names. Broker passwords are never
// shown.
package monitor
