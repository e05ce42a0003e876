package redisstore

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// evalEach runs script once for each of n items, with the keys and
// arguments of item i, and returns the replies in order: one EVALSHA (with
// go-redis's fallback to EVAL) for one item; for more, EVALs pipelined, one
// batch per node on a cluster (a pipeline cannot fall back from EVALSHA on
// NOSCRIPT, so each script is sent whole). An error in any reply is the
// call's error.
func (s *Store) evalEach(ctx context.Context, script *redis.Script, n int, args func(i int) ([]string, []any)) ([]any, error) {
	out := make([]any, n)
	if n == 1 {
		keys, argv := args(0)
		res, err := script.Run(ctx, s.cmd, keys, argv...).Result()
		if err != nil {
			return nil, err
		}
		out[0] = res
		return out, nil
	}
	cmds := make([]*redis.Cmd, n)
	_, err := s.cmd.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range n {
			keys, argv := args(i)
			cmds[i] = script.Eval(ctx, p, keys, argv...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, cmd := range cmds {
		res, err := cmd.Result()
		if err != nil {
			return nil, err
		}
		out[i] = res
	}
	return out, nil
}
