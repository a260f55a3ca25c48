package redis

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/taskgen/taskgen/runtime/driver"
)

// Options are the transport options of a redis:// or rediss:// URL, parsed
// from its query (see the package documentation for the names).
type Options struct {
	// VisibilityTimeout is how long a delivered, un-acknowledged message
	// stays reserved before any consumer (Go or Python) restores it to its
	// queue. Default 1 h (kombu's default).
	VisibilityTimeout time.Duration
	// GlobalKeyPrefix is prepended to every key and channel (kombu's
	// global_keyprefix).
	GlobalKeyPrefix string
	// FetchBatch is the most messages one fetch takes from Redis (default 64;
	// never more than the consumer's free prefetch slots).
	FetchBatch int
	// DeadLetterQueue is the list receiving dead-lettered messages; empty
	// means "<queue>.dead_letter" for a message consumed from queue.
	DeadLetterQueue string
	// RestoreInterval is how often consumers look for messages whose
	// visibility timeout expired (default min(VisibilityTimeout/2, 10 s)).
	RestoreInterval time.Duration
	// RestoreLimit bounds the messages restored per pass (default 1000,
	// kombu's unacked_restore_limit).
	RestoreLimit int
	// DelayedKey is the sorted set of deferred messages (default
	// "taskgen.delayed").
	DelayedKey string
	// DelayPollInterval is how often consumers move due deferred messages to
	// their queues (default 250 ms).
	DelayPollInterval time.Duration
	// PollTimeout is how long an idle consumer blocks in BLMOVE before it
	// looks for messages of priority > 2 on lists it does not block on yet
	// (default 1 s, like
	// kombu's BRPOP).
	PollTimeout time.Duration
	// ConnectTimeout bounds Publish during an outage (default
	// TransportOptions.ConnectTimeout, else 10 s).
	ConnectTimeout time.Duration
	// Heartbeat refreshes the unacked_index score of a live consumer's
	// un-settled deliveries every VisibilityTimeout/3, so that only a dead
	// consumer's messages are restored (default true; false is kombu's
	// behaviour, where tasks running longer than the timeout run twice).
	Heartbeat bool
	// ResultKeyPrefix is the prefix of result keys and channels (default
	// "celery-task-meta-"); used by the result backend.
	ResultKeyPrefix string

	redis *goredis.Options
	log   *slog.Logger
	host  string
}

// parseDuration reads a Go duration or a number of seconds (Celery habit).
func parseDuration(name, s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 {
			return 0, fmt.Errorf("option %s: negative duration %q", name, s)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("option %s: %q is neither a Go duration nor a number of seconds", name, s)
	}
	return d, nil
}

