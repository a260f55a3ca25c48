package redis

import (
	"context"
	"net"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/taskgen/taskgen/runtime/driver"
)

var _ driver.NodeLister = (*Broker)(nil)

// masterCacheTTL is how long CurrentNode trusts the sentinels' last answer.
const masterCacheTTL = 500 * time.Millisecond

// masterAskTimeout bounds one CurrentNode's questions to the sentinels.
const masterAskTimeout = 2 * time.Second

// masterCache is the last master address the sentinels gave.
type masterCache struct {
	mu   sync.Mutex
	addr string
	at   time.Time
}

// Nodes returns the sentinels of a sentinel:// list (sentinel://host:port,
// in list order), or the redacted URL of a redis:// or rediss:// broker;
// see driver.NodeLister.
func (b *Broker) Nodes() []string {
	if fo := b.opts.failover; fo != nil {
		out := make([]string, len(fo.SentinelAddrs))
		for i, a := range fo.SentinelAddrs {
			out[i] = "sentinel://" + a
		}
		return out
	}
	return []string{b.url}
}

// CurrentNode returns the master the sentinels name now, as
// redis://host:port (rediss:// with TLS), asking them in list order with a
// short timeout and keeping the answer for half a second; "" when none
// answers. For a redis:// or rediss:// broker it returns the redacted URL.
func (b *Broker) CurrentNode() string {
	fo := b.opts.failover
	if fo == nil {
		return b.url
	}
	c := &b.master
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.addr != "" && time.Since(c.at) < masterCacheTTL {
		return c.addr
	}
	ctx, cancel := context.WithTimeout(context.Background(), masterAskTimeout)
	defer cancel()
	scheme := "redis://"
	if fo.TLSConfig != nil {
		scheme = "rediss://"
	}
	for _, addr := range fo.SentinelAddrs {
		sc := goredis.NewSentinelClient(&goredis.Options{Addr: addr, Username: fo.SentinelUsername, Password: fo.SentinelPassword,
			TLSConfig: fo.TLSConfig, DialTimeout: masterAskTimeout / 2, ReadTimeout: masterAskTimeout / 2, MaxRetries: -1})
		hp, err := sc.GetMasterAddrByName(ctx, fo.MasterName).Result()
		sc.Close()
		if err == nil && len(hp) == 2 {
			c.addr, c.at = scheme+net.JoinHostPort(hp[0], hp[1]), time.Now()
			return c.addr
		}
		if ctx.Err() != nil {
			break
		}
	}
	c.addr = ""
	return ""
}
