package run

import (
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"optio.dev/optio/config"
)

// Open connects a Store to the Redis of cfg. The connection is made lazily,
// on first use.
func Open(cfg config.Config) (*Store, error) {
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	opt.PoolSize = max(opt.PoolSize, 64)
	opt.ReadTimeout = 3 * time.Second
	opt.WriteTimeout = 3 * time.Second
	return NewStore(redis.NewClient(opt), cfg.Prefix, 0), nil
}
