package main

import (
	// //task:schedule ... tz=ZONE is checked with time.LoadLocation: the
	// embedded database makes the check the same on every machine.
	_ "time/tzdata"

	"golang.org/x/tools/go/analysis/singlechecker"

	"github.com/taskgen/taskgen/taskvet"
)

func main() { singlechecker.Main(taskvet.Analyzer) }
