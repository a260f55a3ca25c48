// Package good declares correct tasks: taskvet reports nothing.
package good

import (
	"context"
	"errors"
	"io"
	"time"
)

// HTTPError implements error on its pointer.
type HTTPError struct{ Status int }

func (e *HTTPError) Error() string { return "http" }

// ErrGone is a sentinel.
var ErrGone = errors.New("gone")

// ErrPermanent wraps errors never worth retrying.
var ErrPermanent = errors.New("permanent")

// Item is serializable: exported fields, time.Time, maps with string keys.
type Item struct {
	Name   string
	At     time.Time
	Labels map[string]int
	Next   *Item
	hidden func() `json:"-"`
}

// sendWelcomeEmail posts the welcome email.
//
//task:name good.send_welcome_email
//task:queue emails
//task:autoretry_for *HTTPError, io.ErrUnexpectedEOF, ErrGone
//task:dont_autoretry_for ErrPermanent
//task:retry_backoff
//task:retry_backoff_max 10m
//task:max_retries 5
//task:time_limit 1m
//task:soft_time_limit 30s
//task:rate_limit 10/s
//task:expires 1h
//task:acks_late
//task:ignore_result false
//task:priority 9
func sendWelcomeEmail(ctx context.Context, email string, items []Item, byID map[int64]*Item, raw []byte, v any) (string, error) {
	_ = io.EOF
	return email, nil
}

//task:queue default
func errorOnly(ctx context.Context) error { return nil }

// processImage is implemented by a Python worker.
//
//task:name media.process_image
//task:queue media
type processImage func(ctx context.Context, url string, width int) (string, error)

type (
	// resize is a remote task in a type group.
	//
	//task:name media.resize
	resize func(ctx context.Context, url string) error
)

// A plain comment mentioning task:queue is not a directive.
func helper() {}
