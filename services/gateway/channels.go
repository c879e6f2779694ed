package gateway

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"html"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/helmdesk/helmdesk/pkg/fault"
	"github.com/helmdesk/helmdesk/pkg/store"
)

// Channels are the ways customers reach the organisation. Only web channels exist so
// far: each has a public key that the widget snippet names (data-channel="KEY") and
// the settings the widget shows. Keys are not secrets: they sit in every page that
// embeds the widget.

const collChannels = "channels"

// Channel types. Only web can be created for now.
const (
	channelWeb = "web"
)

// channelTypesLater are types the product will have; asking for one gets a clear
// "not yet" rather than "unknown".
var channelTypesLater = map[string]bool{"app": true, "wechat": true, "webhook": true}

// Defaults of a new web channel.
const (
	defaultWidgetColor    = "#1f6feb"
	defaultWidgetTitle    = "Chat with us"
	defaultWidgetGreeting = "Hi! How can we help you today?"
)

// Limits of the web settings.
const (
	maxTitleRunes     = 60
	maxGreetingRunes  = 500
	maxAutoOpenSecs   = 3600
	maxPagePatterns   = 20
	maxPatternLen     = 200
	channelKeyPrefix  = "hdw_"
	channelKeyLetters = 24
)

// Channel is a stored channel.
type Channel struct {
	ID        string       `bson:"_id" json:"id"`
	Type      string       `bson:"type" json:"type"`
	Name      string       `bson:"name" json:"name"`
	Key       string       `bson:"key" json:"key"`
	Web       *WebSettings `bson:"web,omitempty" json:"web,omitempty"`
	CreatedAt time.Time    `bson:"created_at" json:"created_at"`
	UpdatedAt time.Time    `bson:"updated_at" json:"updated_at"`
}

// WebSettings is what the widget of a web channel looks like and when it opens.
type WebSettings struct {
	Color    string         `bson:"color" json:"color"`
	Position string         `bson:"position" json:"position"`
	Title    string         `bson:"title" json:"title"`
	Greeting string         `bson:"greeting" json:"greeting"`
	Triggers WidgetTriggers `bson:"triggers" json:"triggers"`
}

// WidgetTriggers say when the widget opens: on a click of its launcher, after a
// number of seconds on the page (0 = never), or on pages whose URL matches a pattern
// ("*" matches any run of characters; a pattern without "://" matches the path).
type WidgetTriggers struct {
	Click                bool     `bson:"click" json:"click"`
	AutoOpenAfterSeconds int      `bson:"auto_open_after_seconds" json:"auto_open_after_seconds"`
	PagePatterns         []string `bson:"page_patterns" json:"page_patterns"`
}

func defaultWebSettings() WebSettings {
	return WebSettings{Color: defaultWidgetColor, Position: "right", Title: defaultWidgetTitle, Greeting: defaultWidgetGreeting,
		Triggers: WidgetTriggers{Click: true, PagePatterns: []string{}}}
}

// channelStore keeps channels in MongoDB. It is a stateless handle on the collection.
type channelStore struct {
	coll *mongo.Collection
}

// channels returns the gateway's channel store. It shares identity's database (the
// gateway owns both), so it needs no wiring of its own.
func (g *Gateway) channels() channelStore {
	return channelStore{coll: g.identity.users.Database().Collection(collChannels)}
}

// prepare creates the channel indexes (existing ones are kept). Creating a channel is
// a rare admin action, so it runs before every insert: a fresh installation gets the
// unique key index before its first channel without a start-up step of its own.
func (s channelStore) prepare(ctx context.Context) error {
	err := store.EnsureIndexes(ctx, s.coll.Database(),
		store.Index{Collection: collChannels, Keys: bson.D{{Key: "key", Value: 1}}, Unique: true},
		store.Index{Collection: collChannels, Keys: bson.D{{Key: "created_at", Value: 1}}, QueryOnly: true},
	)
	if err != nil {
		return fmt.Errorf("prepare channel storage: %w", err)
	}
	return nil
}

var errChannelNotFound = fault.New(fault.NotFound, "channel_not_found", "no such channel")

