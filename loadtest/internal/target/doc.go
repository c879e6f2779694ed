// Package target is what the load tester may aim at and how it starts it.
//
// [CheckLoopback] refuses every URL whose host is not a loopback address: the tool
// is a load generator and must never hit a machine it was not meant for.
//
// [Start] runs Helmdesk from a built binary in one of two layouts, each process in
// its own process group with its output in a log file:
//
//   - dev: one `helmdesk dev` process (every service on embedded dependencies);
//   - split: `helmdesk devstack` (the embedded dependencies alone, whose addresses
//     it prints as HELMDESK_*=… lines), `helmdesk serve session routing` and
//     `helmdesk serve gateway`, wired together over loopback ports.
//
// [Cluster.Chaos] SIGKILLs a process's whole group, waits a moment, starts it again
// with the same environment and ports and waits until GET /readyz answers 200; the
// clients are left to reconnect and resume on their own. [Cluster.Stop] kills every
// process group; on Linux children also get SIGKILL if the tool itself dies.
package target
