package session

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/helmdesk/helmdesk/pkg/fault"
	"github.com/helmdesk/helmdesk/pkg/frames"
	eventsv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/events/v1"
	sessionv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/session/v1"
)

// Register exposes the service over gRPC.
func (s *Service) Register(srv *grpc.Server) {
	sessionv1.RegisterSessionServiceServer(srv, &grpcPort{svc: s})
}

// grpcPort converts between protobuf and domain types and does nothing else.
type grpcPort struct {
	sessionv1.UnimplementedSessionServiceServer
	svc *Service
}

func (p *grpcPort) CreateSession(ctx context.Context, req *sessionv1.CreateSessionRequest) (*sessionv1.CreateSessionResponse, error) {
	sess, err := p.svc.CreateSession(ctx, CreateSessionInput{UserID: req.GetUserId(), Channel: req.GetChannel(), PageURL: req.GetPageUrl(), Profile: req.GetProfile().AsMap()})
	if err != nil {
		return nil, err
	}
	pb, err := p.sessionProto(sess)
	if err != nil {
		return nil, err
	}
	return &sessionv1.CreateSessionResponse{Session: pb}, nil
}

func (p *grpcPort) GetSession(ctx context.Context, req *sessionv1.GetSessionRequest) (*sessionv1.GetSessionResponse, error) {
	get := p.svc.GetSession
	if req.GetSummary() {
		get = p.svc.SessionSummary
	}
	sess, err := get(ctx, req.GetSessionId())
	if err != nil {
		return nil, err
	}
	pb, err := p.sessionProto(sess)
	if err != nil {
		return nil, err
	}
	return &sessionv1.GetSessionResponse{Session: pb}, nil
}

func (p *grpcPort) GetSessionSummaries(ctx context.Context, req *sessionv1.GetSessionSummariesRequest) (*sessionv1.GetSessionSummariesResponse, error) {
	list, err := p.svc.SessionSummaries(ctx, req.GetSessionIds())
	if err != nil {
		return nil, err
	}
	pbs, err := p.sessionsProto(list)
	if err != nil {
		return nil, err
	}
	return &sessionv1.GetSessionSummariesResponse{Sessions: pbs}, nil
}

// sessionsProto converts a list of sessions for a response.
func (p *grpcPort) sessionsProto(list []Session) ([]*sessionv1.Session, error) {
	out := make([]*sessionv1.Session, 0, len(list))
	for _, sess := range list {
		pb, err := p.sessionProto(sess)
		if err != nil {
			return nil, err
		}
		out = append(out, pb)
	}
	return out, nil
}

func (p *grpcPort) ListSessions(ctx context.Context, req *sessionv1.ListSessionsRequest) (*sessionv1.ListSessionsResponse, error) {
	status, err := statusFromProto(req.GetStatus())
	if err != nil {
		return nil, err
	}
	f := sessionFilter{
		AgentID: req.GetAgentId(), IncludePastAgents: req.GetIncludePastAgents(), Status: status, Group: req.GetGroup(), Channel: req.GetChannel(),
		CustomerID: req.GetCustomerId(), UserID: req.GetUserId(), Before: req.GetCursor(), Limit: int(req.GetLimit()), Summary: req.GetSummary(),
	}
	if req.GetCreatedFrom() != nil {
		f.From = req.GetCreatedFrom().AsTime()
	}
	if req.GetCreatedTo() != nil {
		f.To = req.GetCreatedTo().AsTime()
	}
	list, next, err := p.svc.ListSessions(ctx, f)
	if err != nil {
		return nil, err
	}
	pbs, err := p.sessionsProto(list)
	if err != nil {
		return nil, err
	}
	return &sessionv1.ListSessionsResponse{Sessions: pbs, NextCursor: next}, nil
}

func actorFromProto(a *sessionv1.Actor) Actor { return Actor{Type: a.GetType(), ID: a.GetId()} }

func (p *grpcPort) CloseSession(ctx context.Context, req *sessionv1.CloseSessionRequest) (*sessionv1.CloseSessionResponse, error) {
	sess, err := p.svc.Close(ctx, req.GetSessionId(), actorFromProto(req.GetBy()), req.GetReason())
	if err != nil {
		return nil, err
	}
	pb, err := p.sessionProto(sess)
	if err != nil {
		return nil, err
	}
	return &sessionv1.CloseSessionResponse{Session: pb}, nil
}

func (p *grpcPort) TransferSession(ctx context.Context, req *sessionv1.TransferSessionRequest) (*sessionv1.TransferSessionResponse, error) {
	sess, err := p.svc.Transfer(ctx, req.GetSessionId(), actorFromProto(req.GetBy()), req.GetToAgentId(), req.GetToGroup(), req.GetNote())
	if err != nil {
		return nil, err
	}
	pb, err := p.sessionProto(sess)
	if err != nil {
		return nil, err
	}
	return &sessionv1.TransferSessionResponse{Session: pb}, nil
}

func (p *grpcPort) SubmitCSAT(ctx context.Context, req *sessionv1.SubmitCSATRequest) (*sessionv1.SubmitCSATResponse, error) {
	c, err := p.svc.SubmitCSAT(ctx, req.GetSessionId(), int(req.GetScore()), req.GetComment())
	if err != nil {
		return nil, err
	}
	return &sessionv1.SubmitCSATResponse{Csat: csatToProto(&c)}, nil
}