func (s channelStore) insert(ctx context.Context, ch Channel) error {
	if err := s.prepare(ctx); err != nil {
		return err
	}
	if _, err := s.coll.InsertOne(ctx, ch); err != nil {
		return fmt.Errorf("insert channel: %w", err)
	}
	return nil
}

func (s channelStore) byID(ctx context.Context, id string) (Channel, error) {
	var ch Channel
	if err := s.coll.FindOne(ctx, bson.M{"_id": id}).Decode(&ch); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return Channel{}, errChannelNotFound
		}
		return Channel{}, fmt.Errorf("load channel %s: %w", id, err)
	}
	return ch, nil
}

func (s channelStore) byKey(ctx context.Context, key string) (Channel, error) {
	if !validChannelKey(key) {
		return Channel{}, errChannelNotFound
	}
	var ch Channel
	if err := s.coll.FindOne(ctx, bson.M{"key": key}).Decode(&ch); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return Channel{}, errChannelNotFound
		}
		return Channel{}, fmt.Errorf("load channel by key: %w", err)
	}
	return ch, nil
}

func (s channelStore) list(ctx context.Context) ([]Channel, error) {
	cur, err := s.coll.Find(ctx, bson.M{}, options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}}).SetLimit(1000))
	if err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	out := []Channel{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	return out, nil
}

func (s channelStore) replace(ctx context.Context, ch Channel) error {
	res, err := s.coll.ReplaceOne(ctx, bson.M{"_id": ch.ID}, ch)
	if err != nil {
		return fmt.Errorf("update channel %s: %w", ch.ID, err)
	}
	if res.MatchedCount == 0 {
		return errChannelNotFound
	}
	return nil
}

// newChannelKey returns a random public widget key: "hdw_" and 24 base62 letters.
func newChannelKey() (string, error) {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, channelKeyLetters)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate channel key: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)] // 256 % 62 bias is irrelevant for a public id
	}
	return channelKeyPrefix + string(b), nil
}

