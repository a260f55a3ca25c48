package archtest

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// module is the import path of the module whose rules are checked.
const module = "github.com/taskgen/taskgen"

// pkg is one package as go list -deps shows it, for a non-test build.
type pkg struct {
	standard bool
	imports  []string
}

// graph maps import paths to packages: every package of the module and
// everything they depend on.
type graph map[string]pkg

// rule is one import rule of docs/ARCHITECTURE.md.
type rule struct {
	name string   // what the rule says, for the failure message
	from []string // module-relative packages the rule is about
	// banned reports whether depending on path, directly or not, breaks
	// the rule.
	banned func(g graph, path string) bool
}

// within reports whether path is one of the module-relative packages or
// trees (written "x/...") of patterns.
func within(path string, patterns ...string) bool {
	for _, p := range patterns {
		full := module
		if p != "" {
			full += "/" + p
		}
		if tree, ok := strings.CutSuffix(full, "/..."); ok {
			if path == tree || strings.HasPrefix(path, tree+"/") {
				return true
			}
		} else if path == full {
			return true
		}
	}
	return false
}

// brokerClient reports whether path is part of a broker's client library.
func brokerClient(path string) bool {
	for _, client := range []string{"github.com/redis/go-redis", "github.com/rabbitmq/amqp091-go"} {
		if path == client || strings.HasPrefix(path, client+"/") {
			return true
		}
	}
	return false
}

// transports are the packages that implement runtime/driver.
var transports = []string{"runtime/memory", "runtime/redis", "runtime/amqp", "runtime/all"}

// rules are the import rules of docs/ARCHITECTURE.md ("Who may import whom").
var rules = []rule{
	{
		name: "the runtime core imports no broker client and no transport: applications choose transports by import",
		from: []string{"runtime", "runtime/codegen", "runtime/driver", "runtime/internal/wire"},
		banned: func(_ graph, path string) bool {
			return brokerClient(path) || within(path, transports...)
		},
	},
	{
		name: "only runtime/otel imports OpenTelemetry: a program that does not trace links nothing of it",
		from: []string{"runtime", "runtime/codegen", "runtime/driver", "runtime/internal/wire", "runtime/memory", "runtime/redis",
			"runtime/amqp", "runtime/all", "runtime/beat", "runtime/tasktest", "runtime/prom", "generator", "cmd/taskgen"},
		banned: func(_ graph, path string) bool {
			return path == "go.opentelemetry.io/otel" || strings.HasPrefix(path, "go.opentelemetry.io/")
		},
	},
	{
		name: "runtime/beat/crontab imports only the standard library",
		from: []string{"runtime/beat/crontab"},
		banned: func(g graph, path string) bool {
			return !g[path].standard && !within(path, "runtime/beat/crontab")
		},
	},
	{
		name: "annotations imports only the standard library",
		from: []string{"annotations"},
		banned: func(g graph, path string) bool {
			return !g[path].standard && !within(path, "annotations")
		},
	},
	{
		name: "the generator imports nothing of the runtime's internals and no broker client",
		from: []string{"generator", "generator/model", "cmd/taskgen", "taskvet", "cmd/taskvet"},
		banned: func(_ graph, path string) bool {
			return within(path, "runtime/internal/...") || brokerClient(path)
		},
	},
	{
		name: "a transport imports runtime/driver, not the application API (runtime, runtime/codegen) nor another transport",
		from: []string{"runtime/memory", "runtime/redis", "runtime/amqp"},
		banned: func(_ graph, path string) bool {
			return within(path, "runtime", "runtime/codegen", "runtime/tasktest", "runtime/transporttest") ||
				within(path, transports...)
		},
	},
	{
		name: "runtime/driver does not import the application API or generated-code support",
		from: []string{"runtime/driver"},
		banned: func(_ graph, path string) bool {
			return within(path, "runtime", "runtime/codegen", "runtime/tasktest")
		},
	},
	{
		name: "the monitor imports no broker client: the binary (cmd/taskmon) links the transports",
		from: []string{"monitor"},
		banned: func(_ graph, path string) bool {
			return brokerClient(path) || within(path, transports...)
		},
	},
}

// exclusive is a dependency only some packages of the module may have,
// directly or not: every other package of the module is checked.
type exclusive struct {
	name    string
	allowed []string // module-relative packages or trees ("x/...")
	banned  func(path string) bool
}

// exclusives are the "only X may import Y" rules of docs/ARCHITECTURE.md.
var exclusives = []exclusive{
	{
		name:    "only runtime/prom, the monitor (monitor, cmd/taskmon) and the example import Prometheus' client: the runtime and the transports link none of it",
		allowed: []string{"runtime/prom", "monitor/...", "cmd/taskmon", "example/..."},
		banned:  func(path string) bool { return strings.HasPrefix(path, "github.com/prometheus/") },
	},
}

// exclusiveViolations checks exs against g: one message per package of the
// module outside a rule's allowed list that depends on what it bans.
func exclusiveViolations(g graph, exs []exclusive) []string {
	var out []string
	for _, ex := range exs {
		for _, root := range slices.Sorted(maps.Keys(g)) {
			if root != module && !strings.HasPrefix(root, module+"/") || within(root, ex.allowed...) {
				continue
			}
			if chain := findChain(g, root, ex.banned); chain != nil {
				out = append(out, fmt.Sprintf("%s: broken by the import chain %s", ex.name, strings.Join(chain, " -> ")))
			}
		}
	}
	return out
}

