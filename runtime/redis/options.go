package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
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
	// DelayPollInterval bounds how long consumers go without looking for due
	// deferred messages (default 250 ms). Between looks a consumer sleeps
	// until the earliest parked message is due, so messages start on time
	// (within about a millisecond of their due time); the interval only
	// bounds how late a consumer learns of messages parked meanwhile, which
	// are always due further ahead than that.
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
	// MinReplicas, when positive, makes every publish (and result store)
	// wait until that many replicas acknowledged the write (Redis WAIT); a
	// write fewer replicas acknowledged within MinReplicasTimeout is an
	// error wrapping ErrNotReplicated. Default 0: no wait.
	MinReplicas int
	// MinReplicasTimeout bounds the WAIT of MinReplicas (default 5 s, and
	// never more than ConnectTimeout).
	MinReplicasTimeout time.Duration
	// MasterName is the name the sentinels know the master by (sentinel://
	// URLs only; kombu's master_name transport option).
	MasterName string
	// SentinelAddrs are the sentinels' addresses, host:port (sentinel://
	// URLs only).
	SentinelAddrs []string

	redis    *goredis.Options         // the data nodes' options (for sentinel://: the master's, Addr unused)
	failover *goredis.FailoverOptions // sentinel:// only
	log      *slog.Logger
	host     string
	url      string // the URL (list) with passwords redacted
}

// ErrNotReplicated is wrapped by the error of a publish or result store that
// fewer than the min_replicas option's replicas acknowledged in time. The
// write was made on the master and may survive or not: a retry can
// duplicate it.
var ErrNotReplicated = errors.New("not acknowledged by enough replicas")

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

