package tiercache

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCheckID checks the id rules as properties: checkID never panics, and
// an id it accepts is non-empty, at most maxIDLength bytes, valid UTF-8, and
// free of control characters and braces, so that its key reads well in
// redis-cli and keeps its helper keys in its Redis Cluster slot.
func FuzzCheckID(f *testing.F) {
	for _, s := range []string{"42", "", "a b", "user:7", "é", "a\x00", "{x}", "\xff", strings.Repeat("x", maxIDLength+1), "a\u0085b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := checkID(id)
		if err != nil {
			return
		}
		if id == "" || len(id) > maxIDLength || !utf8.ValidString(id) {
			t.Fatalf("checkID accepted %q", id)
		}
		for _, r := range id {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '{' || r == '}' {
				t.Fatalf("checkID accepted %q with %U", id, r)
			}
		}
	})
}
