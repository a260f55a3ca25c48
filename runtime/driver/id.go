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
	return wire.FormatUUID(u)
}
