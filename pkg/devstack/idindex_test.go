package devstack

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// queryPlan returns SQLite's plan for FerretDB's lookup by _id in collection coll.
func queryPlan(t *testing.T, file, coll string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+file+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var table string
	if err := db.QueryRow(`SELECT table_name FROM _ferretdb_collections WHERE name = ?`, coll).Scan(&table); err != nil {
		t.Fatalf("find table of %s: %v", coll, err)
	}
	rows, err := db.Query(fmt.Sprintf(`EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM %q WHERE _ferretdb_sjson->'$._id' = ?`, table), `"k1"`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "; ")
}

func TestLookupsByIDUseAnIndex(t *testing.T) {
	dir := t.TempDir()
	ctx := testContext(t)
	m, err := StartMongo(ctx, dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	client, err := mongo.Connect(options.Client().ApplyURI(m.URI()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(ctx) })
	coll := client.Database("helmdesk").Collection("things")
	for i := range 50 {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("k%d", i)}, {Key: "n", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "helmdesk.sqlite")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(queryPlan(t, file, "things"), "USING INDEX") {
		if time.Now().After(deadline) {
			t.Fatalf("lookup by _id still scans: %s", queryPlan(t, file, "things"))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The collection behaves as before: lookups, updates, the unique _id, deletes.
	var doc struct {
		N int `bson:"n"`
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "k7"}}).Decode(&doc); err != nil || doc.N != 7 {
		t.Fatalf("find k7 = %+v, %v", doc, err)
	}
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "k7"}}, bson.M{"$set": bson.M{"n": 70}}); err != nil {
		t.Fatal(err)
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "k7"}}).Decode(&doc); err != nil || doc.N != 70 {
		t.Fatalf("k7 after update = %+v, %v", doc, err)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "k7"}}); !mongo.IsDuplicateKeyError(err) {
		t.Fatalf("second k7: err = %v, want a duplicate key error", err)
	}
	if res, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: "k8"}}); err != nil || res.DeletedCount != 1 {
		t.Fatalf("delete k8: %+v, %v", res, err)
	}
	if n, err := coll.CountDocuments(ctx, bson.D{}); err != nil || n != 49 {
		t.Fatalf("count = %d, %v; want 49", n, err)
	}

	// A dropped and recreated collection is indexed again.
	if err := coll.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "k1"}}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(queryPlan(t, file, "things"), "USING INDEX") {
		if time.Now().After(deadline) {
			t.Fatalf("recreated collection: lookup by _id still scans: %s", queryPlan(t, file, "things"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
