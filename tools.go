//go:build tools

// Package taskgen pins the modules the project uses in tests and tools so
// that go mod tidy keeps them.
package taskgen

import (
	_ "github.com/chromedp/chromedp"
	_ "github.com/dave/jennifer/jen"
	_ "github.com/rabbitmq/amqp091-go"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/stretchr/testify/require"
	_ "github.com/vmihailenco/msgpack/v5"
	_ "golang.org/x/tools/go/analysis"
	_ "golang.org/x/tools/go/packages"
	_ "golang.org/x/tools/txtar"
)
