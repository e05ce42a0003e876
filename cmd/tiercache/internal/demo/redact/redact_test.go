package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for _, tc := range []struct{ in, want, pw string }{
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0", ""},
		{"redis://:pw@host:6379", "redis://:xxxxx@host:6379", "pw"},
		{"rediss://user:pw@host/1", "rediss://user:xxxxx@host/1", "pw"},
		{"redis://user@host", "redis://user@host", ""},
		{"redis://u:p/w@d@host", "redis://u:xxxxx@host", "p/w@d"},
		{"postgres://a:s3cret@host:xx/db", "postgres://a:xxxxx@host:xx/db", "s3cret"},
		{"not a url", "not a url", ""},
	} {
		if got := URL(tc.in); got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := Password(tc.in); got != tc.pw {
			t.Errorf("Password(%q) = %q, want %q", tc.in, got, tc.pw)
		}
	}
	if got := Message("bad port in a:s3cret@h", "postgres://a:s3cret@h:x"); got != "bad port in a:xxxxx@h" {
		t.Errorf("Message = %q", got)
	}
}

func TestQuote(t *testing.T) {
	long := strings.Repeat("1", 500_000)
	for _, tc := range []struct{ in, want string }{
		{"42", `"42"`},
		{"a\x00b", `"a\x00b"`},
		{strings.Repeat("x", MaxQuoted), `"` + strings.Repeat("x", MaxQuoted) + `"`},
		{long, `"` + long[:MaxQuoted] + `"…(500000 bytes)`},
		// A cut inside "é" (2 bytes) backs off to the character's start.
		{strings.Repeat("x", MaxQuoted-1) + "é" + long, `"` + strings.Repeat("x", MaxQuoted-1) + `"…(500065 bytes)`},
	} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%.20q…) = %.100q, want %.100q", tc.in, got, tc.want)
		}
	}
}
