package testsvc

import (
	"net"
	"testing"
)

// HostService listens on the host's 127.0.0.1 (standing in for Redis or a
// database a sandbox must not reach), greets every connection with banner,
// and stops with the test. It returns its port.
func HostService(t testing.TB, banner string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(banner))
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}
