package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
)

// Ping checks that Redis answers, and turns the failures people meet when
// they first connect into errors that say what to check: a TLS-only server
// reached without TLS, a failed TLS handshake, refused credentials, a user
// missing a permission. It never includes credentials in the error.
func (s *Store) Ping(ctx context.Context) error {
	_, err := do(s, ctx, write, 0, func(ctx context.Context) (none, error) { return none{}, s.ping(ctx) })
	return err
}

func (s *Store) ping(ctx context.Context) error {
	err := s.cmd.Ping(ctx).Err()
	if err == nil {
		return nil
	}
	msg := err.Error()
	var hint string
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		hint = "the server closed the connection: if it accepts only TLS, use a rediss:// URL (or set TLSConfig)"
	case strings.Contains(msg, "tls:") || strings.Contains(msg, "x509:"):
		hint = "the TLS handshake failed: check the CA (RootCAs) and the server name, or use redis:// for a server without TLS"
	case strings.HasPrefix(msg, "WRONGPASS"), strings.HasPrefix(msg, "NOAUTH"):
		hint = "authentication failed: check the username and password"
	case strings.HasPrefix(msg, "NOPERM"):
		hint = "the user lacks a permission tiercache needs: see the minimal ACL in docs/architecture.md"
	case errors.Is(err, syscall.ECONNREFUSED):
		hint = "nothing accepts connections at that address"
	}
	if hint != "" {
		return fmt.Errorf("redisstore: ping: %s: %w", hint, err)
	}
	return fmt.Errorf("redisstore: ping: %w", err)
}
