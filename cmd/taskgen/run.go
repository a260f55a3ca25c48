package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/taskgen/taskgen/generator"
)

// Exit codes of Run.
const (
	exitOK    = 0 // generated, or up to date with -check
	exitError = 1 // errors in the code or directives, or stale files with -check
	exitUsage = 2 // bad flags or arguments
)

// staleMessage is what -check prints when the files on disk differ from
// what taskgen would generate.
const staleMessage = "generated files aren't up to date: run go generate"

// Run runs taskgen with the command-line arguments args (without the program
// name) and returns the exit code. It is main without the process: tests
// call it directly.
func Run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("taskgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	check := fs.Bool("check", false, "write nothing; exit 1 listing the generated files that are stale, missing or left over")
	output := fs.String("o", generator.DefaultOutput, "name of the generated `file` in each package")
	dump := fs.Bool("dump", false, "write nothing; print the model of each package as JSON on standard output")
	verbose := fs.Bool("v", false, "report each file written or removed on standard error")
	tags := fs.String("tags", "", "comma-separated build `tags` to load the packages with")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: taskgen [-check] [-o file] [-dump] [-v] [-tags list] [packages]\n\n")
		fmt.Fprintf(stderr, "taskgen generates typed Celery task stubs for the //task: functions of the packages\n")
		fmt.Fprintf(stderr, "(default \".\", the package of the //go:generate line). Run 'go doc github.com/taskgen/taskgen/cmd/taskgen' for the manual.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *check && *dump {
		fmt.Fprintln(stderr, "taskgen: -check and -dump cannot be combined")
		fs.Usage()
		return exitUsage
	}
	if err := generator.CheckOutputName(*output); err != nil {
		fmt.Fprintf(stderr, "taskgen: -o: %v\n", err)
		return exitUsage
	}
	cfg := generator.Config{Patterns: fs.Args(), Output: *output}
	if *tags != "" {
		cfg.BuildFlags = []string{"-tags=" + *tags}
	}

	if *dump {
		pkgs, errs := generator.Load(cfg)
		if printErrors(stderr, errs) {
			return exitError
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(pkgs); err != nil {
			fmt.Fprintf(stderr, "taskgen: %v\n", err)
			return exitError
		}
		return exitOK
	}

	files, errs := generator.Generate(cfg)
	if printErrors(stderr, errs) {
		return exitError
	}
	if *check {
		stale, err := generator.Diff(files)
		if err != nil {
			fmt.Fprintf(stderr, "taskgen: %v\n", err)
			return exitError
		}
		if len(stale) == 0 {
			return exitOK
		}
		fmt.Fprintln(stderr, staleMessage)
		for _, path := range stale {
			fmt.Fprintf(stderr, "\t%s\n", displayPath(path))
		}
		return exitError
	}
	changed, err := generator.Write(files)
	if *verbose {
		written := map[string]bool{}
		for _, path := range changed {
			written[path] = true
		}
		for _, f := range files {
			switch {
			case !written[f.Path]:
				fmt.Fprintf(stderr, "unchanged %s\n", displayPath(f.Path))
			case f.Content == nil:
				fmt.Fprintf(stderr, "removed %s\n", displayPath(f.Path))
			default:
				fmt.Fprintf(stderr, "wrote %s\n", displayPath(f.Path))
			}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "taskgen: %v\n", err)
		return exitError
	}
	return exitOK
}

// printErrors prints errs one per line and reports whether there were any.
func printErrors(w io.Writer, errs []error) bool {
	for _, err := range errs {
		var e *generator.Error
		if errors.As(err, &e) && e.Pos.Filename != "" {
			fmt.Fprintln(w, e.Error())
		} else {
			fmt.Fprintf(w, "taskgen: %v\n", err)
		}
	}
	return len(errs) > 0
}

// displayPath shows path relative to the current directory when it is below it.
func displayPath(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	rel, err := filepath.Rel(wd, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return path
	}
	return rel
}
