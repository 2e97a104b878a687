package workspace_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/kv"
	"github.com/playbookstudio/gateway/internal/testsvc"
	"github.com/playbookstudio/gateway/internal/workspace"
)

// inside runs script in the sandboxed workspace key as its own user would
// (root on the host enters the sandbox's namespaces as the workspace's
// uid), with the workspace's environment, and returns its output.
func inside(t *testing.T, dir, key string, env []string, script string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "ws", key, "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Init, UID int }
	if err := json.Unmarshal(raw, &m); err != nil || m.Init == 0 {
		t.Fatalf("meta.json %s: %v", raw, err)
	}
	uid := strconv.Itoa(m.UID)
	if m.UID == 0 {
		uid = strconv.Itoa(os.Getuid())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"-t", strconv.Itoa(m.Init), "-a", "-S", uid, "-G", uid, "--", "/usr/bin/env", "-i"}
	args = append(args, env...)
	args = append(args, "/bin/bash", "-c", script)
	out, err := exec.CommandContext(ctx, "nsenter", args...).CombinedOutput()
	if err != nil && ctx.Err() != nil {
		t.Fatalf("inside %s: %v\n%s", key, err, out)
	}
	return string(out)
}

// TestLocalSandboxContainment acts from inside a real sandboxed workspace
// as its user would, and finds nothing of the gateway, of DATA_DIR, of the
// other workspace or of the host's loopback services; its own folder and
// the gateway's workspace API work.
func TestLocalSandboxContainment(t *testing.T) {
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Fatalf("nsenter (util-linux) is needed to act inside a workspace: %v", err)
	}
	t.Setenv("OIDC_CLIENT_SECRET", "gateway-secret-must-not-leak")
	dir := t.TempDir()
	secretFile := filepath.Join(filepath.Dir(dir), "playbooks.db")
	if err := os.WriteFile(secretFile, []byte("every tenant's records"), 0o644); err != nil {
		t.Fatal(err)
	}
	rt := newLocal(t, dir, true)

	// The gateway's workspace API, on the socket the sandboxes see.
	api, err := net.Listen("unix", rt.APISocket())
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(rt.APISocket(), 0o666)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "workspace api %s %s", r.URL.Path, r.Header.Get("Authorization"))
	})}
	go srv.Serve(api)
	t.Cleanup(func() { srv.Close() })

	// A host service on the loopback (standing in for Redis).
	redisPort := testsvc.HostService(t, "+PONG\r\n")

	gatewayPort := testsvc.FreePort(t)
	m, err := workspace.NewManager(workspace.Config{IdleTimeout: time.Hour, MaxConcurrentSpawns: 2, ReadyTimeout: 30 * time.Second,
		GatewayURL: "http://127.0.0.1:" + strconv.Itoa(gatewayPort)}, rt, kv.NewMemory(nil), discardLog())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	alice, bob := workspace.KeyFor("default", "alice"), workspace.KeyFor("default", "bob")
	t.Cleanup(func() {
		rt.Remove(context.Background(), alice)
		rt.Remove(context.Background(), bob)
	})
	for _, u := range []string{"alice", "bob"} {
		if _, err := m.Ensure(context.Background(), "default", u); err != nil {
			t.Fatal(err)
		}
		if st, err := m.Wait(context.Background(), "default", u); err != nil || st.State != workspace.PhaseReady {
			log, _ := os.ReadFile(filepath.Join(dir, "ws", workspace.KeyFor("default", u), "code-server.log"))
			t.Fatalf("%s: %+v %v\n%s", u, st, err, log)
		}
	}
	if err := rt.CopyIn(context.Background(), alice, "pb", tarOf(t, map[string]string{"playbook.py": "x = 1\n"})); err != nil {
		t.Fatal(err)
	}

	env := []string{"PATH=/usr/bin:/bin", "HOME=/home/coder", "PLAYBOOK_GATEWAY_URL=http://127.0.0.1:" + strconv.Itoa(gatewayPort)}
	bobSock := filepath.Join(dir, "run", bob, "cs.sock")
	out := inside(t, dir, alice, env, `
echo "whoami=$(id -un) $(id -u)"
echo "gateway-env=$(cat /proc/*/environ 2>/dev/null | tr '\0' '\n' | grep -c -e OIDC_CLIENT_SECRET -e gateway-secret)"
echo "processes=$(ls -d /proc/[0-9]* | wc -l)"
ls `+dir+` >/dev/null 2>&1 && echo "datadir=listed" || echo "datadir=hidden"
cat `+secretFile+` >/dev/null 2>&1 && echo "db=read" || echo "db=hidden"
ls `+filepath.Join(dir, "ws", bob)+` >/dev/null 2>&1 && echo "bob=listed" || echo "bob=hidden"
ls /home/coder/project/pb >/dev/null 2>&1 && echo "own=listed" || echo "own=missing"
echo edit >> /home/coder/project/pb/playbook.py && echo "own=writable" || echo "own=readonly"
(exec 3<>/dev/tcp/127.0.0.1/`+strconv.Itoa(redisPort)+`) 2>/dev/null && echo "redis=reached" || echo "redis=refused"
node -e 'require("net").connect("`+bobSock+`").on("connect",()=>console.log("bob-socket=reached")).on("error",()=>console.log("bob-socket=refused"))'
node -e 'require("http").get(process.env.PLAYBOOK_GATEWAY_URL+"/api/workspace/session",{headers:{Authorization:"Bearer t"}},r=>{let b="";r.on("data",d=>b+=d).on("end",()=>console.log("api="+r.statusCode+" "+b))}).on("error",e=>console.log("api=error "+e.message))'
ip route get 169.254.169.254 2>&1 | sed 's/^/metadata=/'
echo "interfaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')"
`)
	for _, want := range []string{
		"whoami=coder", "gateway-env=0", "datadir=hidden", "db=hidden", "bob=hidden", "own=listed", "own=writable",
		"redis=refused", "bob-socket=refused", "api=200 workspace api /api/workspace/session Bearer t",
		"metadata=RTNETLINK answers: Network is unreachable", "interfaces=lo ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inside alice's workspace: no %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "whoami=coder 0") || strings.Contains(out, "whoami=coder "+strconv.Itoa(os.Getuid())) && os.Getuid() == 0 {
		t.Errorf("the workspace runs as root:\n%s", out)
	}
	// Each workspace has a uid of its own.
	outBob := inside(t, dir, bob, env, `id -u`)
	if strings.TrimSpace(outBob) == "" || strings.Contains(out, "whoami=coder "+strings.TrimSpace(outBob)+"\n") {
		t.Errorf("alice and bob share a uid: %q / %q", out, outBob)
	}
	// The file alice's user edited is hers, and the gateway reads it back.
	rc, err := rt.CopyOut(context.Background(), alice, "pb")
	if err != nil {
		t.Fatal(err)
	}
	if got := filesOf(t, rc); got["playbook.py"] != "x = 1\nedit\n" {
		t.Errorf("copied out %q", got["playbook.py"])
	}
	// What reconcile trusts is out of the workspace's reach.
	if fi, err := os.Stat(filepath.Join(dir, "ws", alice, "meta.json")); err != nil || fi.Mode().Perm() != 0o600 || fi.Sys() == nil {
		t.Errorf("meta.json: %v %v", fi, err)
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
