package wire

// ArgWriter writes the positional arguments of one task call. The runtime
// implements it for msgpack, JSON and Python repr; generated code calls one method
// per parameter, in order, so encoding uses no reflection for basic types.
type ArgWriter interface {
	String(v string)
	Int(v int64)
	Uint(v uint64)
	Float(v float64)
	Bool(v bool)
	Bytes(v []byte)
	// Value writes any other serializable value (slices, maps, structs, ...)
	// through the serializer's reflection-based encoder.
	Value(v any) error
}

// ArgReader reads one argument value. Integer and float readers take the bit
// size of the Go destination and fail when the value does not fit, or, for
// integers, when a JSON number is not integral.
type ArgReader interface {
	String() (string, error)
	Int(bits int) (int64, error)
	Uint(bits int) (uint64, error)
	Float(bits int) (float64, error)
	Bool() (bool, error)
	Bytes() ([]byte, error)
	// Value decodes any other value into ptr by reflection.
	Value(ptr any) error
}

// Args is implemented by the argument struct generated for each task.
type Args interface {
	// NumArgs is the number of parameters after the context.
	NumArgs() int
	// EncodeArgs writes every argument in order.
	EncodeArgs(w ArgWriter) error
	// DecodeArg reads argument i.
	DecodeArg(i int, r ArgReader) error
	// ArgIndex maps a keyword argument name (the Go parameter name or its
	// snake_case form) to its index, or -1.
	ArgIndex(name string) int
	// ArgName is the Go name of parameter i, for error messages.
	ArgName(i int) string
}
