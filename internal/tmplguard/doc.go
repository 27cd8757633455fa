// Package tmplguard bounds the run of a Go text/template whose text comes from a user (a
// ContainerPilot configuration, a template block): Go's engine has no limit of its own, and a
// `range` over a huge list, a recursion through `template`, a `printf "%1000000d"` or a
// string doubled in a loop would take a PID 1's memory and time.
//
// A Meter counts one run: the nodes run inside loops and template calls (Instrument puts a
// call to it at the top of each loop body and template body), the bytes the functions
// return, and the time. Funcs are bounded versions of the builtins that build strings and of
// the common helpers (join, split, replaceAll, regexReplaceAll, loop). TooNested refuses a
// text nested too deeply before Go's parser, which recurses, sees it.
//
// Concurrency: a Meter belongs to one run; the package holds no state.
// Used by config/containerpilot and template (docs/templates.md#limits).
package tmplguard
