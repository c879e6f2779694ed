package session

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/helmdesk/helmdesk/pkg/crypto"
)

func testKeyring(t *testing.T, encID, indexID string) *crypto.Keyring {
	t.Helper()
	return ring(t, []crypto.Key{genKey(t, encID)}, []crypto.Key{genKey(t, indexID)})
}

func TestSplitProfileKeepsSecretsOut(t *testing.T) {
	plain, secret := splitProfile(map[string]any{"name": "Carol", "phone": "+1 555 0100", "email": "c@x.test", "tags": []any{"a"}})
	if _, ok := plain["phone"]; ok || plain["name"] != "Carol" || secret["phone"] != "+1 555 0100" || secret["email"] != "c@x.test" {
		t.Fatalf("plain %v secret %v", plain, secret)
	}
	if _, secret := splitProfile(map[string]any{"phone": 123}); secret != nil {
		t.Fatalf("non-string phone kept as secret: %v", secret)
	}
}

func genKey(t *testing.T, id string) crypto.Key {
	t.Helper()
	k, err := crypto.GenerateKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ring(t *testing.T, enc, idx []crypto.Key) *crypto.Keyring {
	t.Helper()
	kr, err := crypto.NewKeyring(enc, idx)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestRotationAndReencrypt(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	k1, i1, k2, i2 := genKey(t, "k1"), genKey(t, "i1"), genKey(t, "k2"), genKey(t, "i2")
	f.svc.deps.Keyring = ring(t, []crypto.Key{k1}, []crypto.Key{i1})
	// A customer stored under the old keys.
	if _, err := f.svc.repo.customers.InsertOne(ctx, bson.M{"_id": "c1", "user_id": "u1", "profile": bson.M{}}); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.sealCustomer(ctx, "c1", map[string]string{"phone": "+86 138 0013 8000"}); err != nil {
		t.Fatal(err)
	}
	// Rotate: new active keys first, the old ones kept for reading.
	rotated := ring(t, []crypto.Key{k2, k1}, []crypto.Key{i2, i1})
	f.svc.deps.Keyring = rotated
	found, err := f.svc.FindCustomers(ctx, "phone", "+8613800138000")
	if err != nil || len(found) != 1 || found[0].Profile["phone"] != "+86 138 0013 8000" {
		t.Fatalf("lookup during rotation: %+v (%v)", found, err)
	}
	res, err := Reencrypt(ctx, f.db, rotated)
	if err != nil || res.Fields != 1 || res.Indexes != 1 {
		t.Fatalf("reencrypt: %+v (%v)", res, err)
	}
	if res, _ := Reencrypt(ctx, f.db, rotated); res.Documents != 0 {
		t.Fatalf("second run rewrote %d documents", res.Documents)
	}
	// The old keys can go now.
	f.svc.deps.Keyring = ring(t, []crypto.Key{k2}, []crypto.Key{i2})
	found, err = f.svc.FindCustomers(ctx, "phone", "+86-138-0013-8000")
	if err != nil || len(found) != 1 || found[0].Profile["phone"] != "+86 138 0013 8000" {
		t.Fatalf("after retiring old keys: %+v (%v)", found, err)
	}
	// Without the rotation pass, retiring k1 would have made the data unreadable.
	if _, err := ring(t, []crypto.Key{k2}, []crypto.Key{i2}).DecryptString("v1:k1:AAAA", "x"); err == nil {
		t.Fatal("unknown key id decrypted")
	}
}
