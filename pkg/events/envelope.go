package events

import (
	"fmt"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/events/v1"
)

// Topic names.
const (
	// TopicInbound carries every message customers and agents send, keyed by session id.
	TopicInbound = "helmdesk.inbound"
	// TopicEvents carries domain events (chat_created, message_created, ...).
	TopicEvents = "helmdesk.events"
	// TopicRouting carries routing decisions made outside a request (queue drains).
	TopicRouting = "helmdesk.routing"
)

// Event types published on TopicEvents and TopicRouting.
const (
	TypeInboundMessage  = "inbound_message"
	TypeChatCreated     = "chat_created"
	TypeMessageCreated  = "message_created"
	TypeChatAssigned    = "chat_assigned"
	TypeSessionRouted   = "session_routed"
	TypeChatTransferred = "chat_transferred"
	TypeChatClosed      = "chat_closed"
	TypeCSATSubmitted   = "csat_submitted"
)

// NewEnvelope wraps payload in an envelope with a fresh time-ordered id.
func NewEnvelope(typ, source, subject string, payload proto.Message) (*eventsv1.Envelope, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("generate event id: %w", err)
	}
	anyPayload, err := anypb.New(payload)
	if err != nil {
		return nil, fmt.Errorf("pack %s payload: %w", typ, err)
	}
	return &eventsv1.Envelope{
		Id:      id.String(),
		Type:    typ,
		Time:    timestamppb.New(time.Now()),
		Source:  source,
		Subject: subject,
		Payload: anyPayload,
	}, nil
}

// Unmarshal decodes a record value into an envelope.
func Unmarshal(value []byte) (*eventsv1.Envelope, error) {
	env := &eventsv1.Envelope{}
	if err := proto.Unmarshal(value, env); err != nil {
		return nil, fmt.Errorf("decode event envelope: %w", err)
	}
	if env.GetType() == "" || env.GetPayload() == nil {
		return nil, fmt.Errorf("decode event envelope: missing type or payload")
	}
	return env, nil
}

// Payload unpacks an envelope's payload into dst.
func Payload(env *eventsv1.Envelope, dst proto.Message) error {
	if err := env.GetPayload().UnmarshalTo(dst); err != nil {
		return fmt.Errorf("decode %s payload: %w", env.GetType(), err)
	}
	return nil
}

// StableID derives an event id from a name that identifies the event uniquely (for
// example "message_created:<session>:<seq>"), so that re-publishing after a crash
// yields the same id and downstream consumers can deduplicate.
func StableID(name string) string {
	return uuid.NewSHA1(uuid.NameSpaceOID, []byte(name)).String()
}