func validChannelKey(k string) bool {
	rest, ok := strings.CutPrefix(k, channelKeyPrefix)
	if !ok || len(rest) != channelKeyLetters {
		return false
	}
	for _, c := range []byte(rest) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// --- validation ---

var colorPattern = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// webSettingsPatch is a partial update of WebSettings (create uses it too: missing
// fields keep their defaults).
type webSettingsPatch struct {
	Color    *string        `json:"color"`
	Position *string        `json:"position"`
	Title    *string        `json:"title"`
	Greeting *string        `json:"greeting"`
	Triggers *triggersPatch `json:"triggers"`
}

type triggersPatch struct {
	Click                *bool     `json:"click"`
	AutoOpenAfterSeconds *int      `json:"auto_open_after_seconds"`
	PagePatterns         *[]string `json:"page_patterns"`
}

func cleanText(field, code, s string, min, max int) (string, error) {
	s = strings.TrimSpace(s)
	n := utf8.RuneCountInString(s)
	if !utf8.ValidString(s) || n < min || n > max {
		return "", fault.Invalid(field, code, "%s must be %d-%d characters", field, min, max)
	}
	for _, r := range s {
		if r < 0x20 && r != '\n' || r == 0x7f {
			return "", fault.Invalid(field, code, "%s must not contain control characters", field)
		}
	}
	return s, nil
}

// apply validates p and writes it over w.
func (p *webSettingsPatch) apply(w *WebSettings) error {
	if p == nil {
		return nil
	}
	if p.Color != nil {
		if !colorPattern.MatchString(*p.Color) {
			return fault.Invalid("web.color", "invalid_color", "color must be a hex colour like #1f6feb")
		}
		w.Color = strings.ToLower(*p.Color)
	}
	if p.Position != nil {
		if *p.Position != "right" && *p.Position != "left" {
			return fault.Invalid("web.position", "invalid_position", "position must be right or left")
		}
		w.Position = *p.Position
	}
	if p.Title != nil {
		t, err := cleanText("web.title", "invalid_title", strings.ReplaceAll(*p.Title, "\n", " "), 1, maxTitleRunes)
		if err != nil {
			return err
		}
		w.Title = t
	}
	if p.Greeting != nil {
		g, err := cleanText("web.greeting", "invalid_greeting", *p.Greeting, 0, maxGreetingRunes)
		if err != nil {
			return err
		}
		w.Greeting = g
	}
	if t := p.Triggers; t != nil {
		if t.Click != nil {
			w.Triggers.Click = *t.Click
		}
		if t.AutoOpenAfterSeconds != nil {
			if n := *t.AutoOpenAfterSeconds; n < 0 || n > maxAutoOpenSecs {
				return fault.Invalid("web.triggers.auto_open_after_seconds", "invalid_auto_open", "auto_open_after_seconds must be 0 (never) to %d", maxAutoOpenSecs)
			}
			w.Triggers.AutoOpenAfterSeconds = *t.AutoOpenAfterSeconds
		}
		if t.PagePatterns != nil {
			pats := *t.PagePatterns
			if len(pats) > maxPagePatterns {
				return fault.Invalid("web.triggers.page_patterns", "too_many_page_patterns", "at most %d page patterns", maxPagePatterns)
			}
			out := make([]string, 0, len(pats))
			for i, pat := range pats {
				pat = strings.TrimSpace(pat)
				field := fmt.Sprintf("web.triggers.page_patterns[%d]", i)
				if pat == "" || len(pat) > maxPatternLen || strings.ContainsAny(pat, " \t\r\n\x00<>\"") {
					return fault.Invalid(field, "invalid_page_pattern", "a page pattern is a URL or path of 1-%d characters without spaces, where * matches anything (e.g. /pricing*)", maxPatternLen)
				}
				out = append(out, pat)
			}
			w.Triggers.PagePatterns = out
		}
	}
	if w.Triggers.PagePatterns == nil {
		w.Triggers.PagePatterns = []string{}
	}
	if !w.Triggers.Click && w.Triggers.AutoOpenAfterSeconds == 0 && len(w.Triggers.PagePatterns) == 0 {
		return fault.Invalid("web.triggers", "no_trigger", "enable at least one trigger: the launcher click, auto-open after N seconds, or page patterns")
	}
	return nil
}

func validateChannelType(t string) error {
	switch {
	case t == channelWeb:
		return nil
	case t == "":
		return fault.Invalid("type", "invalid_channel_type", "type is required; supported: web")
	case channelTypesLater[t]:
		return fault.Invalid("type", "unsupported_channel_type", "%s channels are not available yet; supported: web", t)
	default:
		return fault.Invalid("type", "invalid_channel_type", "unknown channel type %q; supported: web", truncate(t, 32))
	}
}

// --- HTTP ---

type channelJSON struct {
	Channel
	EmbedCode string `json:"embed_code,omitempty"`
}

// publicOrigin is the origin the browser reached the gateway on, for the embed snippet.
func publicOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// embedCode is the snippet an admin pastes into their site.
func embedCode(origin, key string) string {
	return fmt.Sprintf(`<script src="%s/widget.js" data-channel="%s" async></script>`, html.EscapeString(origin), html.EscapeString(key))
}

func toChannelJSON(r *http.Request, ch Channel) channelJSON {
	out := channelJSON{Channel: ch}
	if ch.Type == channelWeb {
		out.EmbedCode = embedCode(publicOrigin(r), ch.Key)
	}
	return out
}

type createChannelRequest struct {
	Type string            `json:"type"`
	Name string            `json:"name"`
	Web  *webSettingsPatch `json:"web"`
}

func (g *Gateway) handleCreateChannel(w http.ResponseWriter, r *http.Request, p Principal) error {
	var req createChannelRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := validateChannelType(req.Type); err != nil {
		return err
	}
	name, err := validateName("name", req.Name)
	if err != nil {
		return err
	}
	web := defaultWebSettings()
	if err := req.Web.apply(&web); err != nil {
		return err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("generate channel id: %w", err)
	}
	key, err := newChannelKey()
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	ch := Channel{ID: id.String(), Type: req.Type, Name: name, Key: key, Web: &web, CreatedAt: now, UpdatedAt: now}
	if err := g.channels().insert(r.Context(), ch); err != nil {
		return err
	}
	g.audit(r, p, "channel.create", "channel", ch.ID, nil, channelSummary(ch))
	writeJSON(w, http.StatusCreated, toChannelJSON(r, ch))
	return nil
}

func (g *Gateway) handleListChannels(w http.ResponseWriter, r *http.Request, _ Principal) error {
	list, err := g.channels().list(r.Context())
	if err != nil {
		return err
	}
	out := make([]channelJSON, len(list))
	for i, ch := range list {
		out[i] = toChannelJSON(r, ch)
	}
	writeJSON(w, http.StatusOK, map[string]any{"channels": out})
	return nil
}

func (g *Gateway) handleGetChannel(w http.ResponseWriter, r *http.Request, _ Principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	ch, err := g.channels().byID(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toChannelJSON(r, ch))
	return nil
}

type patchChannelRequest struct {
	Type *string           `json:"type"`
	Name *string           `json:"name"`
	Web  *webSettingsPatch `json:"web"`
}

func (g *Gateway) handlePatchChannel(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var req patchChannelRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	ch, err := g.channels().byID(r.Context(), id)
	if err != nil {
		return err
	}
	before := channelSummary(ch)
	if req.Type != nil && *req.Type != ch.Type {
		return fault.Invalid("type", "channel_type_immutable", "a channel's type cannot change; create a new channel instead")
	}
	if req.Name != nil {
		if ch.Name, err = validateName("name", *req.Name); err != nil {
			return err
		}
	}
	if req.Web != nil {
		if ch.Type != channelWeb {
			return fault.Invalid("web", "not_a_web_channel", "web settings apply to web channels only")
		}
		web := defaultWebSettings()
		if ch.Web != nil {
			web = *ch.Web
		}
		if err := req.Web.apply(&web); err != nil {
			return err
		}
		ch.Web = &web
	}
	ch.UpdatedAt = time.Now().UTC().Truncate(time.Millisecond)
	if err := g.channels().replace(r.Context(), ch); err != nil {
		return err
	}
	g.audit(r, p, "channel.update", "channel", ch.ID, before, channelSummary(ch))
	writeJSON(w, http.StatusOK, toChannelJSON(r, ch))
	return nil
}

// channelSummary is a channel as the audit log records it.
func channelSummary(ch Channel) map[string]any {
	out := map[string]any{"type": ch.Type, "name": ch.Name}
	if w := ch.Web; w != nil {
		out["web"] = map[string]any{"color": w.Color, "position": w.Position, "title": w.Title, "greeting": w.Greeting,
			"triggers": map[string]any{"click": w.Triggers.Click, "auto_open_after_seconds": w.Triggers.AutoOpenAfterSeconds, "page_patterns": w.Triggers.PagePatterns}}
	}
	return out
}

// widgetConfig is what the widget loads for its channel key (public).
type widgetConfig struct {
	ChannelID string      `json:"channel_id"`
	Name      string      `json:"name"`
	Web       WebSettings `json:"web"`
}

func (g *Gateway) handleWidgetConfig(w http.ResponseWriter, r *http.Request, _ Principal) error {
	ch, err := g.channels().byKey(r.Context(), r.PathValue("key"))
	if err != nil {
		return err
	}
	if ch.Type != channelWeb || ch.Web == nil {
		return errChannelNotFound
	}
	// Widgets on busy sites load this on every page view: let browsers keep it briefly.
	w.Header().Set("Cache-Control", "public, max-age=60")
	writeJSON(w, http.StatusOK, widgetConfig{ChannelID: ch.ID, Name: ch.Name, Web: *ch.Web})
	return nil
}

// resolveChannelKey maps a widget's channel key to the session's channel name.
// Sessions record the channel's type ("web"): routing rules read `channel == 'web'`.
func (g *Gateway) resolveChannelKey(ctx context.Context, key string) (string, error) {
	ch, err := g.channels().byKey(ctx, key)
	if err != nil {
		return "", err
	}
	return ch.Type, nil
}
