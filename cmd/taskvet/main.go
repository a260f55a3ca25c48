package main

import (
	"golang.org/x/tools/go/analysis/singlechecker"

	"github.com/taskgen/taskgen/taskvet"
)

func main() { singlechecker.Main(taskvet.Analyzer) }
