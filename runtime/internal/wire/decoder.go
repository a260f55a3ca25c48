package wire

// NewMsgpackDecoder returns a decoder reading the msgpack values of b in order.
func NewMsgpackDecoder(b []byte) *MsgpackDecoder { return &MsgpackDecoder{b: b} }

// Done reports whether every byte of the input was consumed.
func (d *MsgpackDecoder) Done() bool { return d.i == len(d.b) }

// NewJSONDecoder returns a scanner over the JSON text b.
func NewJSONDecoder(b []byte) *JSONDecoder { return &JSONDecoder{b: b} }

// Done reports whether nothing but white space is left of the input.
func (d *JSONDecoder) Done() bool { return d.Peek() == 0 && d.i == len(d.b) }
