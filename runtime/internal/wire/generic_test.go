package wire

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestIsEmptyEmbed: the embeds of Celery's own plain task messages (the
// fixtures, json and msgpack) and of AppendBody are recognised as empty
// without decoding; a workflow step's embed is not.
func TestIsEmptyEmbed(t *testing.T) {
	for _, c := range []struct{ fixture, ctype string }{
		{"amqp_task_json_basic.body.bin", ContentTypeJSON},
		{"amqp_task_msgpack_basic.body.bin", ContentTypeMsgpack},
		{"redis_task_msgpack_basic.body.bin", ContentTypeMsgpack},
	} {
		embed, err := DecodeBody(c.ctype, "", fixture(t, c.fixture), &addArgs{})
		require.NoError(t, err, c.fixture)
		require.True(t, IsEmptyEmbed(embed), "%s: %q", c.fixture, embed)
	}
	for _, ser := range []string{SerializerJSON, SerializerMsgpack} {
		ctype, _, _ := ContentTypeOf(ser)
		body, err := AppendBody(nil, ser, &addArgs{x: 1, y: 2, z: 3}, nil)
		require.NoError(t, err)
		embed, err := DecodeBody(ctype, "", body, &addArgs{})
		require.NoError(t, err)
		require.True(t, IsEmptyEmbed(embed), "%s: %q", ser, embed)

		body, err = AppendGenericBody(nil, ser, []any{int64(1), int64(2), int64(3)}, nil,
			map[string]any{"callbacks": nil, "errbacks": nil, "chord": nil, "chain": []any{map[string]any{"task": "tasks.mul"}}})
		require.NoError(t, err)
		embed, err = DecodeBody(ctype, "", body, &addArgs{})
		require.NoError(t, err)
		require.False(t, IsEmptyEmbed(embed), "%s: %q", ser, embed)
		v, err := DecodeGeneric(ser, embed)
		require.NoError(t, err)
		require.Equal(t, "tasks.mul", v.(map[string]any)["chain"].([]any)[0].(map[string]any)["task"])
	}
}

// TestCollectArgs: collected arguments re-encode as the generated codec
// encodes them, and a partial call leaves out the first.
func TestCollectArgs(t *testing.T) {
	args := &mixedArgs{UserID: 7, Name: "ann", Data: []byte{0xff, 0x00}, Items: []item{{SKU: "a", Qty: 1}}}
	for _, ser := range []string{SerializerJSON, SerializerMsgpack} {
		vals, err := CollectArgs(args, 0)
		require.NoError(t, err)
		require.Len(t, vals, 10)
		typed, err := AppendBody(nil, ser, args, nil)
		require.NoError(t, err)
		generic, err := AppendGenericBody(nil, ser, vals, nil, nil)
		require.NoError(t, err)
		ctype, _, _ := ContentTypeOf(ser)
		var a, b mixedArgs
		_, err = DecodeBody(ctype, "", typed, &a)
		require.NoError(t, err)
		_, err = DecodeBody(ctype, "", generic, &b)
		require.NoError(t, err, "%s: %q", ser, generic)
		require.Equal(t, a, b, ser)

		rest, err := CollectArgs(args, 1)
		require.NoError(t, err)
		require.Equal(t, vals[1:], rest)
	}
}
