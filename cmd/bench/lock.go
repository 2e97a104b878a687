package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/playbookstudio/gateway/internal/editlock"
)

// benchLock: figure (f), one Acquire plus one Release on a local Redis,
// as internal/editlock's BenchmarkAcquireRelease does.
func benchLock(ctx context.Context, dir string, calls int, within time.Duration, out *output, cl *cleanups) error {
	progress("edit locks: local redis-server")
	addr, err := startRedis(ctx, dir, cl)
	if err != nil {
		return err
	}
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	defer c.Close()
	l, err := editlock.NewRedis(c, nil)
	if err != nil {
		return err
	}
	lat := make([]time.Duration, 0, calls)
	deadline := time.Now().Add(within)
	for i := 0; i < calls+200 && time.Now().Before(deadline) && ctx.Err() == nil; i++ {
		r := editlock.Request{Holder: editlock.Holder{
			SessionID: "s" + strconv.Itoa(i), Tenant: "bench", UserID: "u" + strconv.Itoa(i%64),
			UserName: "Bench user", Playbook: "p" + strconv.Itoa(i%256),
		}, TTL: time.Minute}
		start := time.Now()
		res, err := l.Acquire(ctx, r)
		if err != nil {
			return fmt.Errorf("acquire: %w", err)
		}
		if err := l.Release(ctx, res.Holder); err != nil {
			return fmt.Errorf("release: %w", err)
		}
		if i >= 200 { // the first ones load the scripts and warm the pool
			lat = append(lat, time.Since(start))
		}
	}
	progress("  %d acquire+release pairs", len(lat))
	if len(lat) == 0 {
		return fmt.Errorf("no lock measured")
	}
	out.line("lock_p99_ms", ms(percentile(lat, 99)), "ms")
	return nil
}
