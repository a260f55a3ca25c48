// Package renamed was generated with taskgen -o celery_gen.go: the generated
// file is recognised by its header and named in messages.
package renamed

import "context"

//task:name renamed.work
func work(ctx context.Context) error { return nil }

type bool = int // want `^type bool hides the predeclared bool, which the code generated in celery_gen.go uses: rename it$`
