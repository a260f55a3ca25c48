package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// worker is a worker child process seen from the parent.
type worker struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	done   atomic.Int64
	ready  chan struct{}
	result chan childResult
}

// workerSpec is the child's configuration.
type workerSpec struct {
	system  string // "taskgen" or "asynq"
	broker  string
	backend string
	queues  []string
	conc    int
	lat     int           // latencies to record (0: none)
	poll    time.Duration // how often the child reports its count (default 1 ms)
}

// startWorker starts a worker child and waits until it is ready to consume.
func startWorker(s workerSpec) (*worker, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if s.poll == 0 {
		s.poll = time.Millisecond
	}
	cmd := exec.Command(self, "-child", "worker", "-system", s.system, "-broker", s.broker, "-backend", s.backend,
		"-queues-list", strings.Join(s.queues, ","), "-conc", strconv.Itoa(s.conc), "-lat", strconv.Itoa(s.lat), "-poll", s.poll.String())
	cmd.Stderr = os.Stderr
	w := &worker{cmd: cmd, ready: make(chan struct{}), result: make(chan childResult, 1)}
	if w.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		got := false
		for sc.Scan() {
			l := sc.Text()
			switch {
			case l == "ready":
				close(w.ready)
			case strings.HasPrefix(l, "done "):
				n, _ := strconv.ParseInt(l[5:], 10, 64)
				w.done.Store(n)
			case strings.HasPrefix(l, "result "):
				var r childResult
				if err := json.Unmarshal([]byte(l[7:]), &r); err != nil {
					r.Err = err.Error()
				}
				got = true
				w.result <- r
			}
		}
		if !got {
			w.result <- childResult{Err: "worker child exited without a result"}
		}
	}()
	select {
	case <-w.ready:
		return w, nil
	case r := <-w.result:
		cmd.Wait()
		return nil, fmt.Errorf("worker child: %s", r.Err)
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("worker child not ready after 60 s")
	}
}

// pid is the child's process id.
func (w *worker) pid() int { return w.cmd.Process.Pid }

// start tells the child to consume.
func (w *worker) start() { io.WriteString(w.stdin, "go\n") }

// stop stops the child and returns its result.
func (w *worker) stop() childResult {
	io.WriteString(w.stdin, "stop\n")
	w.stdin.Close()
	var r childResult
	select {
	case r = <-w.result:
	case <-time.After(60 * time.Second):
		w.cmd.Process.Kill()
		r = childResult{Err: "worker child did not stop within 60 s"}
	}
	w.cmd.Wait()
	return r
}

// startWorkers starts k children, tells them all to consume, and returns them.
func startWorkers(k int, s workerSpec) ([]*worker, error) {
	var ws []*worker
	for range k {
		w, err := startWorker(s)
		if err != nil {
			stopAll(ws)
			return nil, err
		}
		ws = append(ws, w)
	}
	for _, w := range ws {
		w.start()
	}
	return ws, nil
}

// stopAll stops the children and returns their results.
func stopAll(ws []*worker) []childResult {
	var rs []childResult
	for _, w := range ws {
		rs = append(rs, w.stop())
	}
	return rs
}

// waitTotal waits until the children ran n tasks together, or timeout.
func waitTotal(ws []*worker, n int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var sum int64
		for _, w := range ws {
			sum += w.done.Load()
		}
		if sum >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d tasks ran within %s", sum, n, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// span is the drain rate of the children's results: tasks over the time
// from the first task any ran to the last.
func span(rs []childResult) (rate float64, err error) {
	var first, last, n int64
	for _, r := range rs {
		if r.Err != "" {
			return 0, fmt.Errorf("worker child: %s", r.Err)
		}
		if r.First != 0 && (first == 0 || r.First < first) {
			first = r.First
		}
		last = max(last, r.Last)
		n += r.Done
	}
	if last <= first {
		return 0, fmt.Errorf("no tasks ran")
	}
	return float64(n) / (float64(last-first) / 1e9), nil
}

// procCPU is utime+stime of a process in seconds.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100 // USER_HZ
}
