package crypto

import (
	"slices"
	"strings"
	"testing"
)

func TestNormalizePhone(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"+86 138-0013-8000", "+8613800138000"},
		{"+8613800138000", "+8613800138000"},
		{" (+86) 138.0013.8000 ", "+8613800138000"},
		{"+1 (555) 010-0199", "+15550100199"},
		// full-width digits and plus, as typed with a CJK input method
		{"＋８６ １３８００１３８０００", "+8613800138000"},
		// a plus after the first character is dropped
		{"0086+13800138000", "008613800138000"},
		// letters are kept so different inputs stay different
		{"+1 555 0100 Ext 12", "+15550100ext12"},
		{"", ""},
		{" - ( ) ", ""},
		{"+", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := NormalizePhone(tt.in); got != tt.want {
				t.Fatalf("NormalizePhone(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNormalizeEmail(t *testing.T) {
	tests := []struct{ in, want string }{
		{"  Zhang.San@Example.COM ", "zhang.san@example.com"},
		{"a@b.c", "a@b.c"},
		{"   ", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := NormalizeEmail(tt.in); got != tt.want {
				t.Fatalf("NormalizeEmail(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestBlindIndex(t *testing.T) {
	kr := testKeyring(t)
	phone := PhoneField("customers.phone")
	email := EmailField("customers.email")
	tests := []struct {
		name  string
		fa    Field
		a     string
		fb    Field
		b     string
		equal bool
	}{
		{"phone spacing and dashes", phone, "+86 138-0013-8000", phone, "+8613800138000", true},
		{"phone parentheses", phone, "+1 (555) 010-0199", phone, "+15550100199", true},
		{"email case and space", email, " Zhang@Example.com", email, "zhang@example.com", true},
		{"different numbers", phone, "+8613800138000", phone, "+8613800138001", false},
		// a plus is significant: "+86..." is international, "86..." is not
		{"leading plus", phone, "+8613800138000", phone, "8613800138000", false},
		// the same value in two fields does not index equal
		{"same value across fields", phone, "+8613800138000", PhoneField("agents.phone"), "+8613800138000", false},
		{"same value across kinds", ExactField("a"), "x@y.z", EmailField("a"), "x@y.z", true},
		{"exact is case sensitive", ExactField("customers.external_id"), "AB", ExactField("customers.external_id"), "ab", false},
		// length-prefixed field: moving bytes from field to value changes the index
		{"field boundary", ExactField("ab"), "c", ExactField("a"), "bc", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := kr.BlindIndex(tt.fa, tt.a), kr.BlindIndex(tt.fb, tt.b)
			if a == "" || b == "" {
				t.Fatal("empty index")
			}
			if (a == b) != tt.equal {
				t.Fatalf("index(%q) = %s, index(%q) = %s, want equal=%v", tt.a, a, tt.b, b, tt.equal)
			}
		})
	}

	if got := kr.BlindIndex(phone, " - "); got != "" {
		t.Fatalf("index of an empty phone = %q, want empty", got)
	}
	if got := kr.BlindIndexes(phone, ""); got != nil {
		t.Fatalf("indexes of an empty phone = %q, want nil", got)
	}
	idx := kr.BlindIndex(phone, "+8613800138000")
	if !strings.HasPrefix(idx, "i1:") || strings.Contains(idx, "8613800138000") {
		t.Fatalf("index %q should name key i1 and not contain the number", idx)
	}
}

func TestBlindIndexRotation(t *testing.T) {
	phone := PhoneField("customers.phone")
	old, err := NewKeyring([]Key{testKey("k1", 1)}, []Key{testKey("i1", 0xF1)})
	if err != nil {
		t.Fatal(err)
	}
	stored := old.BlindIndex(phone, "+86 138 0013 8000")

	rotated, err := NewKeyring([]Key{testKey("k1", 1)}, []Key{testKey("i2", 0xF2), testKey("i1", 0xF1)})
	if err != nil {
		t.Fatal(err)
	}
	lookup := rotated.BlindIndexes(phone, "+8613800138000")
	if len(lookup) != 2 || !strings.HasPrefix(lookup[0], "i2:") {
		t.Fatalf("lookup values %q: want one per key, active first", lookup)
	}
	// A row written before the rotation is still found.
	if !slices.Contains(lookup, stored) {
		t.Fatalf("lookup %q does not contain the old row's index %q", lookup, stored)
	}
	// New rows are written under the new key and old rows are flagged for reindexing.
	fresh := rotated.BlindIndex(phone, "+8613800138000")
	if fresh != lookup[0] {
		t.Fatalf("new index %q, want %q", fresh, lookup[0])
	}
	tests := []struct {
		name   string
		stored string
		want   bool
	}{
		{"old key", stored, true},
		{"active key", fresh, false},
		{"no index", "", false},
		{"garbage", "nonsense", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rotated.NeedsReindex(tt.stored); got != tt.want {
				t.Fatalf("NeedsReindex(%q) = %v, want %v", tt.stored, got, tt.want)
			}
		})
	}
}
