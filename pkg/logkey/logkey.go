package logkey

// Attribute keys. Use these rather than string literals in slog calls.
const (
	Service     = "service"
	Component   = "component"
	Error       = "err"
	TraceID     = "trace_id"
	SpanID      = "span_id"
	Addr        = "addr"
	Method      = "method"
	Route       = "route"
	Status      = "status"
	Duration    = "duration"
	SessionID   = "session_id"
	AgentID     = "agent_id"
	UserID      = "user_id"
	CustomerID  = "customer_id"
	ClientMsgID = "client_msg_id"
	Seq         = "seq"
	Topic       = "topic"
	Partition   = "partition"
	Offset      = "offset"
	Group       = "group"
	Count       = "count"
	RemoteAddr  = "remote_addr"
	EventType   = "event_type"
	Instance    = "instance"
)
