package monitor

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
)

// DefaultAddr is where taskmon listens unless told otherwise: loopback only,
// Flower's port.
const DefaultAddr = "127.0.0.1:5555"

// UnackedInspector is implemented by transports that can count the
// delivered but unacknowledged messages of a queue; the Broker page shows
// the figure where it is available.
type UnackedInspector interface {
	QueueUnacked(ctx context.Context, queue string) (int64, error)
}

// Config configures a Monitor.
type Config struct {
	// App gives the broker whose events are consumed (it must implement
	// driver.EventTransport), the result backend /api/task/result reads
	// (optional), and the broker that /api/task/async-apply publishes to.
	App *runtime.App
	// MaxTasks bounds the tasks kept in memory (default 10 000).
	MaxTasks int
	// Queues are the queues whose depth is polled; empty means "celery"
	// (the app's default queue) plus every queue named in task events.
	Queues []string
	// PollInterval is the interval of queue-depth and beat-schedule polls
	// (default 2 s).
	PollInterval time.Duration
	// BasicAuth, "user:password", protects every route when set.
	BasicAuth string
	// Logger receives the monitor's logs (default: the app's logger).
	Logger *slog.Logger
	// Now is the monitor's clock (default time.Now); tests inject one.
	Now func() time.Time
	// Location is the zone times are shown in (default time.Local).
	Location *time.Location
	// BeatKeys are the keys of the periodic-task schedules (runtime/beat's
	// Scheduler.Key) shown on /beat, /api/beat and /metrics; empty means
	// beat.DefaultKey. They are polled each PollInterval.
	BeatKeys []string
	// BeatStore is where the schedules' state is read (default: the app's
	// result backend when it is a driver.ScheduleStore, else its broker
	// when it is one, as runtime/beat's Scheduler chooses; with neither,
	// /beat says how to get one).
	BeatStore driver.ScheduleStore
}

// Monitor consumes a broker's Celery events into a [State] and serves the
// web UI, Flower's REST API and Prometheus metrics over it.
type Monitor struct {
	cfg   Config
	app   *runtime.App
	state *State
	log   *slog.Logger
	user  [32]byte // sha256 of the basic-auth user and password
	pass  [32]byte
	auth  bool

	stopping   chan struct{} // closed when the monitor shuts down (ends SSE streams)
	stopOnce   sync.Once
	hostCheck  bool // only loopback Host headers (DNS rebinding) when serving loopback without auth
	handler    http.Handler
	subscribed chan struct{}
	subOnce    sync.Once

	beat beatWatch // the schedules' state, polled

	progress progressWatch // started tasks' custom states, polled from the result backend

	registry *prometheus.Registry // what GET /metrics serves
}

// New returns a monitor for cfg.App. Call Run (or Start, or use Serve) to
// consume events; Handler serves the UI.
func New(cfg Config) (*Monitor, error) {
	if cfg.App == nil {
		return nil, errors.New("monitor: Config.App is nil")
	}
	if _, ok := cfg.App.Broker().(driver.EventTransport); !ok {
		return nil, fmt.Errorf("monitor: broker %s does not carry Celery events (its transport does not implement driver.EventTransport yet)", driver.Redact(cfg.App.Config().Broker))
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = cfg.App.Logger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	m := &Monitor{cfg: cfg, app: cfg.App, log: cfg.Logger.With("component", "taskmon"),
		state:    NewState(StateOptions{MaxTasks: cfg.MaxTasks, Now: cfg.Now}),
		stopping: make(chan struct{}), subscribed: make(chan struct{})}
	if cfg.BasicAuth != "" {
		u, p, ok := strings.Cut(cfg.BasicAuth, ":")
		if !ok || u == "" || p == "" {
			return nil, errors.New(`monitor: basic auth must be "user:password"`)
		}
		m.user, m.pass, m.auth = sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p)), true
	}
	m.beat.init(cfg, m.app)
	m.registry = m.newRegistry()
	m.handler = m.routes()
	return m, nil
}

// State returns the monitor's state.
func (m *Monitor) State() *State { return m.state }

// Handler returns the monitor's HTTP handler: pages, API, metrics, assets,
// behind basic auth when configured.
func (m *Monitor) Handler() http.Handler { return m.handler }

// Registry returns the Prometheus registry GET /metrics serves: the state
// ([State.Collect]), the watched schedules' taskgen_beat_* metrics, and the
// Go runtime's and the process's collectors. Programs that embed the
// monitor may register their own collectors on it.
func (m *Monitor) Registry() *prometheus.Registry { return m.registry }

// Subscribed returns a channel closed once Run is subscribed to the
// broker's events (events published before that are not seen).
func (m *Monitor) Subscribed() <-chan struct{} { return m.subscribed }

