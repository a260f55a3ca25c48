// Command taskmon is the taskgen monitor, the counterpart of Celery's Flower:
// it consumes the Celery events of one broker and serves a web UI, Flower's
// REST API and Prometheus metrics. It sees Go workers (which send events by
// default) and Python workers started with `celery worker -E`.
//
// Usage:
//
//	taskmon -broker URL [-backend URL] [-addr 127.0.0.1:5555] [-max-tasks 10000]
//	        [-queues celery,emails] [-basic-auth user:pass] [-poll 2s] [-loglevel info]
//	        [-beat-key default]
//
// For example:
//
//	taskmon -broker redis://127.0.0.1:6379/0 -backend redis://127.0.0.1:6379/1
//	taskmon -broker amqp://guest:guest@127.0.0.1:5672// -addr 127.0.0.1:8080
//
// # Flags
//
//   - -broker: the broker URL, as given to workers (memory:// only makes sense
//     in process; see monitor.Start). Required.
//   - -backend: the result backend URL; /api/task/result reads results there.
//     Without it, results come from task-succeeded events (a repr string).
//   - -addr: where to listen (default 127.0.0.1:5555, loopback only). Serving
//     another interface without -basic-auth logs a warning.
//   - -max-tasks: how many tasks to keep in memory (default 10000); the oldest
//     seen is dropped first.
//   - -queues: comma-separated queues whose depth is polled; default "celery"
//     plus every queue named in task events.
//   - -basic-auth user:pass, or the environment variable TASKMON_BASIC_AUTH:
//     HTTP basic auth on every route (the flag wins). Prefer the variable: flags
//     show in process lists.
//   - -poll: the interval of queue-depth and beat-schedule polls (default 2s).
//   - -beat-key: the key of a periodic-task schedule (runtime/beat's
//     Scheduler.Key) to show on /beat; repeat it or separate keys with commas
//     (default "default"). The schedules are read from the -backend when it
//     is Redis, else from a Redis broker, as the schedulers keep them; on
//     RabbitMQ give -backend the schedulers' Redis result backend.
//   - -loglevel: debug, info, warn or error (default info).
//
// Passwords in broker and backend URLs are never displayed or logged.
//
// # Pages
//
//   - / (Dashboard): workers with their status (online while a heartbeat came
//     within 2 × freq, Flower's rule), active, processed, succeeded, failed,
//     retried and load; live graphs of tasks per second and queue depths,
//     updated every second over Server-Sent Events.
//   - /tasks: search (name, id, args, kwargs, result; "name:", "args:",
//     "result:", "state:", "worker:" prefixes), filters by state, worker, name
//     and received time, sorting and pagination.
//   - /task/<id>: every field, the state timeline, result, exception and
//     traceback.
//   - /broker: queues with ready (and unacked where the transport says) counts.
//   - /beat: each periodic-task schedule: the leading scheduler, its fencing
//     token and lease time left, its counters (elections, slots sent, missed,
//     send errors) and the entries (schedule, signature, catch-up policy, next
//     run, last sent, sent, missed); with no leader, the last sent slots.
//
// # API
//
// Flower's: GET /api/workers, /api/tasks (limit, offset, sort_by, workername,
// taskname, state, received_start, received_end, search), /api/task/info/<id>,
// /api/task/result/<id>, /api/queues/length; POST /api/task/async-apply/<name>
// (body {"args": [...], "kwargs": {...}, "countdown": s, "queue": q}) and
// /api/task/revoke/<id>?terminate=true. taskmon's own: GET /api/summary,
// /api/series, /api/events/stream (SSE), /api/beat (the schedules),
// /healthcheck. Prometheus: GET /metrics (tasks, runtime and queue-wait
// histograms with trace-id exemplars, queues, workers, Flower's flower_*
// families, and the schedules' leaders: taskgen_beat_*), OpenMetrics to
// scrapers that ask for it; docs/grafana-taskgen.json is a dashboard.
//
// Browsers' cross-site POST requests are refused. When taskmon listens on
// loopback without basic auth it also refuses Host headers that are not
// loopback names (DNS rebinding).
//
// Exit status: 0 after SIGINT or SIGTERM, 1 when the broker cannot be opened
// or the address cannot be bound, 2 for bad flags.
package main
