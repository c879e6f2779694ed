// Package logkey names every structured-log attribute key used across Helmdesk, so
// that logs from all services can be queried with the same field names.
package logkey
