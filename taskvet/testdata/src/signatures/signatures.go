// Package signatures has task functions and func types that cannot be tasks.
package signatures

import "context"

//task:name sig.exported
func SendEmail(ctx context.Context, to string) error { return nil } // want `^task SendEmail: the task function is exported: unexport it \(sendEmail\); the generated stub takes the exported name SendEmail$`

//task:name sig.no_params
func noParams() error { return nil } // want `^task noParams: a task takes a context.Context as its first parameter$`

//task:name sig.not_context
func notContext(to string, ctx context.Context) error { return nil } // want `the first parameter must be a context.Context, not string` `parameter ctx: the context.Context must be the first parameter, and the only one`

//task:name sig.variadic
func variadic(ctx context.Context, ids ...int) error { return nil } // want `variadic parameter ids: Celery has no variadic arguments; declare it as a slice, \[\]int`

//task:name sig.blank
func blank(ctx context.Context, _ string, n int) error { return nil } // want `parameter 2 \(string\) is named _: give it a name`

//task:name sig.no_result
func noResult(ctx context.Context) {} // want `a task returns error or \(R, error\); add an error result`

//task:name sig.not_error
func notError(ctx context.Context) string { return "" } // want `not string alone: add an error result`

//task:name sig.three
func three(ctx context.Context) (int, string, error) { return 0, "", nil } // want `not 3 results: return a struct`

//task:name sig.last_not_error
func lastNotError(ctx context.Context) (error, int) { return nil, 0 } // want `the last result must be error, not int`

//task:name sig.generic
func generic[T any](ctx context.Context, v T) error { return nil } // want `a task function cannot have type parameters`

//task:name sig.underscore
func _underscore(ctx context.Context) error { return nil } // want `the task function's name must start with a lower-case letter`

//task:name sig.init
func init() {} // want `^task init: init cannot be a task: Go code cannot refer to init functions$`

//task:name sig.keywords
func keywords(ctx context.Context, userID int, user_id int) error { return nil } // want `parameters userID and user_id both answer to the keyword argument "user_id": rename one`

//task:name sig.remote_unnamed
type remoteUnnamed func(context.Context, string, int) error // want `parameter 2 \(string\) has no name` `parameter 3 \(int\) has no name`

//task:name sig.remote_exported
type RemoteExported func(ctx context.Context) error // want `^task RemoteExported: the func type is exported: unexport it \(remoteExported\)`

//task:name sig.remote_generic
type remoteGeneric[T any] func(ctx context.Context, v T) error // want `a remote task's func type cannot have type parameters`
