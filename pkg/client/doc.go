// Package client is a Go client for Helmdesk's public API: the REST endpoints under
// /api/v1 and the customer and agent WebSockets. The end-to-end tests, the load tester
// and the helmdesk command's admin sub-commands use it; integrators may too.
package client