// Run consumes events and polls queue depths until ctx ends. A subscription
// that ends early (a transport error) is retried every second.
func (m *Monitor) Run(ctx context.Context) error {
	et := m.app.Broker().(driver.EventTransport)
	go m.pollQueues(ctx)
	go m.pollBeat(ctx)
	go m.pollProgress(ctx)
	m.wakeWorkers(ctx)
	for {
		ch, err := et.SubscribeEvents(ctx)
		if err != nil {
			m.log.Warn("subscribing to events failed; retrying", "err", err)
		} else {
			m.subOnce.Do(func() { close(m.subscribed) })
			for msg := range ch {
				if err := m.state.HandleMessage(msg); err != nil {
					m.log.Debug("ignoring event", "routing_key", msg.RoutingKey, "err", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			m.stop()
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (m *Monitor) stop() { m.stopOnce.Do(func() { close(m.stopping) }) }

// wakeWorkers broadcasts Celery's heartbeat control command, as Flower does
// on start, so that running workers announce themselves at once.
func (m *Monitor) wakeWorkers(ctx context.Context) {
	if _, ok := m.app.Broker().(driver.ControlTransport); !ok {
		return
	}
	if err := m.broadcast(ctx, "heartbeat", map[string]any{}); err != nil {
		m.log.Debug("heartbeat broadcast failed", "err", err)
	}
}

func (m *Monitor) queueNames() []string {
	if len(m.cfg.Queues) > 0 {
		return m.cfg.Queues
	}
	set := map[string]bool{m.app.Config().DefaultQueue: true}
	for _, q := range m.state.SeenQueues() {
		set[q] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// pollQueues records the depth of every queue each PollInterval, when the
// transport can report it.
func (m *Monitor) pollQueues(ctx context.Context) {
	qi, ok := m.app.Broker().(driver.QueueInspector)
	if !ok {
		return
	}
	ui, _ := m.app.Broker().(UnackedInspector)
	t := time.NewTicker(m.cfg.PollInterval)
	defer t.Stop()
	for {
		for _, q := range m.queueNames() {
			info := QueueInfo{Name: q, Unacked: -1, Polled: m.cfg.Now()}
			cctx, cancel := context.WithTimeout(ctx, m.cfg.PollInterval)
			n, err := qi.QueueLength(cctx, q)
			if err != nil {
				info.Err = err.Error()
			} else {
				info.Ready = n
				if ui != nil {
					if u, err := ui.QueueUnacked(cctx, q); err == nil {
						info.Unacked = u
					}
				}
			}
			cancel()
			if ctx.Err() != nil {
				return
			}
			m.state.SetQueue(info)
		}
		m.state.RecordQueueSample()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Start runs the monitor in the background and serves it on addr ("" is
// DefaultAddr; port 0 picks a free one). It returns the base URL and a stop
// function that shuts the server down and waits for the consumer.
func (m *Monitor) Start(ctx context.Context, addr string) (baseURL string, stop func(), err error) {
	if addr == "" {
		addr = DefaultAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("monitor: listen: %w", err)
	}
	m.hostCheck = !m.auth && isLoopback(ln.Addr())
	ctx, cancel := context.WithCancel(ctx)
	srv := &http.Server{Handler: m.handler, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	var wg sync.WaitGroup
	wg.Go(func() { _ = m.Run(ctx) })
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("monitor server stopped", "err", err)
		}
	})
	// Serve only once subscribed, so that what follows Start is seen.
	select {
	case <-m.subscribed:
	case <-time.After(5 * time.Second):
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			m.stop()
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			_ = srv.Shutdown(sctx)
			wg.Wait()
		})
	}
	return "http://" + ln.Addr().String(), stop, nil
}

// Serve runs the monitor of cfg on addr until ctx ends, logging the URL
// (never the broker's password).
func Serve(ctx context.Context, addr string, cfg Config) error {
	m, err := New(cfg)
	if err != nil {
		return err
	}
	u, stop, err := m.Start(ctx, addr)
	if err != nil {
		return err
	}
	m.log.Info("taskmon listening", "url", u, "broker", driver.Redact(cfg.App.Config().Broker), "basic_auth", m.auth, "max_tasks", m.state.MaxTasks())
	if !m.auth && !m.hostCheck {
		m.log.Warn("taskmon listens beyond loopback without basic auth: anyone who can reach it can publish and revoke tasks")
	}
	<-ctx.Done()
	stop()
	return nil
}

// Start starts a monitor on app's broker, in process, serving on addr (""
// is DefaultAddr; "127.0.0.1:0" picks a free port). It returns the base URL
// and a function that stops it. Programs like the demo use it:
//
//	url, stop, err := monitor.Start(ctx, app, "127.0.0.1:0")
func Start(ctx context.Context, app *runtime.App, addr string) (baseURL string, stop func(), err error) {
	m, err := New(Config{App: app})
	if err != nil {
		return "", nil, err
	}
	return m.Start(ctx, addr)
}

func isLoopback(a net.Addr) bool {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.IsLoopback()
	}
	return false
}

// authorized checks basic auth in constant time (over digests, so the
// lengths do not leak either).
func (m *Monitor) authorized(r *http.Request) bool {
	u, p, ok := r.BasicAuth()
	if !ok {
		return false
	}
	hu, hp := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
	return subtle.ConstantTimeCompare(hu[:], m.user[:])&subtle.ConstantTimeCompare(hp[:], m.pass[:]) == 1
}

// loopbackHost reports whether the Host header names a loopback address or
// localhost, refusing DNS-rebinding requests to a loopback monitor.
func loopbackHost(host string) bool {
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		h = host
	}
	h = strings.Trim(h, "[]")
	if strings.EqualFold(h, "localhost") || strings.HasSuffix(strings.ToLower(h), ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
