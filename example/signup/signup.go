// Package signup is the sign-up scenario of taskgen's example: a web handler
// answers /sign-up at once and hands SendWelcomeEmail to the queue; a worker
// posts the email through a provider's HTTP API, retrying with exponential
// backoff when the provider fails.
//
// /onboard runs the whole sign-up as a workflow ([Onboarding]): a chain of
// CreateAccount, SendWelcome (the same email as a step that takes the
// account) and NotifySlack, with AlertOps called if a step fails for good.
package signup

//go:generate go run github.com/taskgen/taskgen/cmd/taskgen

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"strings"
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

// Slack is the Slack incoming webhook NotifySlack and AlertOps post to.
type Slack struct {
	// WebhookURL receives a POST with {"channel": ..., "text": ...}.
	WebhookURL string
	// Client sends the requests (default: a client with a 10 s timeout).
	Client *http.Client
}

var slack atomic.Pointer[Slack]

// ConfigureSlack sets the Slack webhook; workers call it at start-up.
func ConfigureSlack(s Slack) {
	if s.Client == nil {
		s.Client = &http.Client{Timeout: 10 * time.Second}
	}
	slack.Store(&s)
}

// HTTPError is a non-2xx answer of the email provider or of Slack. The
// tasks retry on it.
type HTTPError struct {
	// Service is who answered: "email provider" or "slack".
	Service    string
	StatusCode int
	Body       string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s answered %d: %s", e.Service, e.StatusCode, e.Body)
}

// postJSON posts v as JSON to url and returns the answer's body; a non-2xx
// answer is an *HTTPError of service.
func postJSON(ctx context.Context, client *http.Client, service, url string, v any) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return nil, &HTTPError{Service: service, StatusCode: resp.StatusCode, Body: string(bytes.TrimSpace(text))}
	}
	return text, nil
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
	text, err := postJSON(ctx, p.Client, "email provider", p.URL, map[string]string{"to": email, "template": "welcome"})
	if err != nil {
		return "", err
	}
	var answer struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(text, &answer); err != nil {
		return "", fmt.Errorf("signup: provider answer: %w", err)
	}
	welcomesSent.Add(1)
	return answer.ID, nil
}

// welcomesSent counts the welcome emails this process sent since the last
// digest. (A real digest would query the database of accounts.)
var welcomesSent atomic.Int64

// signupDigest posts to #sign-ups how many welcome emails went out since
// the previous digest, and returns the text. It runs on a schedule: every
// minute, and a weekday-morning summary at 09:00 Paris time (see the
// generated Schedules, run by cmd/beat or by a worker with -beat).
//
//task:name signup.digest
//task:queue notifications
//task:autoretry_for *HTTPError
//task:retry_backoff
//task:max_retries 3
//task:schedule every 1m
//task:schedule cron "0 9 * * mon-fri" tz=Europe/Paris name=signup.weekday-digest
func signupDigest(ctx context.Context) (string, error) {
	n := welcomesSent.Swap(0)
	text := fmt.Sprintf("%d welcome email(s) sent since the last digest", n)
	if err := postSlack(ctx, "#sign-ups", text); err != nil {
		welcomesSent.Add(n) // counted again in the retry
		return "", err
	}
	return text, nil
}

// Account is a user's account: what CreateAccount returns and the later
// steps of [Onboarding] take.
type Account struct {
	ID    string `json:"id" msgpack:"id"`
	Email string `json:"email" msgpack:"email"`
	// WelcomeMessageID is the email provider's id of the welcome email,
	// once SendWelcome sent it.
	WelcomeMessageID string `json:"welcome_message_id,omitempty" msgpack:"welcome_message_id,omitempty"`
}

// createAccount creates the account of email. (The example keeps no
// database: the id is derived from the address, so that running the task
// twice, as at-least-once delivery may, gives the same account.)
//
//task:name signup.create_account
//task:queue accounts
func createAccount(ctx context.Context, email string) (Account, error) {
	addr, err := mail.ParseAddress(email)
	if err != nil {
		return Account{}, fmt.Errorf("signup: bad address %q: %w", email, err)
	}
	norm := strings.ToLower(addr.Address)
	sum := sha256.Sum256([]byte(norm))
	return Account{ID: "acct-" + hex.EncodeToString(sum[:6]), Email: norm}, nil
}

// sendWelcome is sendWelcomeEmail as a workflow step: it takes the account
// CreateAccount returned and returns it with WelcomeMessageID set.
//
//task:name signup.send_welcome
//task:queue emails
//task:autoretry_for *HTTPError
//task:retry_backoff
//task:retry_backoff_max 10m
//task:max_retries 5
func sendWelcome(ctx context.Context, account Account) (Account, error) {
	id, err := sendWelcomeEmail(ctx, account.Email)
	if err != nil {
		return Account{}, err
	}
	account.WelcomeMessageID = id
	return account, nil
}

// notifySlack tells channel that account signed up and returns the text
// it posted.
//
//task:name signup.notify_slack
//task:queue notifications
//task:autoretry_for *HTTPError
//task:retry_backoff
//task:max_retries 3
func notifySlack(ctx context.Context, account Account, channel string) (string, error) {
	text := fmt.Sprintf("%s signed up (account %s, welcome email %s)", account.Email, account.ID, account.WelcomeMessageID)
	return text, postSlack(ctx, channel, text)
}

// alertOps tells #ops that a step of a sign-up failed for good; it is the
// error handler of [Onboarding] and gets the failed task's id.
//
//task:name signup.alert_ops
//task:queue notifications
//task:autoretry_for *HTTPError
//task:retry_backoff
//task:max_retries 3
func alertOps(ctx context.Context, failedTaskID string) error {
	return postSlack(ctx, "#ops", "sign-up step "+failedTaskID+" failed for good; see the monitor")
}

func postSlack(ctx context.Context, channel, text string) error {
	s := slack.Load()
	if s == nil {
		return fmt.Errorf("signup: no Slack webhook configured (call signup.ConfigureSlack)")
	}
	_, err := postJSON(ctx, s.Client, "slack", s.WebhookURL, map[string]string{"channel": channel, "text": text})
	return err
}
