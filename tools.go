//go:build tools

package taskgen
import (
 _ "golang.org/x/tools/go/packages"
 _ "golang.org/x/tools/go/analysis"
 _ "golang.org/x/tools/txtar"
 _ "github.com/dave/jennifer/jen"
 _ "github.com/rabbitmq/amqp091-go"
 _ "github.com/redis/go-redis/v9"
 _ "github.com/vmihailenco/msgpack/v5"
 _ "github.com/stretchr/testify/require"
)

