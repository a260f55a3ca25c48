//go:build tools

// Package bench pins the generator used by go:generate in ./tasks.
package bench

import _ "github.com/taskgen/taskgen/cmd/taskgen"
