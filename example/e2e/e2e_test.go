// Package e2e runs the sign-up example's real binaries (cmd/server and
// cmd/worker) against real brokers: a sign-up over HTTP reaches the worker
// through Redis or RabbitMQ, the fake email provider fails the first attempts,
// the task retries with backoff, and the result lands in Redis; then the
// workflows: the sign-up chain (/onboard) and the gallery chord (/gallery).
// TestWorkflows_InProcessOnEveryBroker runs the workflows in this process
// on memory://, Redis and RabbitMQ with both serializers.
package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	_ "github.com/taskgen/taskgen/runtime/all"
)

func build(t *testing.T, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs strings.Builder
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.Write(b)
}

func (p *proc) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func start(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...)}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	require.NoError(t, p.cmd.Start())
	t.Cleanup(func() {
		p.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", filepath.Base(bin), p.String())
		}
	})
	return p
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

func TestSignUp_RealBinariesOnRealBrokers(t *testing.T) {
	redisURL := testenv.RedisURL(t)
	amqpURL := testenv.AMQPURL(t)
	server, worker := build(t, "github.com/taskgen/taskgen/example/cmd/server"), build(t, "github.com/taskgen/taskgen/example/cmd/worker")

	for _, b := range []struct{ name, broker string }{{"redis", testenv.RedisDB(redisURL, 5)}, {"amqp", amqpURL}} {
		t.Run(b.name, func(t *testing.T) {
			backend := testenv.RedisDB(redisURL, 6)
			svc := startServices(t) // the email provider fails twice per recipient, then accepts

			start(t, worker, "-broker", b.broker, "-backend", backend, "-concurrency", "4",
				"-email-api", svc.provider.URL+"/send", "-slack-webhook", svc.slack.URL+"/webhook", "-store", svc.store.URL,
				"-hostname", "e2e-"+b.name+"@localhost")
			addr := freeAddr(t)
			start(t, server, "-broker", b.broker, "-backend", backend, "-addr", addr)

			var resp *http.Response
			var err error
			email := fmt.Sprintf("ann-%s@example.com", b.name)
			require.Eventually(t, func() bool {
				resp, err = http.Get("http://" + addr + "/sign-up?email=" + email)
				return err == nil
			}, 20*time.Second, 50*time.Millisecond)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
			require.Equal(t, "Signed Up!\n", string(body))
			id := resp.Header.Get("X-Task-Id")
			require.NotEmpty(t, id)

			app, err := runtime.New(runtime.Config{Broker: b.broker, Backend: backend})
			require.NoError(t, err)
			defer app.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			msgID, err := runtime.NewAsyncResult[string](app, id).Get(ctx)
			require.NoError(t, err)
			require.Equal(t, "msg-ann-"+b.name+"-3", msgID, "succeeded on the third attempt, after two retries")
			require.Equal(t, 3, svc.provider.Total())

			// The workflows, through the same binaries.
			run := workflowRun{email: "bea-" + b.name + "@example.com", title: "Binaries " + b.name}
			chainID, chordID := run.send(t, "http://"+addr)
			run.check(t, app, svc, chainID, chordID)
		})
	}
}
