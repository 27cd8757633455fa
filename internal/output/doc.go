// Package output carries job output to pilotfish's stdout and stderr and to log files.
//
// A Sink is one destination shared by every job; it writes whole lines only, under its own
// mutex, so two jobs never interleave inside a line. Writes are synchronous: a slow terminal
// slows the job that writes (its pipe fills), and no line is ever dropped. A Copier reads one
// pipe of one job, splits it into lines (at most MaxLine bytes each; longer lines are split),
// prefixes them and hands batches of whole lines to the Sink. RotatingFile is a size-rotated
// copy of a job's output.
package output
