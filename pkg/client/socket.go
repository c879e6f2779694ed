package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/helmdesk/helmdesk/pkg/frames"
)

// Frame is any server frame; fields not used by its type are zero.
type Frame struct {
	Type        string        `json:"type"`
	SessionID   string        `json:"session_id"`
	Seq         int64         `json:"seq"`
	ClientMsgID string        `json:"client_msg_id"`
	Sender      frames.Sender `json:"sender"`
	Text        string        `json:"text"`
	CreatedAt   time.Time     `json:"created_at"`
	Status      string        `json:"status"`
	AgentID     string        `json:"agent_id"`
	Code        string        `json:"code"`
	Message     string        `json:"message"`
	LastSeq     int64         `json:"last_seq"`
	History     bool          `json:"history"`
	Event       string        `json:"event"`
	State       string        `json:"state"`
	Group       string        `json:"group"`
	// QueuePosition is the customer's place in the queue while queued.
	QueuePosition int64 `json:"queue_position"`
	CSATRequested bool  `json:"csat_requested"`
}

// Socket is a customer or agent WebSocket.
type Socket struct {
	conn *websocket.Conn
}

// DialCustomer opens the customer socket of the session the token belongs to. With
// ResumeFrom the socket resumes the session as it opens.
func (c *Client) DialCustomer(ctx context.Context, customerToken string, opts ...DialOption) (*Socket, error) {
	return c.dial(ctx, "/api/v1/customer/ws", customerToken, opts)
}

// DialAgent opens an agent socket with a sign-in token. With ResumeSession the socket
// resumes those sessions as it opens.
func (c *Client) DialAgent(ctx context.Context, token string, opts ...DialOption) (*Socket, error) {
	return c.dial(ctx, "/api/v1/agent/ws", token, opts)
}

// DialOption adds to the upgrade request of a socket.
type DialOption func(url.Values)

// ResumeFrom resumes a customer socket's session from lastSeq as it opens, as a
// resume frame sent first would: the resumed frame comes with the greeting.
func ResumeFrom(lastSeq int64) DialOption {
	return func(q url.Values) { q.Set("last_seq", strconv.FormatInt(lastSeq, 10)) }
}

// ResumeSession resumes one of an agent's sessions from lastSeq as the socket opens.
func ResumeSession(sessionID string, lastSeq int64) DialOption {
	return func(q url.Values) { q.Add("resume", sessionID+":"+strconv.FormatInt(lastSeq, 10)) }
}

func (c *Client) dial(ctx context.Context, path, token string, opts []DialOption) (*Socket, error) {
	u := strings.Replace(c.BaseURL, "http", "ws", 1) + path
	if len(opts) > 0 {
		q := url.Values{}
		for _, o := range opts {
			o(q)
		}
		u += "?" + q.Encode()
	}
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient: c.HTTP,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + token}},
	})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: http %d: %w", path, resp.StatusCode, err)
		}
		return nil, fmt.Errorf("dial %s: %w", path, err)
	}
	conn.SetReadLimit(1 << 20)
	return &Socket{conn: conn}, nil
}

// DialURL opens a socket with the token in the access_token query parameter, as
// browsers do.
func DialURL(ctx context.Context, wsURL, token string) (*Socket, error) {
	u := wsURL + "?access_token=" + url.QueryEscape(token)
	conn, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		return nil, err
	}
	return &Socket{conn: conn}, nil
}

// Send writes one frame.
func (s *Socket) Send(ctx context.Context, frame any) error {
	b, err := json.Marshal(frame)
	if err != nil {
		return err
	}
	return s.conn.Write(ctx, websocket.MessageText, b)
}

// SendRaw writes raw bytes as a text frame (for tests of malformed input).
func (s *Socket) SendRaw(ctx context.Context, b []byte) error {
	return s.conn.Write(ctx, websocket.MessageText, b)
}

// SendMessage sends a chat message (sessionID only for agents).
func (s *Socket) SendMessage(ctx context.Context, sessionID, clientMsgID, text string) error {
	return s.Send(ctx, frames.Client{Type: frames.TypeMessage, SessionID: sessionID, ClientMsgID: clientMsgID, Text: text})
}

// Resume asks for every message after lastSeq.
func (s *Socket) Resume(ctx context.Context, sessionID string, lastSeq int64) error {
	return s.Send(ctx, frames.Client{Type: frames.TypeResume, SessionID: sessionID, LastSeq: &lastSeq})
}

// Read returns the next frame.
func (s *Socket) Read(ctx context.Context) (Frame, error) {
	_, data, err := s.conn.Read(ctx)
	if err != nil {
		return Frame{}, err
	}
	var f Frame
	if err := json.Unmarshal(data, &f); err != nil {
		return Frame{}, fmt.Errorf("decode frame %q: %w", data, err)
	}
	return f, nil
}

// Close closes the socket normally.
func (s *Socket) Close() error { return s.conn.Close(websocket.StatusNormalClosure, "") }

// CloseNow drops the connection without a close handshake (a network failure).
func (s *Socket) CloseNow() error { return s.conn.CloseNow() }

// CloseStatus extracts the WebSocket close code from a Read error (-1 if none).
func CloseStatus(err error) int { return int(websocket.CloseStatus(err)) }