// required are direct imports a package must have.
var required = map[string][]string{
	"runtime/memory": {"runtime/driver"},
	"runtime/redis":  {"runtime/driver"},
	"runtime/amqp":   {"runtime/driver"},
}

// violations checks rules and required against g and returns one message
// per broken rule and package, naming the shortest offending import chain.
func violations(g graph, rules []rule, required map[string][]string) []string {
	var out []string
	for _, r := range rules {
		for _, from := range r.from {
			root := module + "/" + from
			if _, ok := g[root]; !ok {
				out = append(out, fmt.Sprintf("%s: package %s is not in the module (update the rule)", r.name, root))
				continue
			}
			if chain := findChain(g, root, func(p string) bool { return r.banned(g, p) }); chain != nil {
				out = append(out, fmt.Sprintf("%s: broken by the import chain %s", r.name, strings.Join(chain, " -> ")))
			}
		}
	}
	for from, deps := range required {
		root := module + "/" + from
		for _, dep := range deps {
			if !slices.Contains(g[root].imports, module+"/"+dep) {
				out = append(out, fmt.Sprintf("%s must import %s directly", root, module+"/"+dep))
			}
		}
	}
	slices.Sort(out)
	return out
}

// findChain returns the shortest import chain from root to a package bad
// reports, or nil. root itself is never bad.
func findChain(g graph, root string, bad func(string) bool) []string {
	prev := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p != root && bad(p) {
			var chain []string
			for q := p; q != ""; q = prev[q] {
				chain = append(chain, q)
			}
			slices.Reverse(chain)
			return chain
		}
		for _, imp := range g[p].imports {
			if _, seen := prev[imp]; !seen {
				prev[imp] = p
				queue = append(queue, imp)
			}
		}
	}
	return nil
}

// loadGraph runs go list -deps over the whole module.
func loadGraph(t *testing.T) graph {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("no go command:", err)
	}
	cmd := exec.Command(goCmd, "list", "-e", "-deps", "-f", "{{.ImportPath}} {{.Standard}} {{join .Imports \" \"}}", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "go list -deps: %s", stderr.String())
	g := graph{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		g[f[0]] = pkg{standard: f[1] == "true", imports: f[2:]}
	}
	require.NoError(t, sc.Err())
	return g
}

// TestImportRules enforces the rules of docs/ARCHITECTURE.md on the module
// as it is. Test-only imports are not checked: a transport's tests may run
// it under the application API.
func TestImportRules(t *testing.T) {
	t.Parallel()
	g := loadGraph(t)
	for _, v := range violations(g, rules, required) {
		t.Error(v)
	}
	for _, v := range exclusiveViolations(g, exclusives) {
		t.Error(v)
	}
}

// TestExclusiveViolations checks that a package outside an exclusive
// rule's allowed list is reported, through another package too, and an
// allowed one is not.
func TestExclusiveViolations(t *testing.T) {
	t.Parallel()
	m := func(p string) string { return module + "/" + p }
	g := graph{
		m("ok"):           {imports: []string{"example.org/x"}},
		m("ok/sub"):       {imports: []string{"example.org/x/y"}},
		m("bad"):          {imports: []string{m("ok")}},
		m("clean"):        {imports: []string{"fmt"}},
		"fmt":             {standard: true},
		"example.org/x":   {},
		"example.org/x/y": {},
	}
	exs := []exclusive{{name: "only ok imports x", allowed: []string{"ok/..."},
		banned: func(p string) bool { return strings.HasPrefix(p, "example.org/x") }}}
	require.Equal(t, []string{
		"only ok imports x: broken by the import chain " + m("bad") + " -> " + m("ok") + " -> example.org/x",
	}, exclusiveViolations(g, exs))
}

// TestViolations checks that a broken rule is reported with its shortest
// import chain.
func TestViolations(t *testing.T) {
	t.Parallel()
	m := func(p string) string { return module + "/" + p }
	g := graph{
		m("a"):          {imports: []string{"fmt", "example.org/y"}},
		"fmt":           {standard: true},
		"example.org/y": {imports: []string{"fmt"}},
		m("b"):          {imports: []string{"fmt", m("d"), m("e")}},
		m("d"):          {imports: []string{m("c/sub")}},
		m("e"):          {imports: []string{m("d")}},
		m("c/sub"):      {},
	}
	rs := []rule{
		{name: "a imports only the standard library", from: []string{"a"},
			banned: func(g graph, p string) bool { return !g[p].standard }},
		{name: "b imports nothing of c", from: []string{"b", "gone"},
			banned: func(_ graph, p string) bool { return within(p, "c/...") }},
		{name: "d imports no a", from: []string{"d"},
			banned: func(_ graph, p string) bool { return within(p, "a") }},
	}
	require.Equal(t, []string{
		"a imports only the standard library: broken by the import chain " + m("a") + " -> example.org/y",
		"b imports nothing of c: broken by the import chain " + m("b") + " -> " + m("d") + " -> " + m("c/sub"),
		"b imports nothing of c: package " + m("gone") + " is not in the module (update the rule)",
		m("d") + " must import " + m("c") + " directly",
	}, violations(g, rs, map[string][]string{"d": {"c"}}))
}
