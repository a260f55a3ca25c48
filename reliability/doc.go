// Package reliability is taskgen's reliability and security suite: it proves
// the delivery contract (docs/RELIABILITY.md, DESIGN.md §Delivery contract)
// under faults on Redis and RabbitMQ — SIGKILLed workers, broker crashes and
// restarts, network stalls and cuts, poison messages, panics and retry
// storms, graceful shutdown, and (TestHA) failovers of a 3-node RabbitMQ
// cluster with quorum queues and of Redis Sentinel — and checks TLS, credential redaction and the
// monitor's authentication.
//
// The tests carry the build tag "reliability", so `go test ./...` does not
// run them; `make reliability` does:
//
//	scripts/testenv.sh run -- go test -tags reliability -count=1 -timeout 15m ./reliability/
//
// Helper programs live under reliability/internal (relworker, the worker
// process that tests SIGKILL; faultproxy, the TCP fault proxy) and the tasks
// under reliability/tasks.
package reliability