// parseOptions splits u's query into taskgen's options and go-redis's own
// (dial_timeout, pool_size, …), and builds the client options.
func parseOptions(u *url.URL, topts driver.TransportOptions) (*Options, error) {
	redacted := driver.Redact(u.String())
	wrap := func(err error) error { return fmt.Errorf("redis URL %s: %w", redacted, err) }
	o := &Options{
		VisibilityTimeout: time.Hour,
		FetchBatch:        64,
		RestoreLimit:      1000,
		DelayedKey:        "taskgen.delayed",
		DelayPollInterval: 250 * time.Millisecond,
		PollTimeout:       time.Second,
		ConnectTimeout:    topts.ConnectTimeout,
		ResultKeyPrefix:   "celery-task-meta-",
		Heartbeat:         true,
		log:               topts.Logger,
		host:              topts.Hostname,
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	q := u.Query()
	rest := url.Values{}
	var tlsCertReqs, caFile, certFile, keyFile string
	var socketTimeout, connectTimeout time.Duration
	for name, vals := range q {
		v := vals[len(vals)-1]
		var err error
		switch name {
		case "visibility_timeout":
			o.VisibilityTimeout, err = parseDuration(name, v)
			if err == nil && o.VisibilityTimeout <= 0 {
				err = fmt.Errorf("option visibility_timeout must be positive")
			}
		case "global_keyprefix":
			o.GlobalKeyPrefix = v
		case "fetch_batch", "prefetch_batch":
			o.FetchBatch, err = strconv.Atoi(v)
			if err == nil && o.FetchBatch <= 0 {
				err = fmt.Errorf("option %s must be positive", name)
			}
		case "dead_letter_queue":
			o.DeadLetterQueue = v
		case "restore_interval":
			o.RestoreInterval, err = parseDuration(name, v)
		case "unacked_restore_limit":
			o.RestoreLimit, err = strconv.Atoi(v)
		case "delayed_key":
			o.DelayedKey = v
		case "delay_poll_interval":
			o.DelayPollInterval, err = parseDuration(name, v)
		case "poll_timeout":
			o.PollTimeout, err = parseDuration(name, v)
		case "publish_timeout":
			o.ConnectTimeout, err = parseDuration(name, v)
		case "visibility_heartbeat":
			o.Heartbeat, err = strconv.ParseBool(v)
		case "result_key_prefix":
			o.ResultKeyPrefix = v
		case "socket_timeout":
			socketTimeout, err = parseDuration(name, v)
		case "socket_connect_timeout":
			connectTimeout, err = parseDuration(name, v)
		case "ssl_cert_reqs":
			tlsCertReqs = strings.ToLower(strings.TrimPrefix(strings.ToUpper(v), "CERT_"))
		case "ssl_ca_certs":
			caFile = v
		case "ssl_certfile":
			certFile = v
		case "ssl_keyfile":
			keyFile = v
		default:
			rest[name] = vals
		}
		if err != nil {
			return nil, wrap(err)
		}
	}
	if o.RestoreInterval <= 0 {
		o.RestoreInterval = min(o.VisibilityTimeout/2, 10*time.Second)
	}
	if o.DelayPollInterval <= 0 {
		o.DelayPollInterval = 250 * time.Millisecond
	}
	if o.PollTimeout < 10*time.Millisecond {
		o.PollTimeout = time.Second
	}
	if o.RestoreLimit <= 0 {
		o.RestoreLimit = 1000
	}
	cu := *u
	cu.RawQuery = rest.Encode()
	cu.Fragment = ""
	ro, err := goredis.ParseURL(cu.String())
	if err != nil {
		return nil, wrap(err)
	}
	if socketTimeout > 0 {
		ro.ReadTimeout, ro.WriteTimeout = socketTimeout, socketTimeout
	}
	if connectTimeout > 0 {
		ro.DialTimeout = connectTimeout
	}
	if ro.TLSConfig != nil {
		switch tlsCertReqs {
		case "", "required", "optional":
		case "none":
			ro.TLSConfig.InsecureSkipVerify = true
		default:
			return nil, wrap(fmt.Errorf("option ssl_cert_reqs: %q is not required, optional or none", tlsCertReqs))
		}
		if caFile != "" {
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return nil, wrap(fmt.Errorf("option ssl_ca_certs: %w", err))
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, wrap(fmt.Errorf("option ssl_ca_certs: no certificate in %s", caFile))
			}
			ro.TLSConfig.RootCAs = pool
		}
		if certFile != "" || keyFile != "" {
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return nil, wrap(fmt.Errorf("options ssl_certfile/ssl_keyfile: %w", err))
			}
			ro.TLSConfig.Certificates = []tls.Certificate{cert}
		}
	} else if tlsCertReqs != "" || caFile != "" || certFile != "" || keyFile != "" {
		return nil, wrap(fmt.Errorf("ssl_* options need the rediss:// scheme"))
	}
	// Fail fast on commands during an outage; the transport retries itself.
	if ro.MaxRetries == 0 {
		ro.MaxRetries = 2
	}
	if ro.DialTimeout == 0 {
		ro.DialTimeout = min(5*time.Second, o.ConnectTimeout)
	}
	if ro.Protocol == 0 {
		// RESP2, as kombu speaks: no push-notification peeking per command.
		ro.Protocol = 2
	}
	ro.DisableIdentity = true
	ro.ContextTimeoutEnabled = true
	o.redis = ro
	return o, nil
}

// key returns name with the global key prefix.
func (o *Options) key(name string) string { return o.GlobalKeyPrefix + name }
