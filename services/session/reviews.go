package session

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/helmdesk/helmdesk/pkg/fault"
	sessionv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/session/v1"
)

const collReviews = "reviews"

// Review is a quality inspector's assessment of a conversation.
type Review struct {
	ID         string    `bson:"_id"`
	SessionID  string    `bson:"session_id"`
	ReviewerID string    `bson:"reviewer_id"`
	Score      int       `bson:"score"`
	Comment    string    `bson:"comment"`
	CreatedAt  time.Time `bson:"created_at"`
}

// AddReview stores a review (0-100) of an existing session.
func (s *Service) AddReview(ctx context.Context, sid, reviewer string, score int, comment string) (Review, error) {
	if score < 0 || score > 100 {
		return Review{}, fault.Invalid("score", "invalid_score", "score must be a whole number from 0 to 100")
	}
	comment = strings.TrimSpace(comment)
	if utf8.RuneCountInString(comment) > 5000 || !utf8.ValidString(comment) {
		return Review{}, fault.Invalid("comment", "invalid_comment", "comment must be valid text of at most 5000 characters")
	}
	if reviewer == "" {
		return Review{}, fault.Invalid("reviewer_id", "invalid_reviewer", "reviewer_id is required")
	}
	if _, err := s.repo.getSession(ctx, sid); err != nil {
		return Review{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Review{}, fmt.Errorf("generate review id: %w", err)
	}
	rv := Review{ID: id.String(), SessionID: sid, ReviewerID: reviewer, Score: score, Comment: comment, CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if _, err := s.repo.reviews.InsertOne(ctx, rv); err != nil {
		return Review{}, fmt.Errorf("store review of %s: %w", sid, err)
	}
	return rv, nil
}

// ListReviews returns a session's reviews, oldest first.
func (s *Service) ListReviews(ctx context.Context, sid string) ([]Review, error) {
	cur, err := s.repo.reviews.Find(ctx, bson.M{"session_id": sid}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(500))
	if err != nil {
		return nil, fmt.Errorf("list reviews of %s: %w", sid, err)
	}
	var out []Review
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("list reviews of %s: %w", sid, err)
	}
	return out, nil
}

func reviewToProto(r Review) *sessionv1.Review {
	return &sessionv1.Review{Id: r.ID, SessionId: r.SessionID, ReviewerId: r.ReviewerID, Score: int32(r.Score), Comment: r.Comment, CreatedAt: timestamppb.New(r.CreatedAt)}
}

func (p *grpcPort) AddReview(ctx context.Context, req *sessionv1.AddReviewRequest) (*sessionv1.AddReviewResponse, error) {
	rv, err := p.svc.AddReview(ctx, req.GetSessionId(), req.GetReviewerId(), int(req.GetScore()), req.GetComment())
	if err != nil {
		return nil, err
	}
	return &sessionv1.AddReviewResponse{Review: reviewToProto(rv)}, nil
}

func (p *grpcPort) ListReviews(ctx context.Context, req *sessionv1.ListReviewsRequest) (*sessionv1.ListReviewsResponse, error) {
	list, err := p.svc.ListReviews(ctx, req.GetSessionId())
	if err != nil {
		return nil, err
	}
	out := &sessionv1.ListReviewsResponse{Reviews: make([]*sessionv1.Review, len(list))}
	for i, r := range list {
		out.Reviews[i] = reviewToProto(r)
	}
	return out, nil
}