// parseOptions splits the query of urls into taskgen's options and
// go-redis's own (dial_timeout, pool_size, …), and builds the client
// options. urls is one redis:// or rediss:// URL, or a list of sentinel://
// URLs (see parseSentinelList).
func parseOptions(urls []*url.URL, topts driver.TransportOptions) (*Options, error) {
	redacted := redactURLs(urls)
	wrap := func(err error) error { return fmt.Errorf("redis URL %s: %w", redacted, err) }
	if len(urls) == 0 {
		return nil, wrap(errors.New("no URL"))
	}
	u := urls[0]
	var (
		q        url.Values
		sentinel *sentinelList
		err      error
	)
	switch strings.ToLower(u.Scheme) {
	case "sentinel":
		sentinel, err = parseSentinelList(urls)
		if err != nil {
			return nil, wrap(err)
		}
		q = sentinel.query
	default:
		if len(urls) > 1 {
			return nil, wrap(fmt.Errorf("%w: a list of URLs (separated by ';') is only valid with sentinel://, kombu's Redis Sentinel form; a %s:// URL names one server", driver.ErrURLList, u.Scheme))
		}
		if q, err = url.ParseQuery(u.RawQuery); err != nil {
			return nil, wrap(fmt.Errorf("query: %w", err))
		}
	}
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
		url:               redacted,
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	rest := url.Values{}
	var tlsCertReqs, caFile, certFile, keyFile string
	var socketTimeout, connectTimeout time.Duration
	var sentinelUser, sentinelPass, sslFlag string
	haveTLSOpt := false
	for name, vals := range q {
		v := vals[len(vals)-1]
		var err error
		if sentinelOnly[name] && sentinel == nil {
			return nil, wrap(fmt.Errorf("option %s is only valid with sentinel:// URLs", name))
		}
		switch name {
		case "master_name":
			o.MasterName = v
		case "sentinel_username":
			sentinelUser = v
		case "sentinel_password":
			sentinelPass = v
		case "ssl":
			sslFlag = v
		case "min_other_sentinels":
			err = fmt.Errorf("option min_other_sentinels is not supported: go-redis takes the master's address from the first sentinel that answers")
		case "min_replicas":
			o.MinReplicas, err = strconv.Atoi(v)
			if err == nil && o.MinReplicas < 0 {
				err = fmt.Errorf("option min_replicas must not be negative")
			}
		case "min_replicas_timeout":
			o.MinReplicasTimeout, err = parseDuration(name, v)
			if err == nil && o.MinReplicasTimeout < time.Millisecond {
				err = fmt.Errorf("option min_replicas_timeout must be at least 1ms (WAIT 0 would wait forever)")
			}
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
			haveTLSOpt = true
		case "ssl_ca_certs":
			caFile, haveTLSOpt = v, true
		case "ssl_certfile":
			certFile, haveTLSOpt = v, true
		case "ssl_keyfile":
			keyFile, haveTLSOpt = v, true
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
	if o.MinReplicasTimeout <= 0 {
		o.MinReplicasTimeout = 5 * time.Second
	}
	o.MinReplicasTimeout = min(o.MinReplicasTimeout, o.ConnectTimeout)
	cu := *u
	if sentinel != nil {
		if o.MasterName == "" {
			return nil, wrap(fmt.Errorf("option master_name is required with sentinel:// (kombu's transport option master_name), e.g. sentinel://h1:26379;sentinel://h2:26379/0?master_name=mymaster"))
		}
		useTLS := haveTLSOpt
		if sslFlag != "" {
			on, err := strconv.ParseBool(sslFlag)
			if err != nil {
				return nil, wrap(fmt.Errorf("option ssl: %q is not a boolean", sslFlag))
			}
			if !on && haveTLSOpt {
				return nil, wrap(fmt.Errorf("option ssl=false contradicts the ssl_* options"))
			}
			useTLS = on
		}
		// The master's credentials and database, with go-redis's own
		// options, in the form go-redis parses; the address is unused.
		cu = url.URL{Scheme: "redis", User: sentinel.user, Host: sentinel.addrs[0], Path: "/" + strconv.Itoa(sentinel.db)}
		if useTLS {
			cu.Scheme = "rediss"
		}
		o.SentinelAddrs = sentinel.addrs
	}
	cu.RawQuery = rest.Encode()
	cu.Fragment = ""
	ro, err := goredis.ParseURL(cu.String())
	if err != nil {
		return nil, wrap(err)
	}
	if sentinel != nil && ro.TLSConfig != nil {
		// Verify each node (sentinel, master, replica) by the address it is
		// dialled at, not by the first sentinel's host.
		ro.TLSConfig.ServerName = ""
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
	} else if haveTLSOpt {
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
	if o.MinReplicas > 0 {
		// A WAIT is read within the connection's read timeout (go-redis's
		// default 3 s): leave it a second beyond the WAIT's own bound.
		rt := ro.ReadTimeout
		if rt == 0 {
			rt = 3 * time.Second
		}
		if rt > 0 && rt < o.MinReplicasTimeout+time.Second {
			ro.ReadTimeout = o.MinReplicasTimeout + time.Second
		}
	}
	o.redis = ro
	if sentinel != nil {
		o.failover = failoverOptions(ro, o.MasterName, o.SentinelAddrs, sentinelUser, sentinelPass)
	}
	return o, nil
}

// sentinelOnly are the options only sentinel:// URLs take.
var sentinelOnly = map[string]bool{
	"master_name": true, "sentinel_username": true, "sentinel_password": true,
	"ssl": true, "min_other_sentinels": true,
}

// newClient returns a client of the data nodes: of the one server of a
// redis:// URL, or of the master the sentinels name, following failovers.
func (o *Options) newClient() *goredis.Client {
	if o.failover != nil {
		fo := *o.failover
		return goredis.NewFailoverClient(&fo)
	}
	ro := *o.redis
	return goredis.NewClient(&ro)
}

// newBlockingClient returns a client for blocking commands: one connection
// per blocked command (as many as there are blockers), no idle
// connections, and no silent retry (a blocked command whose connection dies
// may have moved a message; its caller must look at once).
func (o *Options) newBlockingClient() *goredis.Client {
	if o.failover != nil {
		fo := *o.failover
		fo.PoolSize = 1024
		fo.MinIdleConns, fo.MaxIdleConns = 0, 0
		fo.MaxRetries = -1
		return goredis.NewFailoverClient(&fo)
	}
	ro := *o.redis
	ro.PoolSize = 1024
	ro.MinIdleConns, ro.MaxIdleConns = 0, 0
	ro.MaxRetries = -1
	return goredis.NewClient(&ro)
}

// failoverOptions returns the options of a client of the master named
// master that sentinels at addrs know, with ro's settings.
func failoverOptions(ro *goredis.Options, master string, addrs []string, sentinelUser, sentinelPass string) *goredis.FailoverOptions {
	return &goredis.FailoverOptions{
		MasterName:       master,
		SentinelAddrs:    slices.Clone(addrs),
		SentinelUsername: sentinelUser,
		SentinelPassword: sentinelPass,

		ClientName: ro.ClientName,
		OnConnect:  ro.OnConnect,
		Protocol:   ro.Protocol,
		Username:   ro.Username,
		Password:   ro.Password,
		DB:         ro.DB,

		MaxRetries:      ro.MaxRetries,
		MinRetryBackoff: ro.MinRetryBackoff,
		MaxRetryBackoff: ro.MaxRetryBackoff,

		DialTimeout: ro.DialTimeout,
		// One dial per attempt: the transport retries with backoff of its
		// own, and go-redis's default of 5 nested under its sentinel
		// lookups (themselves retried) hides a failure — a certificate
		// that does not verify, say — for seconds behind a timeout.
		DialerRetries:         1,
		ReadTimeout:           ro.ReadTimeout,
		WriteTimeout:          ro.WriteTimeout,
		ContextTimeoutEnabled: ro.ContextTimeoutEnabled,
		ReadBufferSize:        ro.ReadBufferSize,
		WriteBufferSize:       ro.WriteBufferSize,

		PoolFIFO:           ro.PoolFIFO,
		PoolSize:           ro.PoolSize,
		MaxConcurrentDials: ro.MaxConcurrentDials,
		PipelinePoolSize:   ro.PipelinePoolSize,
		PoolTimeout:        ro.PoolTimeout,
		MinIdleConns:       ro.MinIdleConns,
		MaxIdleConns:       ro.MaxIdleConns,
		MaxActiveConns:     ro.MaxActiveConns,
		ConnMaxIdleTime:    ro.ConnMaxIdleTime,
		ConnMaxLifetime:    ro.ConnMaxLifetime,

		TLSConfig:       ro.TLSConfig,
		DisableIdentity: ro.DisableIdentity,
		IdentitySuffix:  ro.IdentitySuffix,
	}
}

// secretOption matches the options whose values are secrets, in a raw
// query.
var secretOption = regexp.MustCompile(`(^|&)(sentinel_password)=[^&]*`)

// redactURLs returns the URLs of a list joined again, each with its
// password, and the value of its sentinel_password option, replaced by
// "xxxxx".
func redactURLs(urls []*url.URL) string {
	parts := make([]string, len(urls))
	for i, u := range urls {
		c := *u
		c.RawQuery = secretOption.ReplaceAllString(c.RawQuery, "${1}${2}=xxxxx")
		parts[i] = c.Redacted()
	}
	return strings.Join(parts, driver.URLSeparator)
}

// urlList returns the URLs u stands for, split as driver.ParseURLs does
// (runtime.New's path): u itself, or each URL of a list that url.Parse read
// as one URL ("sentinel://h1:1;sentinel://h2:2/0" parses as host
// "h1:1;sentinel:").
func urlList(u *url.URL) ([]*url.URL, error) {
	raw := u.String()
	if !strings.Contains(raw, driver.URLSeparator) {
		return []*url.URL{u}, nil
	}
	urls, err := driver.ParseURLs(raw)
	if err != nil {
		return nil, fmt.Errorf("redis URL %s: %w", redactURLs([]*url.URL{u}), err)
	}
	return urls, nil
}

// sentinelList is a parsed sentinel:// URL list.
type sentinelList struct {
	addrs []string      // host:port of each sentinel
	user  *url.Userinfo // the master's credentials (nil: none)
	db    int
	query url.Values // the options of every URL of the list
}

// parseSentinelList parses kombu's Sentinel form: one or more sentinel://
// URLs separated by ';', "sentinel://[[user]:password@]host[:port][/db]",
// port 26379 by default. As kombu and Celery do, the master's credentials
// and database come from the first URL; a later URL may repeat them but not
// differ. Options (the query) may stand on any URL of the list (usually the
// last or the first) and apply to all; one named twice with different values
// is an error.
func parseSentinelList(urls []*url.URL) (*sentinelList, error) {
	l := &sentinelList{query: url.Values{}}
	dbGiven := false
	for i, u := range urls {
		if !strings.EqualFold(u.Scheme, "sentinel") {
			return nil, fmt.Errorf("%w: URL %d of the list has scheme %s://: a sentinel:// list takes sentinel:// URLs only", driver.ErrURLList, i+1, u.Scheme)
		}
		if u.Opaque != "" || u.Fragment != "" {
			return nil, fmt.Errorf("URL %d of the list is not of the form sentinel://host:port/db", i+1)
		}
		host, port := u.Hostname(), u.Port()
		if host == "" {
			host = "localhost"
		}
		if port == "" {
			port = "26379"
		}
		l.addrs = append(l.addrs, net.JoinHostPort(host, port))
		if i == 0 {
			l.user = u.User
		} else if u.User != nil && (l.user == nil || u.User.String() != l.user.String()) {
			return nil, fmt.Errorf("URL %d of the list has credentials other than the first URL's: the master's credentials come from the first URL (as in kombu); the sentinels' password is the option sentinel_password", i+1)
		}
		if path := strings.TrimPrefix(u.Path, "/"); path != "" {
			db, err := strconv.Atoi(path)
			if err != nil || db < 0 {
				return nil, fmt.Errorf("URL %d of the list: database %q is not a number", i+1, path)
			}
			switch {
			case i == 0:
				l.db, dbGiven = db, true
			case db != l.db:
				first := "no database (0)"
				if dbGiven {
					first = "database " + strconv.Itoa(l.db)
				}
				return nil, fmt.Errorf("URL %d of the list names database %d but the first URL %s: kombu and Celery take the database from the first URL, so put it there (or on every URL)", i+1, db, first)
			}
		}
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return nil, fmt.Errorf("URL %d of the list: query: %w", i+1, err)
		}
		for name, vals := range q {
			if prev, ok := l.query[name]; ok && prev[len(prev)-1] != vals[len(vals)-1] {
				return nil, fmt.Errorf("option %s is given twice in the list with different values", name)
			}
			l.query[name] = vals
		}
	}
	return l, nil
}

// key returns name with the global key prefix.
func (o *Options) key(name string) string { return o.GlobalKeyPrefix + name }

// checkWait returns the error of a WAIT for MinReplicas that ran in a
// pipeline whose Exec returned execErr: the command's or the pipeline's
// error, or one wrapping ErrNotReplicated when fewer replicas
// acknowledged.
func (o *Options) checkWait(cmd *goredis.Cmd, execErr error) error {
	if err := cmd.Err(); err != nil {
		return err
	}
	if cmd.Val() == nil && execErr != nil {
		return execErr // the pipeline never ran
	}
	n, err := cmd.Int64()
	if err != nil {
		return fmt.Errorf("WAIT: %w", err)
	}
	if n < int64(o.MinReplicas) {
		return fmt.Errorf("%w: %d of min_replicas=%d acknowledged within %v", ErrNotReplicated, n, o.MinReplicas, o.MinReplicasTimeout)
	}
	return nil
}

// queueWait adds WAIT MinReplicas MinReplicasTimeout to pipe (go-redis's
// Pipeliner has no Wait method).
func (o *Options) queueWait(ctx context.Context, pipe goredis.Pipeliner) *goredis.Cmd {
	return pipe.Do(ctx, "wait", o.MinReplicas, o.MinReplicasTimeout.Milliseconds())
}

// durable runs the commands queue adds to a pipeline and, when MinReplicas
// is set, a WAIT for MinReplicas replicas after them on the same
// connection; it returns the first error (see checkWait).
func (o *Options) durable(ctx context.Context, c *goredis.Client, queue func(pipe goredis.Pipeliner)) error {
	pipe := c.Pipeline()
	queue(pipe)
	if o.MinReplicas <= 0 {
		_, err := pipe.Exec(ctx)
		return err
	}
	w := o.queueWait(ctx, pipe)
	cmds, err := pipe.Exec(ctx)
	for _, c := range cmds[:len(cmds)-1] {
		if err := c.Err(); err != nil {
			return err
		}
	}
	return o.checkWait(w, err)
}

// runScript runs script as Script.Run does (EVALSHA, then EVAL on a
// NOSCRIPT reply) and, when MinReplicas is set, WAITs for MinReplicas
// replicas in the same pipeline; a shortfall is the returned command's
// error (wrapping ErrNotReplicated).
func (o *Options) runScript(ctx context.Context, c *goredis.Client, script *goredis.Script, keys []string, args ...any) *goredis.Cmd {
	if o.MinReplicas <= 0 {
		return script.Run(ctx, c, keys, args...)
	}
	for attempt := 0; ; attempt++ {
		pipe := c.Pipeline()
		var cmd *goredis.Cmd
		if attempt == 0 {
			cmd = script.EvalSha(ctx, pipe, keys, args...)
		} else {
			cmd = script.Eval(ctx, pipe, keys, args...)
		}
		w := o.queueWait(ctx, pipe)
		_, execErr := pipe.Exec(ctx)
		if err := cmd.Err(); err != nil {
			if attempt == 0 && goredis.HasErrorPrefix(err, "NOSCRIPT") {
				continue
			}
			return cmd
		}
		if err := o.checkWait(w, execErr); err != nil {
			cmd.SetErr(err)
		}
		return cmd
	}
}
