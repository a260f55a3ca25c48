// Package signup is the sign-up scenario of taskgen's example: a web handler
// answers /sign-up at once and hands SendWelcomeEmail to the queue; a worker
// posts the email through a provider's HTTP API, retrying with exponential
// backoff when the provider fails.
package signup

//go:generate go run github.com/taskgen/taskgen/cmd/taskgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// Provider is the email provider's HTTP API.
type Provider struct {
	// URL receives a POST with {"to": ..., "template": "welcome"}.
	URL string
	// Client sends the requests (default: a client with a 10 s timeout).
	Client *http.Client
}

var provider atomic.Pointer[Provider]

// Configure sets the email provider the task posts to; workers call it at
// start-up.
func Configure(p Provider) {
	if p.Client == nil {
		p.Client = &http.Client{Timeout: 10 * time.Second}
	}
	provider.Store(&p)
}

// HTTPError is a non-2xx answer of the provider. The task retries on it.
type HTTPError struct {
	StatusCode int
	Body       string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("email provider answered %d: %s", e.StatusCode, e.Body)
}

// sendWelcomeEmail posts the welcome email through the provider's HTTP API
// and returns the provider's message id.
//
//task:name signup.send_welcome_email
//task:queue emails
//task:autoretry_for *HTTPError
//task:retry_backoff
//task:retry_backoff_max 10m
//task:max_retries 5
func sendWelcomeEmail(ctx context.Context, email string) (string, error) {
	p := provider.Load()
	if p == nil {
		return "", fmt.Errorf("signup: no email provider configured (call signup.Configure)")
	}
	body, _ := json.Marshal(map[string]string{"to": email, "template": "welcome"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.Client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return "", &HTTPError{StatusCode: resp.StatusCode, Body: string(bytes.TrimSpace(text))}
	}
	var answer struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(text, &answer); err != nil {
		return "", fmt.Errorf("signup: provider answer: %w", err)
	}
	return answer.ID, nil
}
