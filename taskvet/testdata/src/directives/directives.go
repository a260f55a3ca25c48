// Package directives has malformed directives.
package directives

import "context"

// want +11 `^task badOptions: directive has a space after "//"; write //task:expires$`
// want +12 `^task badOptions: unknown option "retry_backof" \(did you mean retry_backoff\?\)$`
// want +13 `^task badOptions: duplicate option "queue" \(previous at directives.go:20:1\)$`
// want +13 `^task badOptions: max_retries: "lots" is not a non-negative integer or none$`
// want +13 `retry_backoff_max: "1.5" is not a duration .* \(write 1.5s\)$`
// want +13 `rate_limit: "10/d" has an unknown period "d": use /s, /m or /h`
// want +13 `priority: 300 is out of range 0..255`
// want +13 `acks_late: "maybe" is not true or false`
// want +14 `soft_time_limit 20s must be less than time_limit 10s`
// want +14 `name: expected one value, got "has space"`
// want +14 `autoretry_for: missing value \(syntax: //task:autoretry_for ERROR\[, ERROR...\]\)`
// task:expires 10m
//
//task:retry_backof
//task:queue a
//task:queue b
//task:max_retries lots
//task:retry_backoff_max 1.5
//task:rate_limit 10/d
//task:priority 300
//task:acks_late maybe
//task:time_limit 10s
//task:soft_time_limit 20s
//task:name has space
//task:autoretry_for
func badOptions(ctx context.Context) error { return nil }

// want +3 `"a b" is not an error type or value name` `empty element in list` `autoretry_for: undefined: ErrX$` `"ErrX" listed twice`
// want +3 `dont_autoretry_for: "ErrX" is also listed in autoretry_for \(at directives.go:36:29\)` `dont_autoretry_for: undefined: ErrX`
//
//task:autoretry_for a b, , ErrX, ErrX
//task:dont_autoretry_for ErrX
func badLists(ctx context.Context) error { return nil }

// want +1 `^directive has a space after "//"; write //task:queue$`
// task:queue spaced_outside_any_task
func helper() {}
