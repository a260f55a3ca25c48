// Package all links every transport and result backend of taskgen, for
// programs that take the broker URL from a flag:
//
//	import _ "github.com/taskgen/taskgen/runtime/all"
//
// It registers memory://, redis://, rediss://, amqp:// and amqps://.
package all

import (
	_ "github.com/taskgen/taskgen/runtime/amqp"   // amqp://, amqps://
	_ "github.com/taskgen/taskgen/runtime/memory" // memory://
	_ "github.com/taskgen/taskgen/runtime/redis"  // redis://, rediss://
)
