// Package reaper owns wait4. It starts child processes and reaps every child of pilotfish,
// its own and the orphans the kernel reparents to it, handing each exit status to whoever
// started that process.
//
// Concurrency: one mutex is held around fork/exec plus registration and around each round
// of wait4 calls, so a process can never be reaped before its waiter is registered, and
// syscall.ForkExec's own wait for a child whose exec failed never races the reaper. Nothing
// else in pilotfish may call wait4, os/exec's Wait or os.Process.Wait.
//
// How it waits (docs/jobs.md#pid-1-duties-and-signals). A context switch costs more than
// everything else a reap does, so the loop is built to wake one thread per batch:
//   - The loop blocks in waitid(P_ALL, WEXITED|WNOWAIT), which peeks at an exited child
//     without reaping it; the reaping stays in reap, under the mutex. It runs on the main
//     thread when cmd/pilotfish lends it (ServeMain), which takes process-wide signals first.
//   - SIGCHLD is at SIG_DFL while pilotfish has a child: the kernel drops it instead of
//     waking a thread to run Go's handler and os/signal's goroutine. Children still become
//     zombies (only SIG_IGN and SA_NOCLDWAIT reap by themselves). Nothing else in pilotfish
//     may ask for SIGCHLD.
//   - With no child at all (ECHILD), Go's handler is put back and the loop waits for Spawn or
//     for SIGCHLD: the kernel can reparent an orphan to PID 1 (a `docker exec` leftover)
//     without any Spawn, and its exit must still wake the loop.
//   - Orphans are reaped in batches: an orphan that exits within burstGap of the previous
//     reap waits up to batchWindow for the rest of its burst; until a batch brings no orphan,
//     the next batch is gathered at once, without waking at each orphan in waitid. Registered
//     processes never
//     wait: the batch window is a poll on their pidfds (and on an eventfd that Spawn and
//     Adopt write to), so it ends the moment one of them exits or is registered.
//
// Who calls it: core starts it first and hands it to the jobs as their Spawner; jobs start
// every process through Spawn and get the exit status on the process's channel.
package reaper
