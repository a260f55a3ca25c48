package redis_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/redis"
)

// openURL opens a broker for raw, a URL or a URL list, the way runtime.New
// does (driver.ParseURLs, then the list factory).
func openURL(raw string) (*redis.Broker, error) {
	urls, err := driver.ParseURLs(raw)
	if err != nil {
		return nil, err
	}
	return redis.OpenList(urls, driver.TransportOptions{})
}

// TestOpen_SentinelURLs: kombu's Sentinel form and its options, parsed
// without contacting any server.
func TestOpen_SentinelURLs(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, raw string
		addrs     []string
		db        int
		user, pw  string
	}{
		{"issue form", "sentinel://h1:26379;sentinel://h2:26380/0?master_name=mymaster", []string{"h1:26379", "h2:26380"}, 0, "", ""},
		{"one sentinel, default port", "sentinel://h1/2?master_name=mymaster", []string{"h1:26379"}, 2, "", ""},
		{"no host", "sentinel:///0?master_name=mymaster", []string{"localhost:26379"}, 0, "", ""},
		{"db and password on the first URL", "sentinel://:pw@h1:1/3;sentinel://h2:2;sentinel://h3:3?master_name=mymaster", []string{"h1:1", "h2:2", "h3:3"}, 3, "", "pw"},
		{"repeated on every URL (Celery's form)", "sentinel://u:pw@h1:1/3;sentinel://u:pw@h2:2/3?master_name=mymaster", []string{"h1:1", "h2:2"}, 3, "u", "pw"},
		{"options on the first URL", "sentinel://h1:1/0?master_name=mymaster;sentinel://h2:2", []string{"h1:1", "h2:2"}, 0, "", ""},
		{"options split over the list", "sentinel://h1:1/0?master_name=mymaster;sentinel://h2:2/0?master_name=mymaster&visibility_timeout=30", []string{"h1:1", "h2:2"}, 0, "", ""},
		{"IPv6", "sentinel://[::1]:26379;sentinel://[::1]:26380/0?master_name=mymaster", []string{"[::1]:26379", "[::1]:26380"}, 0, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := openURL(c.raw)
			require.NoError(t, err)
			defer b.Close()
			o := b.Options()
			require.Equal(t, "mymaster", o.MasterName)
			require.Equal(t, c.addrs, o.SentinelAddrs)
			co := b.Client().Options()
			require.Equal(t, c.db, co.DB)
			require.Equal(t, c.user, co.Username)
			require.Equal(t, c.pw, co.Password)
			require.Nil(t, co.TLSConfig)
			require.Zero(t, o.MinReplicas)
		})
	}

	b, err := openURL("sentinel://h1;sentinel://h2/0?master_name=m&min_replicas=2&min_replicas_timeout=1.5&visibility_timeout=30&socket_timeout=2")
	require.NoError(t, err)
	o := b.Options()
	require.Equal(t, 2, o.MinReplicas)
	require.Equal(t, 1500*time.Millisecond, o.MinReplicasTimeout)
	require.Equal(t, 30*time.Second, o.VisibilityTimeout)
	// A WAIT must be answered within the read timeout: raised to leave it
	// a second.
	require.Equal(t, 2500*time.Millisecond, b.Client().Options().ReadTimeout)
	require.NoError(t, b.Close())

	b, err = openURL("sentinel://h1/0?master_name=m&min_replicas=1")
	require.NoError(t, err)
	require.Equal(t, 5*time.Second, b.Options().MinReplicasTimeout) // the default
	require.Equal(t, 6*time.Second, b.Client().Options().ReadTimeout)
	require.NoError(t, b.Close())

	// TLS: ssl=true, or any of broker_use_ssl's keys (kombu's ssl_* names).
	for _, raw := range []string{
		"sentinel://h1/0?master_name=m&ssl=true",
		"sentinel://h1/0?master_name=m&ssl_cert_reqs=CERT_NONE",
	} {
		b, err := openURL(raw)
		require.NoError(t, err, raw)
		tc := b.Client().Options().TLSConfig
		require.NotNil(t, tc, raw)
		require.Empty(t, tc.ServerName, "verified against each node's own address")
		require.NoError(t, b.Close())
	}
	b, err = openURL("sentinel://h1/0?master_name=m&ssl_cert_reqs=none")
	require.NoError(t, err)
	require.True(t, b.Client().Options().TLSConfig.InsecureSkipVerify)
	require.NoError(t, b.Close())

	b, err = openURL("redis://h1:6379/0?min_replicas=1&min_replicas_timeout=250ms")
	require.NoError(t, err)
	require.Equal(t, 1, b.Options().MinReplicas)
	require.Equal(t, 250*time.Millisecond, b.Options().MinReplicasTimeout)
	require.Empty(t, b.Options().SentinelAddrs)
	require.NoError(t, b.Close())
}

