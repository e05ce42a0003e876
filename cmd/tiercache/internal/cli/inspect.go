package cli

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/wire"
)

func inspectCommand() *command {
	return &command{
		name:     "inspect",
		synopsis: "decode a cache entry stored in Redis",
		usage: `Usage: tiercache inspect --redis URL [--json] KEY

Reads the entry stored under KEY (a full key, e.g. v1:user:42) and shows what
tiercache would make of it: fresh, stale, negative, or written under another
key (a miss); soft expiry (the end of
freshness, from the envelope) and hard expiry (the key's Redis TTL); how long
its last rebuild took; its codec and size; and the payload, pretty-printed if
it is JSON, else as a hex dump.

Exit status 1 if there is no entry at KEY, it is not a tiercache entry, or it
was written under another key.
`,
		run: runInspect,
	}
}

// entryInfo is what inspect reports, and its JSON form.
type entryInfo struct {
	Key           string `json:"key"`
	Size          int    `json:"size"`
	FormatVersion int    `json:"format_version"`
	Codec         int    `json:"codec"`
	CodecName     string `json:"codec_name"`
	Negative      bool   `json:"negative"`
	State         string `json:"state"` // fresh, stale, negative, expired or wrong key
	// KeyHash is the hash of the key the entry was written under; KeyHashOK
	// says whether it is KEY's (else tiercache reads the entry as a miss).
	KeyHash    string          `json:"key_hash"`
	KeyHashOK  bool            `json:"key_hash_ok"`
	SoftExpiry time.Time       `json:"soft_expiry"`
	HardExpiry *time.Time      `json:"hard_expiry"` // nil: the key has no TTL
	RebuildMs  float64         `json:"last_rebuild_ms"`
	Payload    json.RawMessage `json:"payload,omitempty"`     // when it is JSON
	PayloadHex string          `json:"payload_hex,omitempty"` // otherwise
}

func runInspect(ctx context.Context, e *env, args []string) error {
	cmd := inspectCommand()
	fs := newFlagSet(cmd.name)
	redisFlag := fs.String("redis", "", "`URL` of the Redis holding the entry (redis:// or rediss://)")
	asJSON := fs.Bool("json", false, "print the entry as JSON")
	pos, err := parse(fs, cmd, e, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("inspect: want exactly one KEY, got %d arguments", len(pos))
	}
	key := pos[0]
	rdb, err := dialRedis(ctx, cmd.name, *redisFlag)
	if err != nil {
		return err
	}
	defer rdb.Close()

	var get *redis.StringCmd
	var pttl *redis.DurationCmd
	_, err = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, key)
		pttl = p.PTTL(ctx, key)
		return nil
	})
	now := time.Now()
	if errors.Is(err, redis.Nil) || errors.Is(get.Err(), redis.Nil) {
		return &exitError{code: ExitFailure, msg: "no entry at " + key}
	}
	if err != nil {
		return fmt.Errorf("read %s from Redis at %s: %w", key, rdb.Options().Addr, err)
	}
	raw, _ := get.Bytes()
	ent, err := decodeEntry(key, raw, pttl.Val(), now)
	if err != nil {
		fmt.Fprintf(e.stdout, "key   %s\nsize  %d bytes\n%s", key, len(raw), hexDump(raw))
		return &exitError{code: ExitFailure, msg: fmt.Sprintf("%s: not a tiercache entry: %v", key, err)}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(ent)
	} else {
		err = ent.writeText(e.stdout, now)
	}
	if err == nil && !ent.KeyHashOK {
		return &exitError{code: ExitFailure, msg: fmt.Sprintf(
			"%s: the entry was written under another key (key hash %s, %s's is %08x): tiercache reads it as a miss",
			key, ent.KeyHash, key, wire.KeyHash(key))}
	}
	return err
}

