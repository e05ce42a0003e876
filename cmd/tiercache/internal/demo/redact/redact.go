// Package redact makes what the tiercache command and its service echo back
// in messages safe to show: it hides the credentials in URLs (Redis and
// PostgreSQL URLs, including URLs that do not parse: those are the ones error
// messages quote), and clips long user input (Quote).
package redact

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxQuoted is how many bytes of an input Quote shows.
const MaxQuoted = 64

// Quote returns s quoted (strconv.Quote) for an error message or a log
// record, clipped to its first MaxQuoted bytes (at a character boundary)
// followed by "…(N bytes)" when it is longer, so that a request with a
// 500,000-byte id gets a short error, not its id back.
func Quote(s string) string {
	if len(s) <= MaxQuoted {
		return strconv.Quote(s)
	}
	n := MaxQuoted
	for n > MaxQuoted-utf8.UTFMax && !utf8.RuneStart(s[n]) {
		n--
	}
	return fmt.Sprintf("%s…(%d bytes)", strconv.Quote(s[:n]), len(s))
}

// Mask replaces a password.
const Mask = "xxxxx"

// URL returns raw with the password of its userinfo replaced by Mask,
// without parsing it. Everything between "://" and the last "@" counts as
// userinfo: in a malformed URL a password may hold '/', '?' or '#', and
// hiding too much is safer than too little.
func URL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return raw
	}
	user, _, hasPassword := strings.Cut(rest[:at], ":")
	if !hasPassword {
		return raw
	}
	return scheme + "://" + user + ":" + Mask + rest[at:]
}

// Password returns the password in raw's userinfo as URL finds it, "" if
// there is none.
func Password(raw string) string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return ""
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	_, pw, _ := strings.Cut(rest[:at], ":")
	return pw
}

// Message returns msg, a message about raw, with raw's password, if any,
// replaced by Mask wherever it appears.
func Message(msg, raw string) string {
	if pw := Password(raw); pw != "" {
		return strings.ReplaceAll(msg, pw, Mask)
	}
	return msg
}
