module github.com/helmdesk/helmdesk/loadtest

go 1.26.0

require (
	github.com/coder/websocket v1.8.15
	github.com/helmdesk/helmdesk v0.0.0
)

// The load tester is its own module (its dependencies stay out of the services')
// but always builds against this repository's code, with or without go.work.
replace github.com/helmdesk/helmdesk => ../
