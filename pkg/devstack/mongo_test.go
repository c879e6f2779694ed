package devstack

import (
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func TestMongoDataSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := testContext(t)

	m, err := StartMongo(ctx, dir, testLogger(t))
	if err != nil {
		t.Fatalf("start mongo: %v", err)
	}
	if !strings.HasPrefix(m.URI(), "mongodb://127.0.0.1:") {
		t.Errorf("URI() = %q, want a mongodb://127.0.0.1:PORT/ URI", m.URI())
	}
	insertDoc(t, m.URI(), bson.D{{Key: "_id", Value: "doc-1"}, {Key: "subject", Value: "printer on fire"}})
	if err := m.Close(); err != nil {
		t.Fatalf("close mongo: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}

	m, err = StartMongo(ctx, dir, testLogger(t))
	if err != nil {
		t.Fatalf("restart mongo: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })

	got := findDoc(t, m.URI(), "doc-1")
	if got["subject"] != "printer on fire" {
		t.Errorf("subject after restart = %v, want %q", got["subject"], "printer on fire")
	}
}
