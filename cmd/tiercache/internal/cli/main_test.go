package cli

import (
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) {
	redis.SetLogger(QuietRedisLogger{}) // as cmd/tiercache does
	os.Exit(m.Run())
}
