package monitor

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime"
	_ "github.com/taskgen/taskgen/runtime/memory"
	"github.com/taskgen/taskgen/runtime/prom"
)

// dashboardExprs returns the PromQL of every target of
// docs/grafana-taskgen.json, by panel title.
func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile("../docs/grafana-taskgen.json")
	require.NoError(t, err)
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal(b, &d))
	out := map[string][]string{}
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		for _, tg := range p.Targets {
			require.NotEmpty(t, tg.Expr, "panel %q", p.Title)
			out[p.Title] = append(out[p.Title], tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			out["variable "+v.Name] = append(out["variable "+v.Name], q["query"].(string))
		}
	}
	return out
}

// The dashboard queries only metrics the monitor and runtime/prom export, and (with
// promtool) parses as PromQL.
func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	exprs := dashboardExprs(t)
	for _, want := range []string{"Task events by state", "Runtime quantiles", "Queue wait quantiles (received → started)",
		"Workers online", "Queue depth", "Leader per schedule", "Fire lateness", "Worker tasks by state", "Worker active and held"} {
		require.Contains(t, exprs, want)
	}

	// The families the monitor's collectors describe.
	families := map[string]bool{}
	descs := make(chan *prometheus.Desc, 100)
	NewState(StateOptions{}).Describe(descs)
	beatCollector{}.Describe(descs)
	// The worker processes' own metrics (runtime/prom, -metrics-addr).
	app, err := runtime.New(runtime.Config{Broker: "memory://"})
	require.NoError(t, err)
	defer app.Close()
	prom.Instrument(app, prom.WithRegisterer(nil)).Describe(descs)
	close(descs)
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range descs {
		families[fq.FindStringSubmatch(d.String())[1]] = true
	}
	name := regexp.MustCompile(`\b(?:taskgen|flower)_[a-z_]+`)
	used := map[string]bool{}
	for title, es := range exprs {
		for _, e := range es {
			for _, n := range name.FindAllString(e, -1) {
				base := n
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(n, suf); ok && families[b] {
						base = b
					}
				}
				require.True(t, families[base], "panel %q queries %s, which neither the monitor nor runtime/prom exports", title, n)
				used[base] = true
			}
		}
	}
	for _, n := range []string{"taskgen_tasks_total", "taskgen_task_runtime_seconds", "taskgen_task_queue_wait_seconds", "taskgen_workers_online",
		"taskgen_queue_depth", "taskgen_beat_leader", "taskgen_beat_fire_lateness_seconds",
		"taskgen_worker_tasks_total", "taskgen_worker_task_runtime_seconds", "taskgen_worker_tasks_active", "taskgen_worker_tasks_held",
		"taskgen_worker_time_limits_total", "taskgen_worker_broker_reconnects_total"} {
		require.True(t, used[n], "the dashboard does not use %s", n)
	}

	// PromQL syntax: the panels' queries as recording rules, checked by
	// promtool (Grafana's variables replaced by what they expand to).
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not on PATH (scripts/testenv.sh install adds Debian's prometheus package)")
		}
		t.Log("promtool is not on PATH: PromQL syntax not checked")
		return
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$task", ".*", "$queue", ".*", "$key", ".*")
	var rules strings.Builder
	rules.WriteString("groups:\n- name: dashboard\n  rules:\n")
	i := 0
	for title, es := range exprs {
		if strings.HasPrefix(title, "variable ") {
			continue // label_values() is Grafana's, not PromQL
		}
		for _, e := range es {
			i++
			q, _ := json.Marshal(vars.Replace(e))
			fmt.Fprintf(&rules, "  - record: dashboard:q%d\n    expr: %s\n", i, q)
		}
	}
	path := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	require.NoError(t, os.WriteFile(path, []byte(rules.String()), 0o644))
	out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
	require.NoError(t, err, "promtool check rules:\n%s\n%s", out, rules.String())
	require.Contains(t, string(out), fmt.Sprintf("%d rules found", i))
}
