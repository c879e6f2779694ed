// Package store connects to MongoDB (mongo-driver v2) with pool metrics and command
// spans, and creates each service's indexes at start. Services own their collections;
// nothing here knows a domain type. Code stays within the MongoDB subset that FerretDB
// also serves (no transactions, change streams or TTL indexes), so the embedded
// development stack runs the production code.
package store
