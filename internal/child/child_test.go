package child

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestStartStopAndLog(t *testing.T) {
	log := filepath.Join(t.TempDir(), "sh.log")
	p, err := Start("sh", log, nil, "/bin/sh", "-c", "echo one; echo two; echo three; exec sleep 30")
	if err != nil {
		t.Fatal(err)
	}
	err = Poll(context.Background(), 5*time.Second, p, func(context.Context) error {
		if !strings.Contains(p.LogTail(5), "three") {
			return os.ErrNotExist
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.LogTail(2); got != "two\nthree" {
		t.Errorf("LogTail(2) = %q", got)
	}
	if p.Exited() {
		t.Fatal("exited early")
	}
	p.Stop(syscall.SIGTERM, 5*time.Second)
	p.Stop(syscall.SIGTERM, 5*time.Second) // once
	if !p.Exited() {
		t.Error("still running after Stop")
	}
}

func TestPollEndsWhenTheProcessExits(t *testing.T) {
	log := filepath.Join(t.TempDir(), "false.log")
	p, err := Start("sh", log, nil, "/bin/sh", "-c", "echo broken config >&2; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	err = WaitTCP(context.Background(), "127.0.0.1:1", time.Minute, p)
	if err == nil || !strings.Contains(err.Error(), "sh exited") || !strings.Contains(err.Error(), "broken config") {
		t.Errorf("err = %v", err)
	}
}

func TestWaitTCPAndHTTP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := WaitTCP(context.Background(), ln.Addr().String(), 100*time.Millisecond, nil); err == nil {
		t.Error("WaitTCP on a closed port succeeded")
	}

	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	if err := WaitTCP(context.Background(), srv.Listener.Addr().String(), 5*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	client := srv.Client()
	defer client.CloseIdleConnections()
	if err := WaitHTTP(context.Background(), client, srv.URL, 5*time.Second, nil); err != nil || calls.Load() != 3 {
		t.Errorf("WaitHTTP: %v after %d calls", err, calls.Load())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WaitHTTP(ctx, client, srv.URL+"/x", 5*time.Second, nil); err == nil {
		t.Error("WaitHTTP with a cancelled context succeeded")
	}
}
