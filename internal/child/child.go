// Package child starts the helper processes that tests and cmd/bench talk
// to (Redis, the dev OpenID provider, Podman's API service, nginx, the
// gateway itself), stops them by their PID, and waits until they answer.
// It depends on nothing of the product and on no testing package.
package child

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a process this program started.
type Proc struct {
	Name string
	// Log is the file its stdout and stderr go to ("": discarded).
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
}

// Start runs bin in its own process group (a Ctrl-C on the terminal
// reaches only this program, which then stops its children in order),
// with Pdeathsig, so nothing outlives a crash of this program. env nil
// means this program's environment.
func Start(name, logPath string, env []string, bin string, args ...string) (*Proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if logPath != "" {
		f, err := os.Create(logPath)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// PID is the process's id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends sig (SIGTERM for most) to the process, by its PID, then
// SIGKILL after grace, and waits for it to exit. Later calls do nothing.
func (p *Proc) Stop(sig syscall.Signal, grace time.Duration) {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(sig)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// LogTail is the last n lines of the process's log.
func (p *Proc) LogTail(n int) string {
	if p.Log == "" {
		return ""
	}
	raw, err := os.ReadFile(p.Log)
	if err != nil {
		return ""
	}
	return Tail(raw, n)
}

// Tail is the last n lines of raw.
func Tail(raw []byte, n int) string {
	ls := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// FreePort is a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Poll calls ready every 20 ms until it returns nil, within runs out, ctx
// ends or p (when not nil) exits; the error says which, with ready's last
// error or p's log tail.
func Poll(ctx context.Context, within time.Duration, p *Proc, ready func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var done <-chan struct{}
	if p != nil {
		done = p.done
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited:\n%s", p.Name, p.LogTail(20))
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("not ready within %v: %w", within, err)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// WaitTCP waits until addr accepts a connection.
func WaitTCP(ctx context.Context, addr string, within time.Duration, p *Proc) error {
	return Poll(ctx, within, p, func(ctx context.Context) error {
		d := net.Dialer{Timeout: 200 * time.Millisecond}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// WaitHTTP waits until GET url answers 200 through client (nil:
// http.DefaultClient), each try bounded to 2 s.
func WaitHTTP(ctx context.Context, client *http.Client, url string, within time.Duration, p *Proc) error {
	if client == nil {
		client = http.DefaultClient
	}
	return Poll(ctx, within, p, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: status %d", url, resp.StatusCode)
		}
		return nil
	})
}
