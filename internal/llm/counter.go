package llm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Counter counts tokens per tenant per UTC day. A call reserves what it
// may cost before it reaches the provider and settles to what it did cost
// afterwards, so that concurrent calls can never together spend more than
// the budget: the check and the count are one step.
type Counter interface {
	// Reserve adds n to the tenant's count for day if the total stays
	// within budget, atomically. It returns the total afterwards (or, when
	// refused, the unchanged total) and whether n was added.
	Reserve(ctx context.Context, tenant, day string, n, budget int64) (total int64, ok bool, err error)
	// Settle adds delta (negative to release part of a reservation) to
	// the count of the day the reservation was made, never below zero. It
	// is not bounded by the budget: the provider has already charged.
	Settle(ctx context.Context, tenant, day string, delta int64) error
	// Get is the tenant's count for day.
	Get(ctx context.Context, tenant, day string) (int64, error)
}

var (
	_ Counter = (*MemoryCounter)(nil)
	_ Counter = (*RedisCounter)(nil)
)

// MemoryCounter counts in this process.
type MemoryCounter struct {
	mu sync.Mutex
	m  map[string]int64
}

// NewMemoryCounter returns an empty counter.
func NewMemoryCounter() *MemoryCounter { return &MemoryCounter{m: map[string]int64{}} }

func memoryKey(tenant, day string) string { return tenant + "\x00" + day }

func (c *MemoryCounter) Reserve(_ context.Context, tenant, day string, n, budget int64) (int64, bool, error) {
	if n < 0 {
		return 0, false, errors.New("llm: a reservation cannot be negative")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Only today's counts matter; a new day drops the others (a call
	// still settling yesterday's reservation then finds nothing to settle).
	for key := range c.m {
		if !strings.HasSuffix(key, "\x00"+day) {
			delete(c.m, key)
		}
	}
	k := memoryKey(tenant, day)
	if c.m[k]+n > budget {
		return c.m[k], false, nil
	}
	c.m[k] += n
	return c.m[k], true, nil
}

func (c *MemoryCounter) Settle(_ context.Context, tenant, day string, delta int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := memoryKey(tenant, day)
	v, ok := c.m[k]
	if !ok {
		return nil // the day is over and was dropped
	}
	c.m[k] = max(v+delta, 0)
	return nil
}

func (c *MemoryCounter) Get(_ context.Context, tenant, day string) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[memoryKey(tenant, day)], nil
}

// RedisCounter counts in Redis, shared by replicas.
type RedisCounter struct{ client *redis.Client }

// NewRedisCounter counts with client.
func NewRedisCounter(client *redis.Client) *RedisCounter { return &RedisCounter{client: client} }

func redisKey(tenant, day string) string { return "pbs:llm:{" + tenant + "}:" + day }

// counterTTL keeps a day's count past its end, for calls that settle
// after midnight and for GET /api/llm/usage near it.
const counterTTL = 48 * time.Hour

// reserveScript checks and adds in one step: Redis runs a script alone,
// so no other replica's reservation can come between the two.
var reserveScript = redis.NewScript(`
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = tonumber(ARGV[1])
if used + n > tonumber(ARGV[2]) then
  return {used, 0}
end
used = redis.call('INCRBY', KEYS[1], n)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {used, 1}
`)

// settleScript adds delta and floors the count at zero (a release larger
// than the count can only follow an expired key).
var settleScript = redis.NewScript(`
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if v < 0 then
  redis.call('DECRBY', KEYS[1], v)
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 0
`)

func (c *RedisCounter) Reserve(ctx context.Context, tenant, day string, n, budget int64) (int64, bool, error) {
	if n < 0 {
		return 0, false, errors.New("llm: a reservation cannot be negative")
	}
	res, err := reserveScript.Run(ctx, c.client, []string{redisKey(tenant, day)}, n, budget, int64(counterTTL/time.Second)).Int64Slice()
	if err != nil {
		return 0, false, fmt.Errorf("llm: redis: %w", err)
	}
	if len(res) != 2 {
		return 0, false, fmt.Errorf("llm: redis: the reserve script answered %v", res)
	}
	return res[0], res[1] == 1, nil
}

func (c *RedisCounter) Settle(ctx context.Context, tenant, day string, delta int64) error {
	if delta == 0 {
		return nil
	}
	if err := settleScript.Run(ctx, c.client, []string{redisKey(tenant, day)}, delta, int64(counterTTL/time.Second)).Err(); err != nil {
		return fmt.Errorf("llm: redis: %w", err)
	}
	return nil
}

func (c *RedisCounter) Get(ctx context.Context, tenant, day string) (int64, error) {
	n, err := c.client.Get(ctx, redisKey(tenant, day)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("llm: redis: %w", err)
	}
	return n, nil
}
