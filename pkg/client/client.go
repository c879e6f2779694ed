package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/helmdesk/helmdesk/pkg/frames"
)

// Client calls the REST API with an optional bearer token.
type Client struct {
	BaseURL string // http://host:port
	Token   string
	HTTP    *http.Client
}

// New returns a client for baseURL.
func New(baseURL string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// WithToken returns a copy of c that sends token.
func (c *Client) WithToken(token string) *Client {
	cp := *c
	cp.Token = token
	return &cp
}

// APIError is an error response of the API.
type APIError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *APIError) Error() string {
	return fmt.Sprintf("http %d %s: %s", e.Status, e.Code, e.Message)
}

// Do sends a request with a JSON body (when in is not nil) and decodes a JSON response
// into out (when not nil). Non-2xx responses return *APIError.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		if raw, ok := in.([]byte); ok {
			body = bytes.NewReader(raw)
		} else {
			b, err := json.Marshal(in)
			if err != nil {
				return fmt.Errorf("encode request: %w", err)
			}
			body = bytes.NewReader(b)
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode >= 300 {
		apiErr := &APIError{Status: resp.StatusCode}
		if err := json.Unmarshal(data, apiErr); err != nil || apiErr.Code == "" {
			apiErr.Code, apiErr.Message = "http_"+strconv.Itoa(resp.StatusCode), strings.TrimSpace(string(data))
		}
		return apiErr
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode %s %s response: %w", method, path, err)
		}
	}
	return nil
}

// User is a console user.
type User struct {
	ID          string   `json:"id"`
	Email       string   `json:"email"`
	Name        string   `json:"name"`
	Role        string   `json:"role"`
	MaxSessions int      `json:"max_sessions"`
	Groups      []string `json:"groups"`
}

// SetupResult is the answer to first-run setup.
type SetupResult struct {
	Organization struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"organization"`
	Admin User   `json:"admin"`
	Token string `json:"token"`
}

// Setup performs first-run setup.
func (c *Client) Setup(ctx context.Context, org, email, password, name string) (SetupResult, error) {
	var out SetupResult
	err := c.Do(ctx, http.MethodPost, "/api/v1/setup", map[string]any{
		"organization": org, "admin": map[string]string{"email": email, "password": password, "name": name},
	}, &out)
	return out, err
}

// Login signs in and returns the token.
func (c *Client) Login(ctx context.Context, email, password string) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	err := c.Do(ctx, http.MethodPost, "/api/v1/auth/login", map[string]string{"email": email, "password": password}, &out)
	return out.Token, err
}

// NewAgent describes an agent to create.
type NewAgent struct {
	Email       string   `json:"email"`
	Password    string   `json:"password"`
	Name        string   `json:"name"`
	MaxSessions int      `json:"max_sessions,omitempty"`
	Groups      []string `json:"groups,omitempty"`
	Role        string   `json:"role,omitempty"`
}

// CreateAgent creates an agent (admins only).
func (c *Client) CreateAgent(ctx context.Context, a NewAgent) (User, error) {
	var out User
	err := c.Do(ctx, http.MethodPost, "/api/v1/agents", a, &out)
	return out, err
}

// AgentState is an agent's presence and load.
type AgentState struct {
	AgentID             string `json:"agent_id"`
	Status              string `json:"status"`
	CurrentSessionCount int64  `json:"current_session_count"`
}

// SetStatus sets an agent's presence: online, away or offline.
func (c *Client) SetStatus(ctx context.Context, agentID, status string) (AgentState, error) {
	var out AgentState
	err := c.Do(ctx, http.MethodPut, "/api/v1/agents/"+url.PathEscape(agentID)+"/status", map[string]string{"status": status}, &out)
	return out, err
}

// OnlineStatus reads an agent's presence and load.
func (c *Client) OnlineStatus(ctx context.Context, agentID string) (AgentState, error) {
	var out AgentState
	err := c.Do(ctx, http.MethodGet, "/api/v1/agents/online_status?agent_id="+url.QueryEscape(agentID), nil, &out)
	return out, err
}

// StartSession describes a customer starting a chat.
type StartSession struct {
	UserID  string         `json:"user_id"`
	Profile map[string]any `json:"profile,omitempty"`
	PageURL string         `json:"page_url,omitempty"`
	Channel string         `json:"channel,omitempty"`
}

// SessionStart is the answer to StartSession.
type SessionStart struct {
	SessionID     string `json:"session_id"`
	CustomerToken string `json:"customer_token"`
	Status        string `json:"status"`
	AgentID       string `json:"agent_id"`
}

// StartSession starts a customer session (public endpoint).
func (c *Client) StartSession(ctx context.Context, s StartSession) (SessionStart, error) {
	var out SessionStart
	err := c.Do(ctx, http.MethodPost, "/api/v1/customer/sessions", s, &out)
	return out, err
}

// Session is a conversation as the REST API shows it.
type Session struct {
	ID         string         `json:"id"`
	CustomerID string         `json:"customer_id"`
	UserID     string         `json:"user_id"`
	Status     string         `json:"status"`
	AgentID    string         `json:"agent_id"`
	Group      string         `json:"group"`
	LastSeq    int64          `json:"last_seq"`
	Profile    map[string]any `json:"profile"`
	CreatedAt  time.Time      `json:"created_at"`
}

// GetSession reads one session.
func (c *Client) GetSession(ctx context.Context, id string) (Session, error) {
	var out Session
	err := c.Do(ctx, http.MethodGet, "/api/v1/sessions/"+url.PathEscape(id), nil, &out)
	return out, err
}

// Messages reads a page of a session's history after afterSeq.
func (c *Client) Messages(ctx context.Context, sessionID string, afterSeq int64, limit int) ([]frames.Message, bool, error) {
	var out struct {
		Messages []frames.Message `json:"messages"`
		HasMore  bool             `json:"has_more"`
	}
	q := url.Values{"after_seq": {strconv.FormatInt(afterSeq, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	err := c.Do(ctx, http.MethodGet, "/api/v1/sessions/"+url.PathEscape(sessionID)+"/messages?"+q.Encode(), nil, &out)
	return out.Messages, out.HasMore, err
}

// AllMessages reads a session's whole history after afterSeq, page by page.
func (c *Client) AllMessages(ctx context.Context, sessionID string, afterSeq int64) ([]frames.Message, error) {
	var all []frames.Message
	for {
		page, more, err := c.Messages(ctx, sessionID, afterSeq, 500)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if !more || len(page) == 0 {
			return all, nil
		}
		afterSeq = page[len(page)-1].Seq
	}
}
