// Command stub stands in for code-server in the Docker runtime's tests: a
// static binary in a FROM-scratch image that answers GET /healthz on :8080
// the way code-server does.
//
// STUB_MODE changes its behaviour:
//
//	exit3      exit with code 3 at start, after a line on stderr
//	unhealthy  listen, but answer /healthz with 503 (never ready)
//
// Other requests let tests look from inside the container:
//
//	GET /env/NAME          the value of NAME (what reaches the workspace)
//	GET /status            Uid, Gid, CapEff, CapBnd, NoNewPrivs of the stub
//	GET /dial/HOST:PORT    whether a TCP connection to HOST:PORT succeeds
//	GET /get?url=URL       fetches URL from inside and answers its body
//	GET /write/NAME        writes NAME in the project folder (as the stub's user)
//	GET /symlink/NAME?to=T creates the symlink NAME -> T in the project folder
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const project = "/home/coder/project"

func main() {
	switch os.Getenv("STUB_MODE") {
	case "exit3":
		fmt.Fprintln(os.Stderr, "stub: told to fail at start")
		os.Exit(3)
	}
	unhealthy := os.Getenv("STUB_MODE") == "unhealthy"
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if unhealthy {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"alive","lastHeartbeat":0}`)
	})
	mux.HandleFunc("GET /env/{name}", func(w http.ResponseWriter, r *http.Request) {
		v, ok := os.LookupEnv(r.PathValue("name"))
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, v)
	})
	mux.HandleFunc("GET /dial/{addr}", func(w http.ResponseWriter, r *http.Request) {
		c, err := net.DialTimeout("tcp", r.PathValue("addr"), 2*time.Second)
		if err != nil {
			fmt.Fprint(w, "unreachable: "+strings.TrimSpace(err.Error()))
			return
		}
		c.Close()
		fmt.Fprint(w, "reachable")
	})
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(r.URL.Query().Get("url"))
		if err != nil {
			fmt.Fprint(w, "unreachable: "+err.Error())
			return
		}
		defer resp.Body.Close()
		_, _ = io.Copy(w, io.LimitReader(resp.Body, 1<<20))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		raw, err := os.ReadFile("/proc/self/status")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		for _, line := range strings.Split(string(raw), "\n") {
			for _, k := range []string{"Uid:", "Gid:", "CapEff:", "CapBnd:", "NoNewPrivs:"} {
				if strings.HasPrefix(line, k) {
					fmt.Fprintln(w, strings.Join(strings.Fields(line), " "))
				}
			}
		}
	})
	mux.HandleFunc("GET /write/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := os.WriteFile(filepath.Join(project, r.PathValue("name")), []byte("written by the stub\n"), 0o644); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("GET /symlink/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := os.Symlink(r.URL.Query().Get("to"), filepath.Join(project, r.PathValue("name"))); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "ok")
	})
	fmt.Fprintln(os.Stderr, "stub: listening on :8080")
	if err := http.ListenAndServe(":8080", mux); err != nil {
		fmt.Fprintln(os.Stderr, "stub:", err)
		os.Exit(1)
	}
}
