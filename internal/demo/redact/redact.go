// Package redact hides the credentials in URLs that the tiercache command
// echoes back in messages (Redis and PostgreSQL URLs), including URLs that do
// not parse: those are the ones error messages quote.
package redact

import "strings"

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