// TestOpen_URLListErrors: a list that cannot be used as a whole is refused
// with a clear error that shows no password.
func TestOpen_URLListErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ raw, want string }{ // want: a regexp
		// The example: silently cut at the first URL before.
		{"redis://h:1/0?queue_type=quorum;redis://x:1", "only valid with sentinel://"},
		{"redis://h:1/0;redis://x:1/0", "only valid with sentinel://"},
		{"rediss://:s3cret@h:1/0;rediss://:s3cret@x:1/0", "only valid with sentinel://"},
		{"redis://h:1/0?a=1;b=2", "semicolon|no scheme"},
		{"redis://h:1/0?master_name=mymaster", "only valid with sentinel://"},
		{"redis://h:1/0?sentinel_password=x", "only valid with sentinel://"},
		{"sentinel://h1;sentinel://h2/0", "master_name is required"},
		{"sentinel://h1;redis://h2/0?master_name=m", "sentinel:// URLs only"},
		{"sentinel://:s3cret@h1;sentinel://:s3cret@h2/5?master_name=m", "database 5 but the first URL no database"},
		{"sentinel://h1/1;sentinel://h2/2?master_name=m", "database 2 but the first URL database 1"},
		{"sentinel://h1/x?master_name=m", "not a number"},
		{"sentinel://:a@h1;sentinel://:s3cret@h2/0?master_name=m", "credentials other than the first URL's"},
		{"sentinel://h1?master_name=a;sentinel://h2?master_name=b", "master_name is given twice"},
		{"sentinel://h1/0?master_name=m&min_other_sentinels=1", "not supported"},
		{"sentinel://h1/0?master_name=m&ssl=false&ssl_cert_reqs=required", "contradicts"},
		{"sentinel://h1/0?master_name=m&ssl=maybe", "not a boolean"},
		{"sentinel://h1/0?master_name=m&min_replicas=-1", "negative"},
		{"sentinel://h1/0?master_name=m&min_replicas_timeout=0", "at least 1ms"},
		{"sentinel://h1/0?master_name=m&bogus=1", "bogus"},
		{"sentinel://h1/0?master_name=m;sentinel://;", "no scheme"},
	} {
		// Through runtime.New's path (the generic layer may refuse first,
		// with an error of its own), and through redis.Open with the URL
		// url.Parse reads from the whole string.
		for _, open := range []func(string) error{
			func(raw string) error { _, err := driver.OpenBroker(raw, driver.TransportOptions{}); return err },
			func(raw string) error { _, err := driver.OpenBackend(raw, driver.TransportOptions{}); return err },
			func(raw string) error {
				u, err := url.Parse(raw)
				if err != nil {
					return err
				}
				_, err = redis.Open(u, driver.TransportOptions{})
				return err
			},
		} {
			err := open(c.raw)
			require.Error(t, err, c.raw)
			if !errors.Is(err, driver.ErrURLList) {
				require.Regexp(t, c.want, err.Error(), c.raw)
			}
			require.NotContains(t, err.Error(), "s3cret", c.raw)
		}
	}
}

// TestOpen_SentinelRegistered: sentinel:// is a broker and a backend scheme
// of runtime.New.
func TestOpen_SentinelRegistered(t *testing.T) {
	t.Parallel()
	app, err := runtime.New(runtime.Config{
		Broker:  "sentinel://127.0.0.1:1;sentinel://127.0.0.1:2/0?master_name=mymaster",
		Backend: "sentinel://:pw@127.0.0.1:1/1;sentinel://127.0.0.1:2/1?master_name=mymaster",
	})
	require.NoError(t, err)
	require.IsType(t, &redis.Broker{}, app.Broker())
	require.IsType(t, &redis.Backend{}, app.Backend())
	require.Equal(t, 1, app.Backend().(*redis.Backend).Client().Options().DB)
	require.NoError(t, app.Close())
}

// TestSentinelPasswords: the master's password on the first URL, the
// sentinels' in sentinel_password; a wrong one of either is an error of
// Publish, and the backend stores and loads through the same URL.
func TestSentinelPasswords(t *testing.T) {
	t.Parallel()
	d := testenv.NewRedisSentinel(t, testenv.SentinelConfig{Replicas: 1, Password: "node-s3cret", SentinelPassword: "sentinel-s3cret"})
	withAuth := func(node, sentinel string) string {
		u := "sentinel://:" + node + "@" + d.SentinelAddrs()[0]
		for _, a := range d.SentinelAddrs()[1:] {
			u += ";sentinel://" + a
		}
		return u + "/0?master_name=" + d.MasterName() + "&sentinel_password=" + sentinel + "&publish_timeout=1s&min_replicas=1"
	}
	ctx := ctxT(t, 30*time.Second)
	raw := testURL(t, withAuth("node-s3cret", "sentinel-s3cret"), "")
	b := openBroker(t, raw)
	q := "pw." + randHex(4)
	m := &driver.Message{ContentType: driver.ContentTypeJSON, ContentEncoding: driver.ContentEncodingUTF8, DeliveryMode: 2,
		Headers: driver.TaskHeaders{Lang: "go", Task: "tasks.pw", ID: "pw-1", RootID: "pw-1"}, Body: []byte(`[[], {}, {}]`)}
	require.NoError(t, b.Publish(ctx, q, m))
	n, err := b.QueueLength(ctx, q)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	be := openBackend(t, raw)
	require.NoError(t, be.Store(ctx, "pw-1", []byte(`{"status": "SUCCESS"}`), time.Minute))
	doc, err := be.Load(ctx, "pw-1")
	require.NoError(t, err)
	require.Equal(t, `{"status": "SUCCESS"}`, string(doc))

	for _, bad := range []string{withAuth("wrong", "sentinel-s3cret"), withAuth("node-s3cret", "wrong")} {
		b := openBroker(t, bad)
		err := b.Publish(ctx, q, m)
		require.Error(t, err)
		require.NotContains(t, err.Error(), "s3cret")
	}
}

