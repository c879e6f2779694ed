// Package rules compiles and evaluates Helmdesk routing rules.
//
// A rule is a CEL condition and an action, exactly as admins write them:
//
//	{"condition": "user_level == 'VIP'", "action": "assign_to_group('premium')"}
//
// Conditions see the customer's profile (each key as a top-level variable, and the
// whole map as `profile`), `channel`, `page_url`, `department_id`, `intent`, `priority`,
// `history` (`previous_sessions`, `last_agent_id`, `last_group`), `hour`, `weekday`
// (0 = Sunday) and `now`, the time in the configured time zone. An identifier that is
// not built in is a profile attribute: when the profile lacks it the condition fails to
// evaluate and therefore does not match. A condition must type-check to bool (or dyn,
// for a bare profile attribute); one that yields anything but true does not match.
//
// Actions are parsed with the CEL parser and must be one call with literal arguments:
// assign_to_group('g'), round_robin('g'), assign_to_agent('id'[, 'fallback_group']),
// assign_to_last_agent('fallback_group') or queue('g'[, priority]).
package rules
