package main

import (
	"os"

	// //task:schedule ... tz=ZONE is checked with time.LoadLocation: the
	// embedded database makes the check the same on every machine.
	_ "time/tzdata"
)

func main() { os.Exit(Run(os.Args[1:], os.Stdout, os.Stderr)) }
