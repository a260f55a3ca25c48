package taskctl

import (
	"flag"
	"fmt"
	"strings"
)

// inspectVerbs are the inspect commands taskctl knows how to print.
var inspectVerbs = []string{"ping", "stats", "active", "reserved", "scheduled", "registered", "active_queues", "revoked"}

// destinationFlag adds -d NODE,… (Celery's --destination) to fs.
func destinationFlag(fs *flag.FlagSet) *string {
	return fs.String("d", "", "only the workers with these comma-separated node `names` (Celery's --destination), e.g. w1@host,w2@host")
}

// nodes splits a -d value.
func nodes(d string) []string {
	var out []string
	for _, n := range strings.Split(d, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// inspect: taskctl inspect [-d NODE,…] METHOD — Celery's `celery inspect METHOD`.
func (c *cli) inspect(args []string) error {
	fs := c.flags("inspect")
	dest := destinationFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	args = fs.Args()
	if len(args) != 1 {
		return usagef("want one of %s", strings.Join(inspectVerbs, ", "))
	}
	method := args[0]
	known := false
	for _, v := range inspectVerbs {
		known = known || v == method
	}
	if !known {
		return usagef("unknown inspect command %q (want one of %s)", method, strings.Join(inspectVerbs, ", "))
	}
	replies, err := c.ask(method, nil, nodes(*dest))
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(replies)
	}
	var rows [][]string
	var header []string
	for _, w := range sortedKeys(replies) {
		r := replies[w]
		switch method {
		case "ping":
			header = []string{"WORKER", "REPLY"}
			m, _ := r.(map[string]any)
			rows = append(rows, []string{w, str(m["ok"])})
		case "stats":
			header = []string{"WORKER", "PID", "CONCURRENCY", "PREFETCH", "UPTIME", "PROCESSED"}
			m, _ := r.(map[string]any)
			pool, _ := m["pool"].(map[string]any)
			var total int64
			if t, ok := m["total"].(map[string]any); ok {
				for _, n := range t {
					f, _ := n.(float64)
					total += int64(f)
				}
			}
			up := ""
			if f, ok := m["uptime"].(float64); ok {
				up = fmt.Sprint(int64(f)) + "s"
			}
			rows = append(rows, []string{w, str(m["pid"]), str(pool["max-concurrency"]), str(m["prefetch_count"]), up, fmt.Sprint(total)})
		case "active", "reserved", "scheduled":
			header = []string{"WORKER", "ID", "TASK", "ARGS", "KWARGS"}
			if method == "scheduled" {
				header = append(header, "ETA")
			}
			list, _ := r.([]any)
			for _, e := range list {
				m, _ := e.(map[string]any)
				eta := ""
				if method == "scheduled" {
					eta = str(m["eta"])
					m, _ = m["request"].(map[string]any)
				}
				row := []string{w, str(m["id"]), str(m["name"]), str(m["args"]), str(m["kwargs"])}
				if method == "scheduled" {
					row = append(row, eta)
				}
				rows = append(rows, row)
			}
		case "registered", "revoked":
			header = []string{"WORKER", "TASK"}
			if method == "revoked" {
				header[1] = "ID"
			}
			list, _ := r.([]any)
			for _, e := range list {
				rows = append(rows, []string{w, str(e)})
			}
		case "active_queues":
			header = []string{"WORKER", "QUEUE"}
			list, _ := r.([]any)
			for _, e := range list {
				m, _ := e.(map[string]any)
				rows = append(rows, []string{w, str(m["name"])})
			}
		}
	}
	if header == nil {
		header = []string{"WORKER"}
	}
	return c.table(header, rows)
}

// control: taskctl control revoke|rate_limit|shutdown … — Celery's
// `celery control …`.
func (c *cli) control(args []string) error {
	if len(args) == 0 {
		return usagef("want revoke, rate_limit or shutdown")
	}
	fs := c.flags("control " + args[0])
	dest := destinationFlag(fs)
	switch args[0] {
	case "revoke":
		terminate := fs.Bool("terminate", false, "also cancel the task if it is running (SIGTERM for Python workers)")
		signal := fs.String("signal", "SIGTERM", "signal for -terminate on Python workers")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			return usagef("revoke: want one or more task ids")
		}
		return c.controlReplies("revoke", map[string]any{"task_id": fs.Args(), "terminate": *terminate, "signal": *signal}, nodes(*dest))
	case "rate_limit":
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 2 {
			return usagef(`rate_limit: want TASK RATE (RATE as Celery's: "10/m", "5/s", "100/h"; "0" or "" removes the limit)`)
		}
		return c.controlReplies("rate_limit", map[string]any{"task_name": fs.Arg(0), "rate_limit": fs.Arg(1)}, nodes(*dest))
	case "shutdown":
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 0 {
			return usagef("shutdown takes no arguments (but -d NODE,…)")
		}
		// A cast: Celery's workers (and Go's) shut down without replying.
		to := nodes(*dest)
		if _, err := c.app.Control(c.ctx, "shutdown", nil, to, 0); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(map[string]any{"sent": "shutdown", "destination": to})
		}
		who := "every worker"
		if len(to) > 0 {
			who = strings.Join(to, ", ")
		}
		_, err := fmt.Fprintf(c.out, "shutdown sent to %s (workers do not reply: check with inspect ping)\n", who)
		return err
	}
	return usagef("unknown control command %q (want revoke, rate_limit or shutdown)", args[0])
}

// controlReplies sends a control command, waits for replies and prints
// them. A reply carrying "error" makes the command fail, except rate_limit's
// "unknown task" from workers that do not run the task when another worker
// set the limit (fleets differ in the tasks they register).
func (c *cli) controlReplies(method string, args map[string]any, destination []string) error {
	replies, err := c.ask(method, args, destination)
	if err != nil {
		return err
	}
	if c.json {
		if err := c.printJSON(replies); err != nil {
			return err
		}
	}
	var rows [][]string
	failed, unknown := 0, 0
	for _, w := range sortedKeys(replies) {
		m, _ := replies[w].(map[string]any)
		if e, ok := m["error"]; ok {
			if method == "rate_limit" && e == "unknown task" {
				unknown++
			} else {
				failed++
			}
			rows = append(rows, []string{w, "error: " + str(e)})
			continue
		}
		rows = append(rows, []string{w, str(m["ok"])})
	}
	if !c.json {
		if err := c.table([]string{"WORKER", "REPLY"}, rows); err != nil {
			return err
		}
	}
	switch {
	case failed > 0:
		return fmt.Errorf("%d of %d workers answered with an error", failed, len(replies))
	case unknown == len(replies):
		return fmt.Errorf("no worker that answered runs task %q (taskctl inspect registered lists them)", args["task_name"])
	}
	return nil
}