func csatToProto(c *CSAT) *sessionv1.CSAT {
	if c == nil {
		return nil
	}
	return &sessionv1.CSAT{Score: int32(c.Score), Comment: c.Comment, SubmittedAt: timestamppb.New(c.SubmittedAt)}
}

func (p *grpcPort) ListMessages(ctx context.Context, req *sessionv1.ListMessagesRequest) (*sessionv1.ListMessagesResponse, error) {
	msgs, more, err := p.svc.ListMessages(ctx, req.GetSessionId(), req.GetAfterSeq(), int(req.GetLimit()))
	if err != nil {
		return nil, err
	}
	out := &sessionv1.ListMessagesResponse{Messages: make([]*eventsv1.Message, len(msgs)), More: more}
	for i, m := range msgs {
		out.Messages[i] = FrameToProto(m)
	}
	return out, nil
}

// FrameToProto converts a message frame to its protobuf form.
func FrameToProto(m frames.Message) *eventsv1.Message {
	return &eventsv1.Message{
		SessionId: m.SessionID, Seq: m.Seq, ClientMsgId: m.ClientMsgID,
		Sender: &eventsv1.Sender{Type: m.Sender.Type, Id: m.Sender.ID}, Text: m.Text, CreatedAt: timestamppb.New(m.CreatedAt), Event: m.Event,
	}
}

// FrameFromProto converts a protobuf message to its frame.
func FrameFromProto(m *eventsv1.Message) frames.Message {
	return frames.Message{
		Type: frames.TypeMessage, SessionID: m.GetSessionId(), Seq: m.GetSeq(), ClientMsgID: m.GetClientMsgId(),
		Sender: frames.Sender{Type: m.GetSender().GetType(), ID: m.GetSender().GetId()}, Text: m.GetText(), Event: m.GetEvent(), CreatedAt: m.GetCreatedAt().AsTime(),
	}
}

var statusToProto = map[Status]sessionv1.Status{
	StatusQueued:   sessionv1.Status_STATUS_QUEUED,
	StatusAssigned: sessionv1.Status_STATUS_ASSIGNED,
	StatusClosed:   sessionv1.Status_STATUS_CLOSED,
}

// StatusName is the public name of a protobuf status.
func StatusName(st sessionv1.Status) string {
	for k, v := range statusToProto {
		if v == st {
			return string(k)
		}
	}
	return ""
}

func statusFromProto(st sessionv1.Status) (Status, error) {
	if st == sessionv1.Status_STATUS_UNSPECIFIED {
		return "", nil
	}
	for k, v := range statusToProto {
		if v == st {
			return k, nil
		}
	}
	return "", fault.Invalid("status", "invalid_status", "unknown session status %d", st)
}

// sessionProto converts a session for the wire, with its sensitive attributes decrypted.
func (p *grpcPort) sessionProto(s Session) (*sessionv1.Session, error) {
	if s.Sensitive != nil {
		if err := p.svc.reveal(&s); err != nil {
			return nil, err
		}
	}
	return sessionToProto(s)
}

func sessionToProto(s Session) (*sessionv1.Session, error) {
	profile, err := structpb.NewStruct(plainMap(s.Profile))
	if err != nil {
		return nil, fault.New(fault.Internal, "internal", "stored profile of session %s is not JSON", s.ID)
	}
	pb := &sessionv1.Session{
		Id: s.ID, CustomerId: s.CustomerID, UserId: s.UserID, Channel: s.Channel, PageUrl: s.PageURL, Profile: profile,
		Status: statusToProto[s.Status], AgentId: s.AgentID, Group: s.Group, LastSeq: s.LastSeq, LastSeqKnown: s.LastSeqKnown, CreatedAt: timestamppb.New(s.CreatedAt),
		ClosedBy: s.ClosedBy, CloseReason: s.CloseReason, Csat: csatToProto(s.CSAT), QueuePosition: s.QueuePosition, Agents: s.Agents,
	}
	if s.FirstResponseAt != nil {
		pb.FirstResponseAt = timestamppb.New(*s.FirstResponseAt)
	}
	if s.AssignedAt != nil {
		pb.AssignedAt = timestamppb.New(*s.AssignedAt)
	}
	if s.ClosedAt != nil {
		pb.ClosedAt = timestamppb.New(*s.ClosedAt)
	}
	return pb, nil
}

// plainMap converts values decoded from BSON (documents, arrays, 32-bit integers,
// dates) into the plain JSON types structpb accepts.
func plainMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = plainValue(v)
	}
	return out
}

func plainValue(v any) any {
	switch t := v.(type) {
	case bson.D:
		m := make(map[string]any, len(t))
		for _, e := range t {
			m[e.Key] = plainValue(e.Value)
		}
		return m
	case bson.M:
		return plainMap(t)
	case map[string]any:
		return plainMap(t)
	case bson.A:
		return plainSlice(t)
	case []any:
		return plainSlice(t)
	case int32:
		return int64(t)
	case bson.DateTime:
		return t.Time().UTC().Format(time.RFC3339Nano)
	case time.Time:
		return t.UTC().Format(time.RFC3339Nano)
	default:
		return v
	}
}

func plainSlice(s []any) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = plainValue(v)
	}
	return out
}
