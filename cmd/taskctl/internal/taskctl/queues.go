package taskctl

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/term"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
)

// queues: taskctl queues [QUEUE…] — lengths, consuming workers (from
// inspect active_queues) and dead letters.
func (c *cli) queues(args []string) error {
	b := c.app.Broker()
	consumers := map[string]int{}
	names := map[string]bool{}
	for _, q := range args {
		names[q] = true
	}
	// Workers that answer active_queues name the queues they consume; none
	// answering is not an error here (queues still have lengths).
	replies, err := c.app.Inspect(c.ctx, "active_queues", nil, c.timeout)
	if err != nil && !errors.Is(err, runtime.ErrNoControl) {
		return err
	}
	for _, r := range replies {
		list, _ := r.([]any)
		for _, e := range list {
			m, _ := e.(map[string]any)
			if q, _ := m["name"].(string); q != "" {
				consumers[q]++
				if len(args) == 0 {
					names[q] = true
				}
			}
		}
	}
	if len(names) == 0 {
		names[c.app.Config().DefaultQueue] = true
	}
	qi, _ := b.(driver.QueueInspector)
	ds, _ := b.(driver.DeadLetterStore)
	type row struct {
		Name      string `json:"name"`
		Ready     *int64 `json:"ready"`
		Consumers int    `json:"consumers"`
		Dead      *int64 `json:"dead_letters"`
		Error     string `json:"error,omitempty"`
	}
	var out []row
	sorted := make([]string, 0, len(names))
	for q := range names {
		sorted = append(sorted, q)
	}
	sort.Strings(sorted)
	failed := 0
	for _, q := range sorted {
		r := row{Name: q, Consumers: consumers[q]}
		var errs []string
		if qi != nil {
			if n, err := qi.QueueLength(c.ctx, q); err == nil {
				r.Ready = &n
			} else {
				errs = append(errs, err.Error())
			}
		}
		if ds != nil {
			if n, err := ds.CountDeadLetters(c.ctx, q); err == nil {
				r.Dead = &n
			} else {
				errs = append(errs, err.Error())
			}
		}
		if len(errs) > 0 {
			failed++
			r.Error = strings.Join(errs, "; ")
		}
		out = append(out, r)
	}
	if c.json {
		if err := c.printJSON(out); err != nil {
			return err
		}
	} else {
		num := func(p *int64) string {
			if p == nil {
				return "-"
			}
			return strconv.FormatInt(*p, 10)
		}
		var rows [][]string
		for _, r := range out {
			rows = append(rows, []string{r.Name, num(r.Ready), strconv.Itoa(r.Consumers), num(r.Dead), r.Error})
		}
		if err := c.table([]string{"QUEUE", "READY", "CONSUMERS", "DEAD", "ERROR"}, rows); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d queues could not be read", failed, len(out))
	}
	return nil
}

// isTerminal reports whether r is a terminal: a file descriptor the
// terminal driver answers for (/dev/null is not one), or a reader that says
// it is one (tests).
func isTerminal(r io.Reader) bool {
	switch f := r.(type) {
	case interface{ Fd() uintptr }:
		return term.IsTerminal(int(f.Fd()))
	case interface{ IsTerminal() bool }:
		return f.IsTerminal()
	}
	return false
}

// purge: taskctl purge [-y] QUEUE… — `celery purge -Q QUEUE`.
func (c *cli) purge(args []string) error {
	fs := c.flags("purge")
	yes := fs.Bool("y", false, "do not ask for confirmation")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("want one or more queue names")
	}
	p, ok := c.app.Broker().(driver.QueuePurger)
	if !ok {
		return fmt.Errorf("the %T transport cannot purge queues", c.app.Broker())
	}
	queues := fs.Args()
	if !*yes {
		if !isTerminal(c.stdin) {
			return fmt.Errorf("%w: stdin is not a terminal; pass -y to purge without asking", errAborted)
		}
		total := ""
		if qi, ok := c.app.Broker().(driver.QueueInspector); ok {
			var n int64
			for _, q := range queues {
				l, _ := qi.QueueLength(c.ctx, q)
				n += l
			}
			total = strconv.FormatInt(n, 10) + " "
		}
		fmt.Fprintf(c.errw, "Purge %smessages from %s? This cannot be undone. [y/N] ", total, strings.Join(queues, ", "))
		line, _ := bufio.NewReader(c.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			return fmt.Errorf("%w: nothing purged", errAborted)
		}
	}
	type row struct {
		Queue  string `json:"queue"`
		Purged int64  `json:"purged"`
	}
	var out []row
	var rows [][]string
	for _, q := range queues {
		n, err := p.PurgeQueue(c.ctx, q)
		if err != nil {
			return err
		}
		out = append(out, row{q, n})
		rows = append(rows, []string{q, strconv.FormatInt(n, 10)})
	}
	if c.json {
		return c.printJSON(out)
	}
	return c.table([]string{"QUEUE", "PURGED"}, rows)
}

