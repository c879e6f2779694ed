package devstack

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// readOnly opens a FerretDB database file for reading.
func readOnly(t *testing.T, file string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+file+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// queryPlan returns SQLite's plan for FerretDB's lookup by _id in collection coll.
func queryPlan(t *testing.T, file, coll string) string {
	t.Helper()
	table := tableOf(t, file, coll)
	db := readOnly(t, file)
	defer db.Close()
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

// idIndexes returns the SQL of every index on collection coll's table that indexes
// its _id, by index name.
func idIndexes(t *testing.T, file, coll string) map[string]string {
	t.Helper()
	db := readOnly(t, file)
	defer db.Close()
	rows, err := db.Query(`SELECT m.name, m.sql FROM sqlite_master m JOIN _ferretdb_collections c ON m.tbl_name = c.table_name
		WHERE c.name = ? AND m.type = 'index' AND m.sql LIKE '%_id%'`, coll)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, q string
		if err := rows.Scan(&name, &q); err != nil {
			t.Fatal(err)
		}
		out[name] = q
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// tableOf returns the SQLite table of collection coll.
func tableOf(t *testing.T, file, coll string) string {
	t.Helper()
	db := readOnly(t, file)
	defer db.Close()
	var table string
	if err := db.QueryRow(`SELECT table_name FROM _ferretdb_collections WHERE name = ?`, coll).Scan(&table); err != nil {
		t.Fatalf("find table of %s: %v", coll, err)
	}
	return table
}

// waitForOneIDIndex waits until coll's only _id index is FerretDB's, rebuilt unique
// on the lookup expression.
func waitForOneIDIndex(t *testing.T, file, coll string) {
	t.Helper()
	table := tableOf(t, file, coll)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ix := idIndexes(t, file, coll)
		q, ok := ix[table+"__id_"]
		if len(ix) == 1 && ok && strings.HasPrefix(q, "CREATE UNIQUE INDEX") && strings.Contains(q, idLookupExpr) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("indexes on _id of %s: %v; want only %s__id_, unique on %s", coll, ix, table, idLookupExpr)
		}
		time.Sleep(100 * time.Millisecond)
	}
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
	// One _id index, not two: FerretDB's own, rebuilt on the expression lookups use.
	waitForOneIDIndex(t, file, "things")

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
	// An unordered batch with a repeated _id inserts the rest and names the repeat.
	_, err = coll.InsertMany(ctx, []any{bson.D{{Key: "_id", Value: "k100"}}, bson.D{{Key: "_id", Value: "k9"}}, bson.D{{Key: "_id", Value: "k101"}}},
		options.InsertMany().SetOrdered(false))
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || len(bwe.WriteErrors) != 1 || bwe.WriteErrors[0].Index != 1 || !mongo.IsDuplicateKeyError(err) {
		t.Fatalf("batch with k9 again: err = %v, want one duplicate key error at index 1", err)
	}
	if n, err := coll.CountDocuments(ctx, bson.D{{Key: "_id", Value: bson.M{"$in": bson.A{"k100", "k101"}}}}); err != nil || n != 2 {
		t.Fatalf("k100 and k101 after the batch: %d, %v; want 2", n, err)
	}

	// FerretDB still knows its _id index by name, and other indexes come and go as before.
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "n", Value: 1}}}); err != nil {
		t.Fatal(err)
	}
	if names := indexNames(t, coll); !slices.Equal(names, []string{"_id_", "n_1"}) {
		t.Fatalf("indexes = %v, want [_id_ n_1]", names)
	}
	if err := coll.Indexes().DropAll(ctx); err != nil {
		t.Fatal(err)
	}
	if names := indexNames(t, coll); !slices.Equal(names, []string{"_id_"}) {
		t.Fatalf("indexes after dropping all = %v, want [_id_]", names)
	}
	waitForOneIDIndex(t, file, "things")

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
	waitForOneIDIndex(t, file, "things")
}

func indexNames(t *testing.T, coll *mongo.Collection) []string {
	t.Helper()
	specs, err := coll.Indexes().ListSpecifications(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return names
}

// A data folder written by an earlier version has FerretDB's _id index on its own
// expression plus a second, non-unique lookup index. Started on it, the dev stack
// rebuilds the _id index, drops the second and keeps every document and the unique _id.
func TestIDIndexOfAnEarlierDataFolderIsRebuilt(t *testing.T) {
	m, dir := startMongo(t)
	ctx := testContext(t)
	withMongo(t, m.URI(), func(c *mongo.Client) {
		docs := make([]any, 200)
		for i := range docs {
			docs[i] = bson.D{{Key: "_id", Value: fmt.Sprintf("k%d", i)}, {Key: "n", Value: i}}
		}
		if _, err := c.Database("helmdesk").Collection("things").InsertMany(ctx, docs); err != nil {
			t.Fatal(err)
		}
	})
	file := filepath.Join(dir, "helmdesk.sqlite")
	waitForOneIDIndex(t, file, "things")
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	// Put back what an earlier version left.
	table := tableOf(t, file, "things")
	db, err := sql.Open("sqlite", "file:"+file)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		fmt.Sprintf(`DROP INDEX %q`, table+"__id_"),
		fmt.Sprintf(`CREATE UNIQUE INDEX %q ON %q (_ferretdb_sjson->"_id")`, table+"__id_", table),
		fmt.Sprintf(`CREATE INDEX %q ON %q (%s)`, table+idIndexLegacySuffix, table, idLookupExpr),
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if ix := idIndexes(t, file, "things"); len(ix) != 2 {
		t.Fatalf("earlier layout: indexes on _id = %v, want two", ix)
	}

	m, err = StartMongo(ctx, dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	waitForOneIDIndex(t, file, "things")
	withMongo(t, m.URI(), func(c *mongo.Client) {
		coll := c.Database("helmdesk").Collection("things")
		if n, err := coll.CountDocuments(ctx, bson.D{}); err != nil || n != 200 {
			t.Fatalf("count = %d, %v; want 200", n, err)
		}
		var doc struct {
			N int `bson:"n"`
		}
		if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "k150"}}).Decode(&doc); err != nil || doc.N != 150 {
			t.Fatalf("find k150 = %+v, %v", doc, err)
		}
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "k150"}}); !mongo.IsDuplicateKeyError(err) {
			t.Fatalf("second k150: err = %v, want a duplicate key error", err)
		}
	})
	if plan := queryPlan(t, file, "things"); !strings.Contains(plan, "USING INDEX "+table+"__id_") {
		t.Fatalf("lookup by _id: %s; want it to use %s__id_", plan, table)
	}
}