// TestSentinelMinReplicasShortfall: with min_replicas above the number of
// replicas, Publish and Store fail with ErrNotReplicated after
// min_replicas_timeout (the write itself was made on the master).
func TestSentinelMinReplicasShortfall(t *testing.T) {
	t.Parallel()
	d := testenv.NewRedisSentinel(t, testenv.SentinelConfig{Replicas: 1})
	raw := testURL(t, d.URL(), "min_replicas=2&min_replicas_timeout=200ms")
	b := openBroker(t, raw)
	ctx := ctxT(t, 30*time.Second)
	m := &driver.Message{ContentType: driver.ContentTypeJSON, ContentEncoding: driver.ContentEncodingUTF8, DeliveryMode: 2,
		Headers: driver.TaskHeaders{Lang: "go", Task: "tasks.short", ID: "s-1", RootID: "s-1"}, Body: []byte(`[[], {}, {}]`)}
	start := time.Now()
	err := b.Publish(ctx, "short", m)
	require.ErrorIs(t, err, redis.ErrNotReplicated)
	require.ErrorContains(t, err, "1 of min_replicas=2")
	require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
	require.Less(t, time.Since(start), 2*time.Second)

	be := openBackend(t, raw)
	require.ErrorIs(t, be.Store(ctx, "s-1", []byte(`{"status": "SUCCESS"}`), time.Minute), redis.ErrNotReplicated)
	require.ErrorIs(t, be.SaveGroup(ctx, "g-1", []byte(`{}`), time.Minute), redis.ErrNotReplicated)
	_, _, err = be.ChordPartReturn(ctx, "g-1", "s-1", 0, []byte(`{}`), time.Minute)
	require.ErrorIs(t, err, redis.ErrNotReplicated)

	// min_replicas=1 is met.
	ok := openBroker(t, testURL(t, d.URL(), "min_replicas=1"))
	require.NoError(t, ok.Publish(ctx, "short", m))
	okb := openBackend(t, testURL(t, d.URL(), "min_replicas=1"))
	require.NoError(t, okb.Store(ctx, "s-1", []byte(`{"status": "SUCCESS"}`), time.Minute))
}

// TestSentinelTLS: sentinels and data nodes speaking TLS only, verified
// against the deployment's CA (ssl_ca_certs turns TLS on): publish,
// consume and store, then again after a failover.
func TestSentinelTLS(t *testing.T) {
	t.Parallel()
	d := testenv.NewRedisSentinel(t, testenv.SentinelConfig{TLS: true, Replicas: 1})
	raw := testURL(t, d.URL(), "publish_timeout=5s")
	b := openBroker(t, raw)
	be := openBackend(t, raw)
	ctx := ctxT(t, time.Minute)
	q := "tls." + randHex(4)
	ds, err := b.Consume(ctx, []string{q}, 4)
	require.NoError(t, err)
	roundTrip := func(id string) {
		t.Helper()
		m := &driver.Message{ContentType: driver.ContentTypeJSON, ContentEncoding: driver.ContentEncodingUTF8, DeliveryMode: 2,
			Headers: driver.TaskHeaders{Lang: "go", Task: "tasks.tls", ID: id, RootID: id}, Body: []byte(`[[], {}, {}]`)}
		require.Eventually(t, func() bool { return b.Publish(ctx, q, m) == nil }, 30*time.Second, 100*time.Millisecond, "publish %s", id)
		select {
		case dl := <-ds:
			require.Equal(t, id, dl.Message().Headers.ID)
			require.NoError(t, dl.Ack())
		case <-ctx.Done():
			t.Fatalf("%s never delivered", id)
		}
		require.NoError(t, be.Store(ctx, id, []byte(`{"status": "SUCCESS"}`), time.Minute))
		doc, err := be.Load(ctx, id)
		require.NoError(t, err)
		require.Equal(t, `{"status": "SUCCESS"}`, string(doc))
	}
	roundTrip("tls-1")
	old := d.KillMaster()
	d.WaitFailover(old.Addr())
	roundTrip("tls-2")

	// Without the CA the nodes' certificates do not verify.
	withoutCA, _, ok := strings.Cut(d.URL(), "&ssl_ca_certs=")
	require.True(t, ok)
	bad := openBroker(t, withoutCA+"&ssl=true&publish_timeout=5s")
	m := &driver.Message{ContentType: driver.ContentTypeJSON, Headers: driver.TaskHeaders{ID: "tls-3"}, Body: []byte(`[[], {}, {}]`)}
	require.ErrorContains(t, bad.Publish(ctx, q, m), "certificate")
}
