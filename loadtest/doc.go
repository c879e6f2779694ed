// Package loadtest is Helmdesk's load tester: a separate Go module (so the services'
// module stays free of its needs) holding a tool that speaks the real public
// protocols — the REST API and the customer and agent WebSockets, through
// github.com/helmdesk/helmdesk/pkg/client — and proves that conversations never lose
// a message.
//
// It simulates N customers and M agents: it sets the target up (first-run setup or an
// admin sign-in), creates the agents with enough capacity for every customer, puts
// them online, then ramps customer sessions up at a bounded rate and has every
// customer send messages at a configured rate while every agent answers each customer
// message it receives. Both sides reconnect and resume after a dropped socket. At the
// end it stops sending, drains in-flight deliveries, cross-checks every conversation
// against the REST history and reports throughput, latency, errors, reconnects and
// the checker's verdict: lost, duplicated, reordered messages and gaps.
//
// Optionally it starts the target itself from a built helmdesk binary, as one
// process (`helmdesk dev`) or as separate processes (`helmdesk devstack`, `helmdesk
// serve session routing`, `helmdesk serve gateway`), and kills and restarts those
// processes while the load runs (chaos).
//
// Layout:
//
//	cmd/loadtest        the command (flags → load.Config → load.Run → report)
//	internal/load       the driver: agents, customers, the shared send scheduler, drain
//	internal/check      the conversation checker (pure: recorded logs in, verdict out)
//	internal/stats      latency histograms and percentiles
//	internal/report     the report, its verdict, and its text and JSON forms
//	internal/target     starting, killing and restarting helmdesk processes; loopback guard
//
// The tool usually shares its host with the target, so its own garbage collector is
// part of what it measures. Unless GOGC or GOMEMLIMIT is set, it does not collect until
// its heap reaches half of the memory the host had available at start (GOGC 400 on a
// host with less than 2 GiB available): a run of a few minutes at thousands of messages
// per second then never collects, at the price of a peak RSS of a GiB or two.
//
// For the same reason its sockets are opened lean: a WebSocket handshake goes over a
// connection dialled for it, one write and one read (internal/load/upgrade.go),
// rather than through net/http's transport, whose goroutines and buffers per
// connection are thrown away once it is a socket. After a restart the tool reopens
// thousands of sockets within a second or two, and what each costs it is taken from
// the restarted process it measures.
//
// The integration tests in this package build helmdesk and run the tool against both
// layouts, with chaos on the split one. See cmd/loadtest for usage.
package loadtest