// decodeEntry decodes the bytes stored under key, whose Redis TTL is pttl
// (negative: none), as of now.
func decodeEntry(key string, raw []byte, pttl time.Duration, now time.Time) (*entryInfo, error) {
	h, payload, err := wire.Decode(raw)
	if err != nil {
		reason := err.Error()
		switch {
		case len(raw) == 0:
			reason = "empty value"
		case raw[0] != wire.Magic:
			reason = fmt.Sprintf("first byte 0x%02x is not the envelope's 0x%02x", raw[0], wire.Magic)
		case len(raw) < wire.HeaderSize:
			reason = fmt.Sprintf("%d bytes, shorter than the %d-byte header", len(raw), wire.HeaderSize)
		case raw[1] != wire.Version:
			reason = fmt.Sprintf("format version %d, this tiercache reads %d", raw[1], wire.Version)
		}
		return nil, errors.New(reason)
	}
	ent := &entryInfo{
		Key:           key,
		Size:          len(raw),
		FormatVersion: int(raw[1]),
		Codec:         int(h.Codec),
		CodecName:     codecName(h.Codec),
		Negative:      h.Negative(),
		KeyHash:       fmt.Sprintf("%08x", h.KeyHash),
		KeyHashOK:     h.KeyHash == wire.KeyHash(key),
		SoftExpiry:    h.Soft.UTC(),
		RebuildMs:     float64(h.Rebuild) / float64(time.Millisecond),
	}
	if pttl >= 0 {
		hard := now.Add(pttl).UTC().Truncate(time.Millisecond)
		ent.HardExpiry = &hard
	}
	switch {
	case !ent.KeyHashOK:
		ent.State = "wrong key"
	case ent.HardExpiry != nil && !now.Before(*ent.HardExpiry):
		ent.State = "expired"
	case h.Negative():
		ent.State = "negative"
	case now.Before(h.Soft):
		ent.State = "fresh"
	default:
		ent.State = "stale"
	}
	if json.Valid(payload) {
		var b bytes.Buffer
		json.Compact(&b, payload)
		ent.Payload = b.Bytes()
	} else if len(payload) > 0 {
		ent.PayloadHex = hex.EncodeToString(payload[:min(len(payload), 256)])
	}
	return ent, nil
}

func codecName(id byte) string {
	if id == 1 {
		return "json"
	}
	return "unknown (a custom codec)"
}

func (ent *entryInfo) writeText(w io.Writer, now time.Time) error {
	var b strings.Builder
	neg := "no"
	if ent.Negative {
		neg = "yes (a cached \"not found\")"
	}
	fmt.Fprintf(&b, "key           %s\n", ent.Key)
	fmt.Fprintf(&b, "state         %s\n", ent.State)
	fmt.Fprintf(&b, "negative      %s\n", neg)
	fmt.Fprintf(&b, "soft expiry   %s (%s)\n", ent.SoftExpiry.Format(time.RFC3339Nano), relative(ent.SoftExpiry, now))
	if ent.HardExpiry != nil {
		fmt.Fprintf(&b, "hard expiry   %s (%s, the key's Redis TTL)\n", ent.HardExpiry.Format(time.RFC3339Nano), relative(*ent.HardExpiry, now))
	} else {
		fmt.Fprintf(&b, "hard expiry   none: the key has no TTL\n")
	}
	fmt.Fprintf(&b, "last rebuild  %v\n", time.Duration(ent.RebuildMs*float64(time.Millisecond)).Round(time.Microsecond))
	fmt.Fprintf(&b, "format        tiercache envelope v%d\n", ent.FormatVersion)
	if ent.KeyHashOK {
		fmt.Fprintf(&b, "key hash      %s (this key's)\n", ent.KeyHash)
	} else {
		fmt.Fprintf(&b, "key hash      %s: NOT this key's, the bytes were written under another key\n", ent.KeyHash)
	}
	fmt.Fprintf(&b, "codec         %d (%s)\n", ent.Codec, ent.CodecName)
	fmt.Fprintf(&b, "size          %d bytes (%d header + %d payload)\n", ent.Size, wire.HeaderSize, ent.Size-wire.HeaderSize)
	switch {
	case ent.Payload != nil:
		var pretty bytes.Buffer
		json.Indent(&pretty, ent.Payload, "", "  ")
		fmt.Fprintf(&b, "payload\n%s\n", pretty.String())
	case ent.PayloadHex != "":
		p, _ := hex.DecodeString(ent.PayloadHex)
		fmt.Fprintf(&b, "payload (not JSON, first %d bytes)\n%s", len(p), hex.Dump(p))
	default:
		fmt.Fprintf(&b, "payload       none\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// relative says how far t is from now: "in 4m3s" or "3s ago".
func relative(t, now time.Time) string {
	d := t.Sub(now)
	round := func(d time.Duration) time.Duration {
		if d < time.Second {
			return d.Round(time.Millisecond)
		}
		return d.Round(time.Second)
	}
	if d >= 0 {
		return "in " + round(d).String()
	}
	return round(-d).String() + " ago"
}

// hexDump dumps the first 256 bytes of b.
func hexDump(b []byte) string {
	s := hex.Dump(b[:min(len(b), 256)])
	if len(b) > 256 {
		s += fmt.Sprintf("... %d more bytes\n", len(b)-256)
	}
	return s
}
