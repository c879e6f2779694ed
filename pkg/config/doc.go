// Package config declares settings once and reads them from flags and the environment.
//
// Every setting has a flag name, an environment variable, a default and a usage line.
// Values come from the default, then the environment, then the command line, and are
// validated after parsing. The same declarations render the reference page
// docs/configuration.md, so the documentation cannot drift from the code.
package config