// deadLetter: taskctl dead-letter list|requeue|drop.
func (c *cli) deadLetter(args []string) error {
	if len(args) == 0 {
		return usagef("want list, requeue or drop")
	}
	ds, ok := c.app.Broker().(driver.DeadLetterStore)
	if !ok {
		return fmt.Errorf("the %T transport keeps no dead letters taskctl can read", c.app.Broker())
	}
	sub := args[0]
	fs := c.flags("dead-letter " + sub)
	queue := fs.String("queue", c.app.Config().DefaultQueue, "the queue whose dead letters to use (comma-separated for several)")
	switch sub {
	case "list":
		limit := fs.Int("limit", 100, "at most this many per queue (0: all)")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usagef("list takes no arguments (use -queue Q)")
		}
		out := []driver.DeadLetter{}
		for _, q := range strings.Split(*queue, ",") {
			l, err := ds.ListDeadLetters(c.ctx, q, *limit)
			if err != nil {
				return err
			}
			out = append(out, l...)
		}
		if c.json {
			type entry struct {
				ID       string `json:"id"`
				Task     string `json:"task"`
				Queue    string `json:"queue"`
				Reason   string `json:"reason"`
				Time     string `json:"time,omitempty"`
				Hostname string `json:"hostname,omitempty"`
				Args     string `json:"args,omitempty"`
				Kwargs   string `json:"kwargs,omitempty"`
				Size     int    `json:"size"`
			}
			list := []entry{}
			for _, d := range out {
				e := entry{ID: d.ID, Task: d.Task, Queue: d.Queue, Reason: d.Reason, Hostname: d.Hostname, Size: d.Size}
				if !d.Time.IsZero() {
					e.Time = d.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
				}
				if d.Message != nil {
					e.Args, e.Kwargs = d.Message.Headers.ArgsRepr, d.Message.Headers.KwargsRepr
				}
				list = append(list, e)
			}
			return c.printJSON(list)
		}
		var rows [][]string
		for _, d := range out {
			rows = append(rows, []string{d.ID, d.Task, d.Queue, fmtTime(d.Time), d.Reason})
		}
		return c.table([]string{"ID", "TASK", "QUEUE", "TIME", "REASON"}, rows)
	case "requeue", "drop":
		all := fs.Bool("all", false, "every dead letter of the queue")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if *all == (fs.NArg() > 0) {
			return usagef("%s: want -all or one or more ids (from taskctl dead-letter list)", sub)
		}
		type row struct {
			Queue string `json:"queue"`
			N     int    `json:"count"`
		}
		var out []row
		var rows [][]string
		for _, q := range strings.Split(*queue, ",") {
			ids := fs.Args()
			if *all {
				l, err := ds.ListDeadLetters(c.ctx, q, 0)
				if err != nil {
					return err
				}
				ids = nil
				for _, d := range l {
					ids = append(ids, d.ID)
				}
			}
			var n int
			var err error
			if sub == "requeue" {
				n, err = ds.RequeueDeadLetters(c.ctx, q, ids)
			} else {
				n, err = ds.DropDeadLetters(c.ctx, q, ids)
			}
			if err != nil {
				return err
			}
			out = append(out, row{q, n})
			rows = append(rows, []string{q, strconv.Itoa(n)})
		}
		if c.json {
			return c.printJSON(out)
		}
		verb := "REQUEUED"
		if sub == "drop" {
			verb = "DROPPED"
		}
		return c.table([]string{"QUEUE", verb}, rows)
	}
	return usagef("unknown dead-letter command %q (want list, requeue or drop)", sub)
}
