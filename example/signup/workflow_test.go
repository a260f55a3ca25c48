package signup_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/example/internal/fakes"
	"github.com/taskgen/taskgen/example/signup"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/tasktest"
)

// fakeServices points the tasks at a fake email provider failing failures
// times per recipient and at a fake Slack.
func fakeServices(t *testing.T, failures int) (*fakes.EmailProvider, *fakes.Slack) {
	t.Helper()
	provider, err := fakes.NewEmailProvider(failures)
	require.NoError(t, err)
	t.Cleanup(func() { provider.Close() })
	slack, err := fakes.NewSlack()
	require.NoError(t, err)
	t.Cleanup(func() { slack.Close() })
	signup.Configure(signup.Provider{URL: provider.URL + "/send"})
	signup.ConfigureSlack(signup.Slack{WebhookURL: slack.URL + "/webhook"})
	return provider, slack
}

// TestHandler_OnboardSendsTheChain: /onboard sends CreateAccount →
// SendWelcome → NotifySlack; each step gets the previous one's result, the
// email step retries on the provider's 503s in the middle of the chain, and
// X-Task-Id is the chain's result (the last step).
func TestHandler_OnboardSendsTheChain(t *testing.T) {
	provider, slack := fakeServices(t, 2)
	kit := tasktest.New(t, signup.RegisterTasks)
	srv := httptest.NewServer(signup.Handler(kit.App.Logger()))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/onboard?email=Fay@Example.com")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	id := resp.Header.Get("X-Task-Id")
	require.NotEmpty(t, id)
	require.Empty(t, slack.Messages(), "the email step waits for its retry")
	kit.Advance(10 * time.Minute)
	require.Equal(t, 3, provider.Attempts("fay@example.com"), "two 503s, then sent")

	steps := kit.Workflow(id)
	require.Len(t, steps, 3)
	tasks := []string{steps[0].Task, steps[1].Task, steps[2].Task}
	require.Equal(t, []string{"signup.create_account", "signup.send_welcome", "signup.notify_slack"}, tasks)
	require.Equal(t, []string{"accounts", "emails", "notifications"}, []string{steps[0].Queue, steps[1].Queue, steps[2].Queue})
	require.Equal(t, id, steps[2].ID)
	for i := 1; i < 3; i++ {
		require.Equal(t, steps[i-1].ID, steps[i].ParentID, "step %d follows step %d", i, i-1)
		require.Equal(t, steps[0].ID, steps[i].RootID)
	}

	// The arguments each step got, decoded by the generated codecs.
	created := tasktest.Calls(kit, signup.CreateAccount)
	require.Len(t, created, 1)
	require.Equal(t, "Fay@Example.com", created[0].Args.Email)
	account := signup.Account{ID: "acct-" + accountHash(t, "fay@example.com"), Email: "fay@example.com"}
	welcomed := tasktest.Calls(kit, signup.SendWelcome)
	require.Len(t, welcomed, 3, "the step and its two retries")
	require.Equal(t, account, welcomed[0].Args.Account, "SendWelcome got CreateAccount's result")
	notified := tasktest.Calls(kit, signup.NotifySlack)
	require.Len(t, notified, 1)
	account.WelcomeMessageID = "msg-fay-3"
	require.Equal(t, signup.NotifySlackArgs{Account: account, Channel: "#sign-ups"}, notified[0].Args,
		"NotifySlack got SendWelcome's result and its bound channel")
	require.Empty(t, kit.Enqueued("signup.alert_ops"))
	require.Empty(t, kit.Enqueued("signup.send_welcome_email"), "/onboard does not send the plain task")

	text, err := runtime.NewAsyncResult[string](kit.App, id).Get(context.Background())
	require.NoError(t, err)
	require.Equal(t, "fay@example.com signed up (account "+account.ID+", welcome email msg-fay-3)", text)
	require.Equal(t, []fakes.SlackMessage{{Channel: "#sign-ups", Text: text}}, slack.Messages())

	resp, err = http.Get(srv.URL + "/onboard?email=nope")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Len(t, kit.Enqueued("signup.create_account"), 1, "a bad address sends nothing")
}

// accountHash is CreateAccount's id of email, as the task computes it.
func accountHash(t *testing.T, email string) string {
	acct, err := signup.CreateAccount.Call(context.Background(), email)
	require.NoError(t, err)
	return acct.ID[len("acct-"):]
}

// TestOnboarding_EmailGivesUp_AlertsOps: when the email step fails for
// good, the chain stops (NotifySlack never runs) and its error handler,
// AlertOps, gets the failed step's id (link_error).
func TestOnboarding_EmailGivesUp_AlertsOps(t *testing.T) {
	provider, slack := fakeServices(t, 1000)
	kit := tasktest.New(t, signup.RegisterTasks)
	ctx := context.Background()

	res, err := signup.Onboarding("gus@example.com").Delay(ctx)
	require.NoError(t, err)
	kit.Advance(time.Hour)
	require.Equal(t, 6, provider.Attempts("gus@example.com"), "1 run + max_retries 5")

	state, err := res.State(ctx)
	require.NoError(t, err)
	require.Equal(t, runtime.StatePending, state, "the last step was never sent")
	require.Empty(t, kit.Enqueued("signup.notify_slack"))
	welcome := tasktest.Calls(kit, signup.SendWelcome)
	require.Len(t, welcome, 6)
	alerts := tasktest.Calls(kit, signup.AlertOps)
	require.Len(t, alerts, 1)
	require.Equal(t, welcome[0].ID, alerts[0].Args.FailedTaskID)
	require.Equal(t, []fakes.SlackMessage{{Channel: "#ops", Text: "sign-up step " + welcome[0].ID + " failed for good; see the monitor"}}, slack.Messages())
}

func TestCreateAccount_SameAddressSameAccount(t *testing.T) {
	ctx := context.Background()
	a, err := signup.CreateAccount.Call(ctx, "Hal <HAL@example.com>")
	require.NoError(t, err)
	b, err := signup.CreateAccount.Call(ctx, "hal@example.com")
	require.NoError(t, err)
	require.Equal(t, a, b)
	require.Equal(t, "hal@example.com", a.Email)
	require.Regexp(t, `^acct-[0-9a-f]{12}$`, a.ID)
	_, err = signup.CreateAccount.Call(ctx, "not an address")
	require.Error(t, err)
}
