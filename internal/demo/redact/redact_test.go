package redact

import "testing"

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
