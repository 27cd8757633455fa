// Package config turns one HCL file (native syntax, or HCL's JSON syntax for *.json) into a
// plain, immutable Config.
//
// Loading is parse → decode → validate. Every problem becomes an hcl.Diagnostic with a source
// range, and all of them are returned together, so `pilotfish validate` shows every mistake at
// once. Cross-references (unknown trigger sources, codes nobody can emit, trigger cycles) are
// checked in a separate pass once every block is decoded.
//
// Job kinds decode their own keys: Load takes a table of Kind values (built by package jobs),
// so adding a kind does not touch this package.
//
// A file comes from anywhere and must never crash or hang its caller (PID 1): before HCL
// parses it, it is measured (size, nesting, tokens; scan.go), because HCL's parser and
// evaluator recurse and a stack overflow cannot be recovered; while it is evaluated, a guard
// between the nodes of its syntax tree bounds every value, their total and the time
// (guard.go). The limits are in limits.go and docs/configuration.md#limits.
//
// Nothing here keeps state between calls; a Config is never modified after Load returns.
package config
