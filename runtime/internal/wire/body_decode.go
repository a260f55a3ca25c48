package wire

import (
	"bytes"
	"compress/bzip2"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"sync"
)

// DecodeBody decodes a task body [args, kwargs, embed] into args, honouring
// the content type and the compression header. Arguments may be positional,
// keyword (by the Go parameter name or its snake_case form, through
// Args.ArgIndex) or both. It returns the raw embed (serialized as the body
// was; it may alias body), or nil when it is null. Errors from individual
// arguments are *ArgError, naming the parameter.
func DecodeBody(contentType, compression string, body []byte, args Args) (embed []byte, err error) {
	if compression != "" {
		if body, err = decompress(compression, body); err != nil {
			return nil, err
		}
	}
	switch contentType {
	case ContentTypeMsgpack, "application/msgpack", "application/x-msgpack; charset=binary":
		return decodeMsgpackBody(body, args)
	case ContentTypeJSON, "application/json; charset=utf-8":
		return decodeJSONBody(body, args)
	}
	return nil, fmt.Errorf("content type %q not accepted (want %s or %s)", contentType, ContentTypeMsgpack, ContentTypeJSON)
}

// MaxDecompressedSize bounds a decompressed body.
const MaxDecompressedSize = 64 << 20

// Compression types understood in the compression header.
const (
	// CompressionZlib is kombu's "gzip" compressor, which is zlib.compress:
	// RFC 1950 data, despite the name.
	CompressionZlib = "application/x-gzip"
	// CompressionBzip2 is kombu's "bzip2" compressor.
	CompressionBzip2 = "application/x-bz2"
)

func decompress(kind string, body []byte) ([]byte, error) {
	var r io.Reader
	switch kind {
	case CompressionZlib, "zlib", "application/zlib", "gzip":
		// kombu's "gzip" compressor is zlib.compress: RFC 1950 data.
		zr, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("decompress %s: %w", kind, err)
		}
		defer zr.Close()
		r = zr
	case CompressionBzip2, "bzip2":
		r = bzip2.NewReader(bytes.NewReader(body))
	default:
		return nil, fmt.Errorf("compression %q not supported (supported: %s, %s)", kind, CompressionZlib, CompressionBzip2)
	}
	out, err := io.ReadAll(io.LimitReader(r, MaxDecompressedSize+1))
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", kind, err)
	}
	if len(out) > MaxDecompressedSize {
		return nil, fmt.Errorf("decompress %s: body larger than %d bytes", kind, MaxDecompressedSize)
	}
	return out, nil
}

var errBodyShape = errors.New("body is not a 3-element array [args, kwargs, embed]")

// bodyDecoder holds the per-call decoding state. It is pooled so that the
// readers handed to Args.DecodeArg (an interface call) are not allocated per
// message: decoding basic arguments allocates only strings and byte slices.
type bodyDecoder struct {
	mp   MsgpackDecoder
	mr   mpArgReader
	jd   JSONDecoder
	jr   jsonArgReader
	seen [64]bool
}

var bodyDecoderPool = sync.Pool{New: func() any {
	bd := new(bodyDecoder)
	bd.mr.d = &bd.mp
	return bd
}}

func getBodyDecoder() *bodyDecoder { return bodyDecoderPool.Get().(*bodyDecoder) }

func (bd *bodyDecoder) release() {
	bd.mp = MsgpackDecoder{}
	bd.jd = JSONDecoder{}
	bd.jr.raw = nil
	bd.seen = [64]bool{}
	bodyDecoderPool.Put(bd)
}

// seenSlice returns n cleared flags, on the decoder for up to 64 arguments.
func (bd *bodyDecoder) seenSlice(n int) []bool {
	if n <= len(bd.seen) {
		return bd.seen[:n]
	}
	return make([]bool, n)
}

func tooManyArgs(n int, args Args) error {
	return fmt.Errorf("%d positional arguments given, the task takes %d", n, len(args.ArgNames()))
}

// kwargIndex resolves a keyword argument; npos arguments were positional.
func kwargIndex(key []byte, npos int, args Args) (int, error) {
	i := args.ArgNames().Index(string(key))
	if i < 0 || i >= len(args.ArgNames()) {
		return -1, fmt.Errorf("unexpected keyword argument %q", key)
	}
	if i < npos {
		return -1, fmt.Errorf("got multiple values for argument %q", args.ArgNames().Name(i))
	}
	return i, nil
}
