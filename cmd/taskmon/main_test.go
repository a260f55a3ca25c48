package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/beat"
)

// syncBuffer is a bytes.Buffer safe for the logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func noenv(string) string { return "" }

func TestRun_Usage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{}, {"-nope"}, {"-broker", "memory://", "extra"}, {"-broker", "memory://", "-loglevel", "loud"}, {"-broker", "memory://", "-max-tasks", "0"}, {"-broker", "memory://", "-beat-key", " , "}} {
		var stderr syncBuffer
		require.Equal(t, 2, run(context.Background(), args, noenv, &stderr), args)
		require.Contains(t, stderr.String(), "taskmon", args)
	}
}

func TestRun_NeverPrintsPasswords(t *testing.T) {
	t.Parallel()
	var stderr syncBuffer
	code := run(context.Background(), []string{"-broker", "bogus://user:hunter2@example.com:1/0", "-addr", "127.0.0.1:0"}, noenv, &stderr)
	require.Equal(t, 1, code)
	require.NotContains(t, stderr.String(), "hunter2")
	require.Contains(t, stderr.String(), "user:")
}

func TestRun_ServesUntilCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan int, 1)
	env := func(k string) string {
		if k == "TASKMON_BASIC_AUTH" {
			return "admin:s3cret"
		}
		return ""
	}
	go func() {
		done <- run(ctx, []string{"-broker", "memory://taskmon-test", "-addr", "127.0.0.1:0"}, env, &stderr)
	}()
	re := regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+)`)
	require.Eventually(t, func() bool { return re.MatchString(stderr.String()) }, 5*time.Second, 10*time.Millisecond)
	require.Contains(t, stderr.String(), "basic_auth=true")
	require.NotContains(t, stderr.String(), "s3cret")
	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code)
	case <-time.After(10 * time.Second):
		t.Fatal("taskmon did not stop")
	}
}

func TestKeyList(t *testing.T) {
	t.Parallel()
	var k keyList
	require.NoError(t, k.Set("default"))
	require.NoError(t, k.Set(" reports, nightly ,"))
	require.Equal(t, keyList{"default", "reports", "nightly"}, k)
	require.Equal(t, "default,reports,nightly", k.String())
	require.Error(t, k.Set(","))
}

// -beat-key names the schedules /api/beat shows, read from the -backend.
func TestRun_BeatKeys(t *testing.T) {
	t.Parallel()
	const url = "memory://taskmon-beat-test"
	app, err := runtime.New(runtime.Config{Broker: url, Backend: url, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer app.Close()
	s := beat.New(app, beat.Every("tick", time.Hour, runtime.Named[int]("tasks.tick")))
	s.Key, s.Holder = "reports", "beat@test"
	_, err = s.Tick(context.Background())
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-broker", url, "-backend", url, "-addr", "127.0.0.1:0", "-poll", "50ms",
			"-beat-key", "nightly,reports", "-beat-key", "default"}, noenv, &stderr)
	}()
	re := regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+)`)
	require.Eventually(t, func() bool { return re.MatchString(stderr.String()) }, 5*time.Second, 10*time.Millisecond)
	base := re.FindStringSubmatch(stderr.String())[1]
	var body string
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/api/beat")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		var got map[string]struct {
			Leader *string `json:"leader"`
		}
		return resp.StatusCode == 200 && json.Unmarshal(b, &got) == nil && got["reports"].Leader != nil && *got["reports"].Leader == "beat@test"
	}, 5*time.Second, 20*time.Millisecond)
	require.Regexp(t, `^\{"nightly":.*,"reports":.*,"default":`, body)
	cancel()
	require.Equal(t, 0, <-done)
}
