package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/helmdesk/helmdesk/pkg/frames"
	"github.com/helmdesk/helmdesk/pkg/logkey"
)

// revocationsChannel carries revocations to every gateway, so a signed-out, disabled
// or demoted user loses access everywhere within moments, live sockets included.
const revocationsChannel = "hd:auth:revocations"

// revocation names what to revoke: one token (by digest) or every token of a user.
type revocation struct {
	Digest string `json:"digest,omitempty"`
	UserID string `json:"user_id,omitempty"`
	// Refresh only drops cached permissions (the user was edited); sockets stay.
	Refresh bool `json:"refresh,omitempty"`
}

// broadcastRevocation clears the caches of every gateway (this one included, through
// its own subscription) and closes matching sockets.
//
// Callers change MongoDB first: the new epoch then voids every sign-in cached in
// Redis from before the change (see resolveUserToken), on every gateway.
func (g *Gateway) broadcastRevocation(ctx context.Context, rv revocation) {
	g.applyRevocation(rv)
	g.newAuthEpoch(ctx)
	payload, err := frames.Encode(time.Time{}, rv)
	if err == nil {
		err = g.hub.rdb.Publish(ctx, revocationsChannel, payload).Err()
	}
	if err != nil {
		g.log.ErrorContext(ctx, "broadcast revocation", slog.Any(logkey.Error, err))
	}
}

// newAuthEpoch increments the epoch of the sign-ins cached in Redis, retrying a few
// times: an entry cached before a revocation stays usable until the epoch moves (or
// the entry's short life ends).
func (g *Gateway) newAuthEpoch(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	var err error
	for attempt := range 4 {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
		}
		pipe := g.hub.rdb.TxPipeline()
		seedAuthEpoch(ctx, pipe) // a lost epoch restarts at random
		pipe.Incr(ctx, authEpochKey)
		if _, err = pipe.Exec(ctx); err == nil {
			return
		}
	}
	g.log.ErrorContext(ctx, "void cached sign-ins", slog.Any(logkey.Error, err))
}

// revokeUser deletes every sign-in of a user and tells every gateway.
func (g *Gateway) revokeUser(ctx context.Context, userID string) error {
	if _, err := g.identity.tokens.DeleteMany(ctx, bson.M{"subject": userID, "kind": tokenUser}); err != nil {
		return err
	}
	g.broadcastRevocation(ctx, revocation{UserID: userID})
	return nil
}

// deliver receives revocations from other gateways (the hub calls it).
func (r revocationListener) deliver(_ string, payload []byte) {
	_, body, err := frames.Decode(payload)
	if err != nil {
		return
	}
	var rv revocation
	if json.Unmarshal(body, &rv) == nil {
		r.g.applyRevocation(rv)
	}
}

type revocationListener struct{ g *Gateway }

func (g *Gateway) applyRevocation(rv revocation) {
	g.identity.forget(func(digest string, p Principal) bool {
		return digest == rv.Digest || (rv.UserID != "" && p.UserID == rv.UserID)
	})
	if rv.Refresh {
		return
	}
	g.mu.Lock()
	var doomed []*socket
	for s := range g.sockets {
		if s.p.Digest == rv.Digest || (rv.UserID != "" && s.p.UserID == rv.UserID) {
			doomed = append(doomed, s)
		}
	}
	g.mu.Unlock()
	for _, s := range doomed {
		s.cancel(errRevoked)
	}
}

// listenForRevocations subscribes to revocations until ctx is done.
func (g *Gateway) listenForRevocations(ctx context.Context) error {
	l := revocationListener{g: g}
	for {
		err := g.hub.subscribe(ctx, revocationsChannel, l)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	<-ctx.Done()
	g.hub.unsubscribe(revocationsChannel, l)
	return nil
}
