// Package output carries job output to pilotfish's stdout and stderr and to log files.
//
// A Sink is one destination shared by every job; it writes whole lines only, one write at a
// time, so two jobs never interleave inside a line. Writes are synchronous: a slow terminal
// slows the job that writes (its pipe fills), and no line is dropped while pilotfish runs.
// Only at the shutdown deadline does the daemon abandon a sink nobody reads: what is still
// pending is then dropped and counted (docs/jobs.md, "Shutdown"). A Copier reads one pipe of
// one job, splits it into lines (at most MaxLine bytes each; longer lines are split),
// prefixes them and hands batches of whole lines to the Sink. A LogWriter queues pilotfish's
// own log lines for a Sink so that logging never blocks. RotatingFile is a size-rotated copy
// of a job's output.
package output
