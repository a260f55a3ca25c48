package memory_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/memory"
)

// A stored SUCCESS is never overwritten, as in Celery 5 and the Redis
// backend; other states are.
func TestBackendKeepsSuccess(t *testing.T) {
	ctx := context.Background()
	b := memory.NewBackend()
	for _, ser := range []string{"json", "msgpack"} {
		id := "keep-" + ser
		enc := func(st driver.State) []byte {
			doc, err := driver.EncodeResultDoc(ser, &driver.ResultDoc{Status: st, TaskID: id})
			require.NoError(t, err)
			return doc
		}
		require.NoError(t, b.Store(ctx, id, enc(driver.StateStarted), 0))
		require.NoError(t, b.Store(ctx, id, enc(driver.StateSuccess), 0))
		require.NoError(t, b.Store(ctx, id, enc(driver.StateFailure), 0))
		doc, err := b.Load(ctx, id)
		require.NoError(t, err)
		require.Equal(t, enc(driver.StateSuccess), doc, ser)
	}
}
