package frames

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"
)

// Frame types.
const (
	TypeMessage = "message"
	TypeResume  = "resume"
	TypeAck     = "ack"
	TypeSession = "session"
	TypeError   = "error"
	TypeResumed = "resumed"
	TypeTyping  = "typing"
	TypeRead    = "read"
)

// Sender types.
const (
	SenderCustomer = "customer"
	SenderAgent    = "agent"
	SenderBot      = "bot"
	SenderSystem   = "system"
)

// Session statuses as they appear in frames and the REST API.
const (
	StatusQueued   = "queued"
	StatusAssigned = "assigned"
	StatusClosed   = "closed"
)

// MaxTextBytes bounds a message's text.
const MaxTextBytes = 16 << 10

// MaxClientMsgIDBytes bounds a client message id.
const MaxClientMsgIDBytes = 128

// Sender says who wrote a message.
type Sender struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// Message is the server→client message frame, also the shape of a message in the
// REST history.
type Message struct {
	Type        string `json:"type"`
	SessionID   string `json:"session_id"`
	Seq         int64  `json:"seq"`
	ClientMsgID string `json:"client_msg_id"`
	Sender      Sender `json:"sender"`
	Text        string `json:"text"`
	// Event names what a system message reports ("closed", "transferred", ...).
	Event     string    `json:"event,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Session is the server→client status frame.
type Session struct {
	Type          string `json:"type"`
	SessionID     string `json:"session_id"`
	Status        string `json:"status"`
	AgentID       string `json:"agent_id"`
	Group         string `json:"group,omitempty"`
	QueuePosition int64  `json:"queue_position,omitempty"`
	CSATRequested bool   `json:"csat_requested,omitempty"`
}

// Ack confirms that a client message is durable, with the seq it was given (absent
// only when sequencing is delayed; the message frame carries it then).
type Ack struct {
	Type        string `json:"type"`
	ClientMsgID string `json:"client_msg_id"`
	SessionID   string `json:"session_id,omitempty"`
	Seq         int64  `json:"seq,omitempty"`
}

// Typing tells the other side someone is typing ("start") or stopped ("stop").
type Typing struct {
	Type      string `json:"type"`
	SessionID string `json:"session_id"`
	Sender    Sender `json:"sender"`
	State     string `json:"state"`
}

// Read tells the other side someone has read up to Seq.
type Read struct {
	Type      string `json:"type"`
	SessionID string `json:"session_id"`
	Sender    Sender `json:"sender"`
	Seq       int64  `json:"seq"`
}

// Error reports a problem with a frame; the connection stays usable.
type Error struct {
	Type        string `json:"type"`
	Code        string `json:"code"`
	Message     string `json:"message"`
	ClientMsgID string `json:"client_msg_id,omitempty"`
	SessionID   string `json:"session_id,omitempty"`
}

// Resumed follows the replay a resume asked for: every message up to LastSeq has been
// sent. When History is true the gap was too large to replay over the socket and the
// client must fetch GET /api/v1/sessions/{id}/messages?after_seq=N first.
type Resumed struct {
	Type      string `json:"type"`
	SessionID string `json:"session_id"`
	LastSeq   int64  `json:"last_seq"`
	History   bool   `json:"history,omitempty"`
}

// Client is any client→server frame.
type Client struct {
	Type        string `json:"type"`
	SessionID   string `json:"session_id,omitempty"`
	ClientMsgID string `json:"client_msg_id,omitempty"`
	Text        string `json:"text,omitempty"`
	LastSeq     *int64 `json:"last_seq,omitempty"`
	State       string `json:"state,omitempty"`
	Seq         int64  `json:"seq,omitempty"`
}

// SessionChannel is the pub/sub channel of everything a session's participants see.
func SessionChannel(sessionID string) string { return "hd:fanout:session:" + sessionID }

// AgentChannel is the pub/sub channel of everything addressed to one agent.
func AgentChannel(agentID string) string { return "hd:fanout:agent:" + agentID }

// Encode builds a fan-out payload.
func Encode(acceptedAt time.Time, frame any) ([]byte, error) {
	body, err := json.Marshal(frame)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 8, 8+len(body))
	if !acceptedAt.IsZero() {
		binary.BigEndian.PutUint64(out, uint64(acceptedAt.UnixNano()))
	}
	return append(out, body...), nil
}

// Decode splits a fan-out payload.
func Decode(payload []byte) (acceptedAt time.Time, frame []byte, err error) {
	if len(payload) < 8 {
		return time.Time{}, nil, errors.New("fan-out payload shorter than its header")
	}
	if ns := binary.BigEndian.Uint64(payload[:8]); ns != 0 {
		acceptedAt = time.Unix(0, int64(ns))
	}
	return acceptedAt, payload[8:], nil
}
