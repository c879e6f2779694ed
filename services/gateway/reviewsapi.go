package gateway

import (
	"net/http"

	"github.com/helmdesk/helmdesk/pkg/fault"
	sessionv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/session/v1"
)

func reviewJSON(r *sessionv1.Review) map[string]any {
	return map[string]any{"id": r.GetId(), "session_id": r.GetSessionId(), "reviewer_id": r.GetReviewerId(), "score": r.GetScore(), "comment": r.GetComment(), "created_at": r.GetCreatedAt().AsTime()}
}

// handleAddReview records a quality review (0-100) of a conversation the reviewer may read.
func (g *Gateway) handleAddReview(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var req struct {
		Score   *int   `json:"score"`
		Comment string `json:"comment"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Score == nil {
		return fault.Invalid("score", "invalid_score", "score is required: a whole number from 0 to 100")
	}
	if _, err := g.loadSession(r.Context(), p, id); err != nil {
		return err
	}
	res, err := g.sessions.AddReview(r.Context(), &sessionv1.AddReviewRequest{SessionId: id, ReviewerId: p.UserID, Score: int32(*req.Score), Comment: req.Comment})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, reviewJSON(res.GetReview()))
	return nil
}

func (g *Gateway) handleListReviews(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if _, err := g.loadSession(r.Context(), p, id); err != nil {
		return err
	}
	res, err := g.sessions.ListReviews(r.Context(), &sessionv1.ListReviewsRequest{SessionId: id})
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(res.GetReviews()))
	for _, x := range res.GetReviews() {
		out = append(out, reviewJSON(x))
	}
	writeJSON(w, http.StatusOK, map[string]any{"reviews": out})
	return nil
}
