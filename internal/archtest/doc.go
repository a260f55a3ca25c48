// Package archtest enforces the import rules of docs/ARCHITECTURE.md: which
// packages of the module may depend on which. It has no API; its test runs
// go list -deps over the module and fails naming the import chain that
// breaks a rule.
package archtest
