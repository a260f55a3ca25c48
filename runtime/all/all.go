// Package all links every transport and result backend of taskgen, for
// programs that take the broker URL from a flag:
//
//	import _ "github.com/taskgen/taskgen/runtime/all"
package all

import (
	_ "github.com/taskgen/taskgen/runtime/memory" // memory://
)
