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
	// ArgNames are the names of the parameters after the context, one
	// entry per parameter: its count is the number of arguments, its
	// names the keywords a caller may pass them by.
	ArgNames() ArgNames
	// EncodeArgs writes every argument in order.
	EncodeArgs(w ArgWriter) error
	// DecodeArg reads argument i.
	DecodeArg(i int, r ArgReader) error
}

// ArgNames are the keyword names of a task's parameters, in order: element i
// lists the names parameter i may be passed by, its Go name first, then its
// snake_case form when that differs ({{"email"}, {"userID", "user_id"}}).
type ArgNames [][]string

// Index returns the position of the parameter called name, or -1.
func (n ArgNames) Index(name string) int {
	for i, names := range n {
		for _, s := range names {
			if s == name {
				return i
			}
		}
	}
	return -1
}

// Name returns the Go name of parameter i, or "" when there is none.
func (n ArgNames) Name(i int) string {
	if i < 0 || i >= len(n) || len(n[i]) == 0 {
		return ""
	}
	return n[i][0]
}
