package driver

import "context"

// BrokerBinder is implemented by result backends that have no server of
// their own and ride on the app's broker connection, such as rpc:// (Celery's
// RPC backend, results sent back as AMQP messages). The app calls BindBroker
// once, right after opening both; an error (a broker of the wrong kind)
// fails the app's construction.
type BrokerBinder interface {
	BindBroker(b Broker) error
}

// ReplyBackend is implemented by result backends that send each result to
// the process that sent the task instead of storing it (rpc://). The
// producer puts ReplyTo's queue in the reply_to property of every task
// message it sends; the worker finds it, with the correlation id, in the
// context given to Store (see [ReplyFromContext]).
type ReplyBackend interface {
	// ReplyTo returns the queue this process receives results on,
	// declaring it first if needed, so that a result sent before the
	// caller waits is not lost.
	ReplyTo(ctx context.Context) (string, error)
}

// Reply is where the result of a task goes with a [ReplyBackend]: the
// reply_to and correlation_id properties of its message.
type Reply struct {
	To            string
	CorrelationID string
}

type replyKey struct{}

// WithReply returns ctx carrying r; the worker wraps the context of each
// task whose message names a reply_to, so that the backend's Store knows
// where the documents of that task go.
func WithReply(ctx context.Context, r Reply) context.Context {
	return context.WithValue(ctx, replyKey{}, r)
}

// ReplyFromContext returns the Reply of [WithReply], if any.
func ReplyFromContext(ctx context.Context) (Reply, bool) {
	r, ok := ctx.Value(replyKey{}).(Reply)
	return r, ok && r.To != ""
}
