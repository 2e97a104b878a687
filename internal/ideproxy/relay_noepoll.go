//go:build !(linux && (amd64 || arm64))

package ideproxy

import (
	"errors"
	"net"
)

// Elsewhere than on Linux (amd64, arm64), WebSockets are relayed by
// goroutines.

var errNoRelay = errors.New("ideproxy: no event-loop relay on this system")

type relay struct{}

func newRelay(int) *relay { return nil }

func relayLoops() int { return 0 }

func (r *relay) prepare(net.Conn, net.Conn, func()) (*relayTunnel, error) { return nil, errNoRelay }

func (r *relay) close() {}

type relayTunnel struct{}

func (t *relayTunnel) watch(*activity) {}
func (t *relayTunnel) start()          {}
func (t *relayTunnel) close()          {}

// alive cannot check a pooled connection here: a closed one is found out
// on use (and a request without a body is retried).
func alive(net.Conn) bool { return true }
