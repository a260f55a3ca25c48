package autoretry

import (
	"context"
	"os"
)

// want +2 `undefined: HTTPErr \(did you mean HTTPError\?\)` `HTTPError does not implement error \(did you mean \*HTTPError\? its Error method has a pointer receiver\)` `NotAnError does not implement error$` `\*ErrGone: ErrGone is a variable, not a type: write ErrGone to match it with errors.Is` `the variable Count has type int, which does not implement error` `helper is a function, not an error type or variable` `os is a package: name an error type or variable in it \(os.Name\)` `Box is a generic type: list a non-generic error type`
//
//task:autoretry_for HTTPErr, HTTPError, *ValueError, NotAnError, *ErrGone, Count, helper, os, Box
func first(ctx context.Context) error { return nil }

// want +2 `package io is not imported in tasks.go: import "io" there \(the file must use it: a directive does not count\)` `undefined: os.ErrNotExists \(did you mean os.ErrNotExist\?\)` `undefined: os.errFinished$` `HTTPError.Code: HTTPError is type HTTPError, not an imported package` `nil is not an error type or variable` `the constant Limit has type untyped int, which does not implement error`
//
//task:autoretry_for io.ErrUnexpectedEOF, os.ErrNotExists, os.errFinished, HTTPError.Code, nil, Limit, ErrGone
func second(ctx context.Context) error { return os.ErrClosed }

// want +2 `^task third: dont_autoretry_for has no effect without autoretry_for$`
//
//task:dont_autoretry_for ErrGone
func third(ctx context.Context) error { return nil }

// want +2 `^task fourth: autoretry_for: package nosuchpkg is not imported in tasks.go: import it there`
//
//task:autoretry_for nosuchpkg.ErrX
func fourth(ctx context.Context) error { return nil }
