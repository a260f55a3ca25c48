//lint:file-ignore U1000 the _msgpack fields are msgpack struct options (as_array), read by reflection

package wire

import (
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// The benchmark task: func(ctx, email string).
const benchEmail = "ann.example@example.com"

// reflectArgs is the same argument list for msgpack's reflection codec,
// encoded as an array like Celery's args.
type reflectArgs struct {
	_msgpack struct{} `msgpack:",as_array"`
	Email    string
}

// reflectBody is the whole body [args, kwargs, embed] by reflection.
type reflectBody struct {
	_msgpack struct{} `msgpack:",as_array"`
	Args     reflectArgs
	Kwargs   map[string]any
	Embed    map[string]any
}

func BenchmarkCodec(b *testing.B) {
	in := &emailArgs{email: benchEmail}
	for _, ser := range []string{SerializerMsgpack, SerializerJSON} {
		ctype, _, _ := ContentTypeOf(ser)
		b.Run("generated/"+ser+"/encode", func(b *testing.B) {
			buf := make([]byte, 0, 256)
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = AppendBody(buf[:0], ser, in, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("generated/"+ser+"/decode", func(b *testing.B) {
			body, _ := AppendBody(nil, ser, in, nil)
			var out emailArgs
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeBody(ctype, "", body, &out); err != nil {
					b.Fatal(err)
				}
			}
			if out.email != benchEmail {
				b.Fatal(out.email)
			}
		})
		b.Run("generated/"+ser+"/encode+decode", func(b *testing.B) {
			buf := make([]byte, 0, 256)
			var out emailArgs
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = AppendBody(buf[:0], ser, in, nil); err != nil {
					b.Fatal(err)
				}
				if _, err := DecodeBody(ctype, "", buf, &out); err != nil {
					b.Fatal(err)
				}
			}
			if out.email != benchEmail {
				b.Fatal(out.email)
			}
		})
	}
	b.Run("reflect/msgpack-args/encode+decode", func(b *testing.B) {
		in := reflectArgs{Email: benchEmail}
		var out reflectArgs
		b.ReportAllocs()
		for b.Loop() {
			raw, err := msgpack.Marshal(&in)
			if err != nil {
				b.Fatal(err)
			}
			if err := msgpack.Unmarshal(raw, &out); err != nil {
				b.Fatal(err)
			}
		}
		if out.Email != benchEmail {
			b.Fatal(out.Email)
		}
	})
	b.Run("reflect/msgpack-body/encode+decode", func(b *testing.B) {
		in := reflectBody{Args: reflectArgs{Email: benchEmail}, Kwargs: map[string]any{},
			Embed: map[string]any{"callbacks": nil, "errbacks": nil, "chain": nil, "chord": nil}}
		b.ReportAllocs()
		for b.Loop() {
			raw, err := msgpack.Marshal(&in)
			if err != nil {
				b.Fatal(err)
			}
			var out reflectBody
			if err := msgpack.Unmarshal(raw, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkJSONSkipString scans a 422-byte string without escapes, the
// size of a small task's base64 body in kombu's envelope.
func BenchmarkJSONSkipString(b *testing.B) {
	doc := []byte(`"` + strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo", 12) + `"`)
	for b.Loop() {
		d := JSONDecoder{b: doc}
		if err := d.Skip(0); err != nil {
			b.Fatal(err)
		}
	}
}
