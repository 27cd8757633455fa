// Package reaper owns wait4. It starts child processes and reaps every child of pilotfish,
// its own and the orphans the kernel reparents to it, handing each exit status to whoever
// started that process.
//
// Concurrency: one mutex is held around fork/exec plus registration and around each round
// of wait4 calls, so a process can never be reaped before its waiter is registered, and
// syscall.ForkExec's own wait for a child whose exec failed never races the reaper. Nothing
// else in pilotfish may call wait4, os/exec's Wait or os.Process.Wait.
//
// Who calls it: core starts it first and hands it to the jobs as their Spawner; jobs start
// every process through Spawn and get the exit status on the process's channel.
package reaper
