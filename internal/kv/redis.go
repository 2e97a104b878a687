package kv

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the Store shared by gateway replicas.
type Redis struct {
	client *redis.Client
	prefix string
}

var _ Store = (*Redis)(nil)

// NewRedis connects to the Redis named by url (redis://, rediss:// or
// unix://). prefix namespaces every key so one Redis can serve several
// installations. It does not wait for Redis to answer: /readyz does.
func NewRedis(url, prefix string) (*Redis, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		// The URL may hold a password: never echo it back.
		return nil, errors.New("kv: REDIS_URL is not a valid Redis URL")
	}
	// Fail fast while Redis is away: callers answer 503 and retry on their
	// own schedule, rather than each call spending seconds in retries.
	opts.MaxRetries = 1
	opts.DialerRetries = 1
	opts.DialTimeout = 2 * time.Second
	opts.ReadTimeout = 2 * time.Second
	opts.WriteTimeout = 2 * time.Second
	return &Redis{client: redis.NewClient(opts), prefix: prefix}, nil
}

// Client exposes the connection for packages that need Redis itself (the
// edit locks' Lua scripts).
func (r *Redis) Client() *redis.Client { return r.client }

func (r *Redis) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := r.client.Get(ctx, r.prefix+key).Bytes()
	return v, mapErr(err)
}

func (r *Redis) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return errors.New("kv: ttl must be positive")
	}
	return mapErr(r.client.Set(ctx, r.prefix+key, value, ttl).Err())
}

func (r *Redis) Take(ctx context.Context, key string) ([]byte, error) {
	v, err := r.client.GetDel(ctx, r.prefix+key).Bytes()
	return v, mapErr(err)
}

func (r *Redis) Delete(ctx context.Context, key string) error {
	return mapErr(r.client.Del(ctx, r.prefix+key).Err())
}

func (r *Redis) Ping(ctx context.Context) error { return mapErr(r.client.Ping(ctx).Err()) }
func (r *Redis) Name() string                   { return "redis" }
func (r *Redis) Close() error                   { return r.client.Close() }

func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, redis.Nil):
		return ErrNotFound
	default:
		return fmt.Errorf("kv: redis: %w", err)
	}
}
