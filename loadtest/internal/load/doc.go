// Package load is the load tester's driver: it sets the target up, creates and
// connects the agents, ramps the customers up, paces their messages, answers them
// as the agents, reconnects and resumes dropped sockets, injects chaos, drains, and
// hands what every side sent and received to the checker.
//
// Concurrency: every socket has exactly one goroutine, its reader, which also
// reconnects it, resuming in the upgrade request as the console and widget do.
// Nothing else reads a socket, and readers never write to their socket: every
// frame is written by a small pool of sender goroutines fed from one queue, and
// customers' messages are paced by one scheduler goroutine holding a heap of next
// send times. So a connection costs one goroutine plus its buffers, whatever the
// rate.
//
// Each conversation (conv) records, per side, the messages it created (with first
// send time, attempts, ack) and every message frame it received in order. Latency
// is the time from a message's first write to the other side's reader receiving
// it — one process, one clock. An unacknowledged message is resent with the same
// client_msg_id after a resume, after an error frame that asks for it, and when its
// ack is overdue on a live socket.
package load
