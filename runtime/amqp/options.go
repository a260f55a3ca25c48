package amqp

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Defaults of the URL options.
const (
	// DefaultHeartbeat is the heartbeat option's default.
	DefaultHeartbeat = 10 * time.Second
	// DefaultConnectTimeout is the connect_timeout option's default.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultPublishChannels is the publish_channels option's default.
	DefaultPublishChannels = 4
	// DefaultConsumeConnections is the consume_connections option's default.
	DefaultConsumeConnections = 1
	// DefaultDeadLetterExchange is the dead_letter_exchange option's default.
	DefaultDeadLetterExchange = "taskgen.dlx"
	// DefaultDelayPrefix is the delay_prefix option's default.
	DefaultDelayPrefix = "taskgen.delay"
	// DeadLetterQueueSuffix is appended to a queue's name to name its
	// dead-letter queue.
	DeadLetterQueueSuffix = ".dead_letter"
	// MaxDelayLevel is the largest wait queue: 2^22 s, about 48.5 days, so
	// that x-message-ttl stays below 2^32 ms (Erlang timer limit). Longer
	// delays take several hops of that size.
	MaxDelayLevel = 22
	// QueueTypeClassic and QueueTypeQuorum are the values of queue_type.
	QueueTypeClassic = "classic"
	// QueueTypeQuorum declares task queues as quorum queues.
	QueueTypeQuorum = "quorum"
)

// Options are the transport options read from the URL query (see the package
// documentation).
type Options struct {
	// Heartbeat is the AMQP heartbeat interval (heartbeat).
	Heartbeat time.Duration
	// ConnectTimeout bounds one connection attempt (connect_timeout).
	ConnectTimeout time.Duration
	// MaxPriority is x-max-priority of task queues; 0 declares none (max_priority).
	MaxPriority uint8
	// PublishChannels is the number of shared confirm channels (publish_channels).
	PublishChannels int
	// ConsumeConnections is the number of connections each Consume call
	// receives on, sharing its prefetch (consume_connections).
	ConsumeConnections int
	// ConfirmTimeout bounds the wait for one publisher confirm; 0 waits as
	// long as the caller's ctx allows (confirm_timeout).
	ConfirmTimeout time.Duration
	// DeadLetterExchange names the dead-letter exchange (dead_letter_exchange).
	DeadLetterExchange string
	// DelayPrefix prefixes the names of delay wait queues (delay_prefix).
	DelayPrefix string
	// QueueType is the type of task queues: QueueTypeClassic or
	// QueueTypeQuorum (queue_type).
	QueueType string
	// DeliveryLimit is x-delivery-limit of quorum task queues, 0 for none
	// (delivery_limit).
	DeliveryLimit int
	// TLS is the TLS configuration of amqps:// URLs, nil for amqp://.
	TLS *tls.Config
}

var knownOptions = []string{"heartbeat", "connect_timeout", "confirm_timeout", "max_priority", "publish_channels",
	"consume_connections", "dead_letter_exchange", "delay_prefix", "queue_type", "delivery_limit", "cacertfile", "certfile", "keyfile", "server_name_indication"}

func parseDuration(name, s string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil && n >= 0 {
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("option %s=%q: want seconds or a Go duration", name, s)
	}
	return d, nil
}

// ParseOptions reads the transport options of u's query.
func ParseOptions(u *url.URL) (Options, error) {
	o := Options{Heartbeat: DefaultHeartbeat, ConnectTimeout: DefaultConnectTimeout, PublishChannels: DefaultPublishChannels,
		ConsumeConnections: DefaultConsumeConnections,
		DeadLetterExchange: DefaultDeadLetterExchange, DelayPrefix: DefaultDelayPrefix, QueueType: QueueTypeClassic}
	q := u.Query()
	for k := range q {
		known := false
		for _, n := range knownOptions {
			known = known || n == k
		}
		if !known {
			return o, fmt.Errorf("unknown option %q (known: %s)", k, strings.Join(knownOptions, ", "))
		}
	}
	var err error
	if s := q.Get("heartbeat"); s != "" {
		if o.Heartbeat, err = parseDuration("heartbeat", s); err != nil {
			return o, err
		}
	}
	if s := q.Get("connect_timeout"); s != "" {
		if o.ConnectTimeout, err = parseDuration("connect_timeout", s); err != nil {
			return o, err
		}
	}
	if s := q.Get("confirm_timeout"); s != "" {
		if o.ConfirmTimeout, err = parseDuration("confirm_timeout", s); err != nil {
			return o, err
		}
	}
	if s := q.Get("max_priority"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 255 {
			return o, fmt.Errorf("option max_priority=%q: want 0-255", s)
		}
		o.MaxPriority = uint8(n)
	}
	if s := q.Get("publish_channels"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 256 {
			return o, fmt.Errorf("option publish_channels=%q: want 1-256", s)
		}
		o.PublishChannels = n
	}
	if s := q.Get("consume_connections"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 16 {
			return o, fmt.Errorf("option consume_connections=%q: want 1-16", s)
		}
		o.ConsumeConnections = n
	}
	if s := q.Get("dead_letter_exchange"); s != "" {
		o.DeadLetterExchange = s
	}
	if s := q.Get("delay_prefix"); s != "" {
		o.DelayPrefix = s
	}
	switch s := q.Get("queue_type"); s {
	case "", QueueTypeClassic:
	case QueueTypeQuorum:
		o.QueueType = s
		if o.MaxPriority > 0 {
			return o, fmt.Errorf("option max_priority: quorum queues have no x-max-priority (RabbitMQ refuses it); drop max_priority or queue_type=quorum")
		}
	default:
		return o, fmt.Errorf("option queue_type=%q: want classic or quorum", s)
	}
	if s := q.Get("delivery_limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > math.MaxInt32 {
			return o, fmt.Errorf("option delivery_limit=%q: want a count of deliveries (0: none)", s)
		}
		if n > 0 && o.QueueType != QueueTypeQuorum {
			return o, fmt.Errorf("option delivery_limit needs queue_type=quorum (classic queues count no deliveries)")
		}
		o.DeliveryLimit = n
	}
	if u.Scheme == "amqps" {
		tc := &tls.Config{ServerName: u.Hostname()}
		if s := q.Get("server_name_indication"); s != "" {
			tc.ServerName = s
		}
		if s := q.Get("cacertfile"); s != "" {
			pem, err := os.ReadFile(s)
			if err != nil {
				return o, fmt.Errorf("option cacertfile: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return o, fmt.Errorf("option cacertfile: no PEM certificate in %s", s)
			}
		}
		if cf, kf := q.Get("certfile"), q.Get("keyfile"); cf != "" || kf != "" {
			cert, err := tls.LoadX509KeyPair(cf, kf)
			if err != nil {
				return o, fmt.Errorf("options certfile/keyfile: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		o.TLS = tc
	}
	return o, nil
}
