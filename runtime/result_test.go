package runtime

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/taskgen/taskgen/runtime/driver"
)

// TestTaskErrorFromCeleryFailure reads the FAILURE document Celery stored
// and checks the error AsyncResult.Get would return names the exception.
func TestTaskErrorFromCeleryFailure(t *testing.T) {
	doc, err := driver.DecodeResultDoc("msgpack", fixture(t, "redis_result_msgpack_FAILURE_tasks.fail.bin"))
	require.NoError(t, err)
	te := &TaskError{TaskID: doc.TaskID, State: doc.Status, Exception: doc.Exception()}
	require.Equal(t, "task ddc0d23d-a4cc-461a-87bd-6dcec07ebd46 failed: ValueError: boom, 42", te.Error())
}
