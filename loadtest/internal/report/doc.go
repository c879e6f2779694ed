// Package report holds the load test's report: what was measured, the checker's
// verdict, the verdict of the whole run ([Report.Evaluate]), and its human-readable
// ([Report.WriteText]) and JSON forms.
package report
