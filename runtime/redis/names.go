package redis

import (
	"crypto/rand"
	"strconv"
	"strings"

	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// sep is kombu's separator in priority list names and binding members.
const sep = "\x06\x16"

// indexKeeper is the member the fetch script (lua/fetch.lua, which spells it
// out) keeps in unacked_index with score +inf. It is longer than Redis's
// zset-max-listpack-value (64 bytes by default), so the sorted set is a
// skiplist from its first ZADD on and stays one: as a listpack each ZADD and
// ZREM of a tag costs a scan of the whole set. Readers by score never see
// it (kombu's restore_visible and taskgen's restore read 0 to now minus the
// visibility timeout).
const indexKeeper = "taskgen: keeps this sorted set a skiplist (a member longer than zset-max-listpack-value); never a delivery tag"

// steps are kombu's priority steps, one list each (see listName), in the
// order consumers read them.
var steps = [...]int{0, 3, 6, 9}

// priorityStep maps a message priority to kombu's step (0, 3, 6, 9).
func priorityStep(p int) int {
	switch {
	case p <= 2:
		return 0
	case p <= 5:
		return 3
	case p <= 8:
		return 6
	}
	return 9
}

// listName is the Redis list holding queue's messages of priority step s.
func listName(queue string, step int) string {
	if step == 0 {
		return queue
	}
	return queue + sep + strconv.Itoa(step)
}

// newTag returns a random uuid4 string, kombu's delivery tag format.
func newTag(b []byte) []byte {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, wire.HexDigits[c>>4], wire.HexDigits[c&0xf])
	}
	return b
}

// fanoutTopic is kombu's pub/sub channel of a fanout exchange and routing
// key (fanout_prefix and fanout_patterns on, kombu's defaults), with the
// global key prefix.
func (b *Broker) fanoutTopic(exchange, routingKey string) string {
	t := b.opts.key("/" + strconv.Itoa(b.opts.redis.DB) + "." + exchange)
	if routingKey != "" {
		t += "/" + routingKey
	}
	return t
}

// globEscape escapes the PSUBSCRIBE pattern characters of s.
func globEscape(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var sb strings.Builder
	for _, c := range []byte(s) {
		switch c {
		case '*', '?', '[', ']', '\\':
			sb.WriteByte('\\')
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

// bindingMember is kombu's member of the set _kombu.binding.<exchange>.
func bindingMember(routingKey, queue string) string { return routingKey + sep + sep + queue }
