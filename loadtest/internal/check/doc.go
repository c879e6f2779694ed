// Package check is the conversation checker: given what each side of a conversation
// sent (and whether the server acknowledged it) and what each side received, in the
// order it received it, it counts every breach of the chat protocol's guarantees:
//
//   - lost: an acknowledged message the other side never received;
//   - duplicated: a seq a side received more than once, or a client_msg_id stored
//     under two different seqs (the idempotency of client_msg_id failed);
//   - reordered: a seq received after a higher one;
//   - gaps: a seq of the conversation that a side never received (its own messages
//     included: every socket of a session receives every message, in order).
//
// Unacknowledged messages that never arrived are not lost (the client was still
// entitled to resend them); they are counted as unacked. When the REST history of a
// conversation is given too, it is checked on its own (contiguous seqs, each
// client_msg_id once, every acknowledged message present) and against what each side
// received (the same client_msg_id at the same seq).
//
// The package is pure: it neither talks to a server nor keeps time.
package check
