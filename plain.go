package tiercache

import (
	"errors"
	"fmt"
)

// checkPlain refuses the options that a store keeping plain JSON
// (driver.Capabilities.PlainJSON, redisstore.NewPlain) cannot honour: it
// stores the JSON of values and one expiry, the Redis TTL.
func (c *config[V]) checkPlain() error {
	if c.Store == nil || !c.Store.Capabilities().PlainJSON {
		return nil
	}
	var errs []error
	if id, json := c.Codec.ID(), JSON[V]().ID(); id != json {
		errs = append(errs, fmt.Errorf("Codec %d is not JSON (%d): the store keeps plain JSON values; use the default codec", id, json))
	}
	if c.StaleTTL > 0 {
		errs = append(errs, fmt.Errorf("StaleTTL %v: the store keeps plain JSON values whose only expiry is the Redis TTL, so there is no stale window to store; set StaleTTL to 0", c.StaleTTL))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidOptions, errors.Join(errs...))
	}
	return nil
}
