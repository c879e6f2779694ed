// Package stats records latencies in bounded memory and reads percentiles from
// them: a log-linear histogram (like HdrHistogram) with 128 sub-buckets per power of
// two of microseconds, so every percentile is within 1% of the exact value whatever
// the number of samples, and the maximum is exact.
package stats
