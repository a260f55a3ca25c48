package driver

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeBroker is what the test factories return.
type fakeBroker struct {
	Broker
	urls []string
}

func init() {
	RegisterBroker("fakeone", func(u *url.URL, _ TransportOptions) (Broker, error) {
		return &fakeBroker{urls: []string{u.String()}}, nil
	})
	lists := func(urls []*url.URL, _ TransportOptions) (Broker, error) {
		b := &fakeBroker{}
		for _, u := range urls {
			b.urls = append(b.urls, u.String())
		}
		return b, nil
	}
	RegisterBroker("fakeboth", func(u *url.URL, _ TransportOptions) (Broker, error) {
		return &fakeBroker{urls: []string{"single " + u.String()}}, nil
	})
	RegisterBrokerList("fakeboth", lists)
	RegisterBrokerList("fakelist", lists)
	RegisterBackendList("fakelist", func(urls []*url.URL, _ TransportOptions) (ResultBackend, error) {
		return nil, errors.New("backend list of " + urls[1].Host)
	})
}

func TestParseURLs(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		raw   string
		want  []string
		err   string
		isLst bool // the error wraps ErrURLList
	}{
		{raw: "amqp://u:p@h1:5672/v", want: []string{"amqp://u:p@h1:5672/v"}},
		{raw: "amqp://u:p@h1:5672/v;amqp://u:p@h2:5673/v", want: []string{"amqp://u:p@h1:5672/v", "amqp://u:p@h2:5673/v"}},
		{raw: " amqp://h1/?heartbeat=5 ; amqp://h2/ ", want: []string{"amqp://h1/?heartbeat=5", "amqp://h2/"}},
		{raw: "", err: "empty URL"},
		{raw: "amqp://h1;", err: "URL 2 of the list: empty", isLst: true},
		{raw: "redis://h:1/0?queue_type=quorum;redis://x:1;amqp://h", err: "URL 3 is amqp:// but URL 1 is redis://", isLst: true},
		{raw: "redis://h:1/0?a=1;b=2", err: "URL 2 of the list: b=2 has no scheme"},
		{raw: "amqp://u:secret@h1/?a=%zz", err: `query: invalid URL escape "%zz"`},
		{raw: "amqp://u:secret@h1:port/", err: "invalid port"},
	} {
		urls, err := ParseURLs(c.raw)
		if c.err != "" {
			require.ErrorContains(t, err, c.err, c.raw)
			require.NotContains(t, err.Error(), "secret")
			require.Equal(t, c.isLst, errors.Is(err, ErrURLList), "%s: %v", c.raw, err)
			continue
		}
		require.NoError(t, err, c.raw)
		var got []string
		for _, u := range urls {
			got = append(got, u.String())
		}
		require.Equal(t, c.want, got)
	}
}

func TestOpenBroker_lists(t *testing.T) {
	t.Parallel()
	opts := TransportOptions{}
	open := func(raw string) ([]string, error) {
		b, err := OpenBroker(raw, opts)
		if err != nil {
			return nil, err
		}
		return b.(*fakeBroker).urls, nil
	}
	got, err := open("fakeone://h1/0")
	require.NoError(t, err)
	require.Equal(t, []string{"fakeone://h1/0"}, got)

	// The example: a list for a transport that takes one URL is refused, not cut.
	_, err = open("fakeone://:pw@h:1/0?queue_type=quorum;fakeone://x:1")
	require.ErrorIs(t, err, ErrURLList)
	require.ErrorContains(t, err, "the fakeone:// transport takes one URL, not a list of 2")
	require.NotContains(t, err.Error(), "pw")

	_, err = open("fakelist://h1;fakeone://h2")
	require.ErrorIs(t, err, ErrURLList)
	require.ErrorContains(t, err, "URL 2 is fakeone:// but URL 1 is fakelist://")

	got, err = open("fakelist://h1:1/0?master_name=m;fakelist://h2:2")
	require.NoError(t, err)
	require.Equal(t, []string{"fakelist://h1:1/0?master_name=m", "fakelist://h2:2"}, got)
	got, err = open("fakelist://h1:1")
	require.NoError(t, err, "a single URL goes to the list factory when it is the only one")
	require.Equal(t, []string{"fakelist://h1:1"}, got)

	got, err = open("fakeboth://h1")
	require.NoError(t, err)
	require.Equal(t, []string{"single fakeboth://h1"}, got)
	got, err = open("fakeboth://h1;fakeboth://h2")
	require.NoError(t, err)
	require.Equal(t, []string{"fakeboth://h1", "fakeboth://h2"}, got)

	_, err = open("nosuch://h1;nosuch://h2")
	require.ErrorIs(t, err, ErrUnknownScheme)

	_, err = OpenBackend("fakelist://a;fakelist://b", opts)
	require.EqualError(t, err, "backend list of b")
	_, err = OpenBackend("fakelist://a;redis://b", opts)
	require.ErrorIs(t, err, ErrURLList)
}

func TestRedact_list(t *testing.T) {
	t.Parallel()
	require.Equal(t, "amqp://u:xxxxx@h1:5672/v;amqp://u:xxxxx@h2:5673/v", Redact("amqp://u:p1@h1:5672/v;amqp://u:p2@h2:5673/v"))
	require.Equal(t, "amqp://u:xxxxx@h1/v", Redact("amqp://u:p1@h1/v"))
	require.Equal(t, "amqp://h1;<unparseable URL>", Redact("amqp://h1;amqp://u:p@h:port"))
}

func TestRedact_secretQueryOptions(t *testing.T) {
	got := Redact("sentinel://:pw1@h1:26379;sentinel://h2:26380/0?master_name=m&sentinel_password=s3cret&ssl_keyfile=k.pem")
	if strings.Contains(got, "s3cret") || strings.Contains(got, "pw1") {
		t.Fatalf("secret left in %q", got)
	}
	if !strings.Contains(got, "master_name=m") || !strings.Contains(got, "sentinel_password=xxxxx") {
		t.Fatalf("Redact = %q", got)
	}
}
