package driver

import (
	"crypto/rand"

	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// NewID returns a random (version 4) UUID string, Celery's task id format.
func NewID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var b [36]byte
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = wire.HexDigits[c>>4], wire.HexDigits[c&0xf]
		j += 2
	}
	return string(b[:])
}
