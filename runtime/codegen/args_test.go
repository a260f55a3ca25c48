package codegen_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
)

func TestArgNames_IndexAndName(t *testing.T) {
	t.Parallel()
	names := codegen.ArgNames{{"email"}, {"userID", "user_id"}}
	for name, want := range map[string]int{"email": 0, "userID": 1, "user_id": 1, "Email": -1, "": -1} {
		require.Equal(t, want, names.Index(name), name)
	}
	require.Equal(t, "email", names.Name(0))
	require.Equal(t, "userID", names.Name(1))
	require.Empty(t, names.Name(2))
	require.Empty(t, names.Name(-1))
	require.Equal(t, -1, codegen.ArgNames(nil).Index("x"))
}

// pairArgs is an argument struct as taskgen generates it.
type pairArgs struct {
	Label string
	Count time.Duration
}

var pairNames = codegen.ArgNames{{"label"}, {"count"}}

func (*pairArgs) ArgNames() codegen.ArgNames { return pairNames }
func (a *pairArgs) EncodeArgs(w codegen.ArgWriter) error {
	w.String(a.Label)
	w.Int(int64(a.Count))
	return nil
}
func (a *pairArgs) DecodeArg(i int, r codegen.ArgReader) (err error) {
	switch i {
	case 0:
		a.Label, err = codegen.ReadString[string](r)
	case 1:
		a.Count, err = codegen.ReadInt[time.Duration](r, 64)
	}
	return err
}

func TestArgDecoder_DecodeArgs(t *testing.T) {
	t.Parallel()
	args := codegen.NewArgs[pairArgs]()
	require.IsType(t, &pairArgs{}, args)
	body, err := codegen.AppendBody(nil, "json", &pairArgs{Label: "x", Count: 3}, nil)
	require.NoError(t, err)

	var dec codegen.ArgDecoder[pairArgs]
	got, err := dec.DecodeArgs(&driver.Message{ContentType: "application/json", Body: body})
	require.NoError(t, err)
	require.Equal(t, pairArgs{Label: "x", Count: 3}, got)

	got, err = dec.DecodeArgs(&driver.Message{ContentType: "application/json", Body: []byte(`[["x", "three"], {}, null]`)})
	require.Error(t, err)
	require.Zero(t, got, "no partial arguments on error")
}

func TestRun_adaptsTypedFunctions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	run := codegen.Run(func(_ context.Context, a *pairArgs) (string, error) { return a.Label, nil })
	v, err := run(ctx, &pairArgs{Label: "ok"})
	require.NoError(t, err)
	require.Equal(t, "ok", v)

	boom := errors.New("boom")
	runErr := codegen.RunNoResult(func(context.Context, *pairArgs) error { return boom })
	v, err = runErr(ctx, &pairArgs{})
	require.ErrorIs(t, err, boom)
	require.Nil(t, v, "an error-only task has a nil result")
}

type tempError struct{}

func (*tempError) Error() string { return "temporary" }

func TestIsType(t *testing.T) {
	t.Parallel()
	require.True(t, codegen.IsType[*tempError](fmt.Errorf("wrapped: %w", &tempError{})))
	require.False(t, codegen.IsType[*tempError](io.EOF))
}
