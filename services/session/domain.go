package session

import (
	"time"

	"github.com/helmdesk/helmdesk/pkg/frames"
)

// Status of a session.
type Status string

// Session statuses.
const (
	StatusQueued   Status = frames.StatusQueued
	StatusAssigned Status = frames.StatusAssigned
	StatusClosed   Status = frames.StatusClosed
)

// Session is one conversation between a customer and the service team.
type Session struct {
	ID         string         `bson:"_id"`
	CustomerID string         `bson:"customer_id"`
	UserID     string         `bson:"user_id"`
	Channel    string         `bson:"channel"`
	PageURL    string         `bson:"page_url"`
	Profile    map[string]any `bson:"profile"`
	// Sensitive holds encrypted profile attributes (phone, email) by name.
	Sensitive       map[string]string `bson:"sensitive,omitempty"`
	Status          Status            `bson:"status"`
	AgentID         string            `bson:"agent_id"`
	Group           string            `bson:"group"`
	CreatedAt       time.Time         `bson:"created_at"`
	AssignedAt      *time.Time        `bson:"assigned_at,omitempty"`
	FirstResponseAt *time.Time        `bson:"first_response_at,omitempty"`
	ClosedAt        *time.Time        `bson:"closed_at,omitempty"`
	ClosedBy        string            `bson:"closed_by,omitempty"`
	CloseReason     string            `bson:"close_reason,omitempty"`
	// Agents lists every agent the session was ever assigned to, for "assigned to
	// them, now or before" access.
	Agents        []string `bson:"agents,omitempty"`
	CSAT          *CSAT    `bson:"csat,omitempty"`
	LastSeq       int64    `bson:"-"`
	LastSeqKnown  bool     `bson:"-"` // LastSeq was read, not left at 0 for want of state
	QueuePosition int64    `bson:"-"`
}

// CSAT is a customer's rating of a closed session.
type CSAT struct {
	Score       int       `bson:"score"`
	Comment     string    `bson:"comment"`
	SubmittedAt time.Time `bson:"submitted_at"`
}

// Actor is who did something.
type Actor struct {
	Type string // customer, agent, system
	ID   string
}

// Customer is a person who chats; identified by the site's user id.
type Customer struct {
	ID           string         `bson:"_id"`
	UserID       string         `bson:"user_id"`
	Profile      map[string]any `bson:"profile"`
	LastAgentID  string         `bson:"last_agent_id"`
	SessionCount int64          `bson:"session_count"`
	CreatedAt    time.Time      `bson:"created_at"`
	LastSeenAt   time.Time      `bson:"last_seen_at"`
}

// Sender says who wrote a message.
type Sender struct {
	Type string `bson:"type"`
	ID   string `bson:"id"`
}

// Message is a persisted chat message.
type Message struct {
	ID          string    `bson:"_id"` // session id + ":" + zero-padded seq
	SessionID   string    `bson:"session_id"`
	Seq         int64     `bson:"seq"`
	ClientMsgID string    `bson:"client_msg_id"`
	Sender      Sender    `bson:"sender"`
	Text        string    `bson:"text"`
	Event       string    `bson:"event,omitempty"`
	CreatedAt   time.Time `bson:"created_at"`
}

// Frame converts the message to its wire frame.
func (m Message) Frame() frames.Message {
	return frames.Message{
		Type:        frames.TypeMessage,
		SessionID:   m.SessionID,
		Seq:         m.Seq,
		ClientMsgID: m.ClientMsgID,
		Sender:      frames.Sender{Type: m.Sender.Type, ID: m.Sender.ID},
		Text:        m.Text,
		Event:       m.Event,
		CreatedAt:   m.CreatedAt,
	}
}
