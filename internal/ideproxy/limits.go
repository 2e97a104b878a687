package ideproxy

import "time"

// Limits on what the proxy waits for and keeps: the workspace is not
// trusted.
const (
	// idleTimeout closes a keep-alive connection nobody used for this long.
	idleTimeout = 90 * time.Second
	// maxIdle bounds the idle connections kept per workspace.
	maxIdle = 256
	// headerTimeout bounds the wait for the response's head.
	headerTimeout = 60 * time.Second
	dialTimeout   = 15 * time.Second
	// maxResponseHead bounds the response's head, 1xx answers included.
	maxResponseHead = 1 << 20
)
