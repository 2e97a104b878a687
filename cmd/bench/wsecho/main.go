// Command wsecho stands in for code-server in the proxy benchmark
// (cmd/bench): the local runtime starts it exactly as it starts
// code-server (CODE_SERVER_BIN --auth none --socket PATH --socket-mode 600
// … FOLDER). It listens on that unix socket with mode 0600, answers
// GET /healthz the way code-server does, and echoes every WebSocket
// message back (RFC 6455, text or binary, single frames or fragments
// frame by frame). Every other flag is ignored.
package main

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

func main() {
	var sock string
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--install-extension":
			return // nothing to install: succeed like code-server would
		case a == "--socket" && i+1 < len(args):
			sock = args[i+1]
			i++
		case strings.HasPrefix(a, "--socket="):
			sock = strings.TrimPrefix(a, "--socket=")
		}
	}
	if sock == "" {
		fmt.Fprintln(os.Stderr, "wsecho: --socket PATH is required")
		os.Exit(2)
	}
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsecho:", err)
		os.Exit(1)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "wsecho:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: http.HandlerFunc(serve), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintln(os.Stderr, "wsecho: listening on", sock)
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "wsecho:", err)
		os.Exit(1)
	}
}

func serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/healthz":
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"alive","lastHeartbeat":0}`)
	case strings.EqualFold(r.Header.Get("Upgrade"), "websocket"):
		upgrade(w, r)
	default:
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "wsecho\n")
	}
}

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func upgrade(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if key == "" || r.Header.Get("Sec-WebSocket-Version") != "13" {
		http.Error(w, "bad WebSocket handshake", http.StatusBadRequest)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Time{})
	sum := sha1.Sum([]byte(key + wsGUID))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n"
	if _, err := io.WriteString(conn, resp); err != nil {
		return
	}
	_ = echo(conn, brw.Reader)
}

// echo reads client frames (masked) and writes each back unmasked with the
// same FIN bit and opcode, answering pings and closes.
func echo(conn net.Conn, br *bufio.Reader) error {
	out := make([]byte, 0, 16<<10)
	var hdr [14]byte
	for {
		if _, err := io.ReadFull(br, hdr[:2]); err != nil {
			return err
		}
		fin, op := hdr[0]&0x80, hdr[0]&0x0f
		masked := hdr[1]&0x80 != 0
		n := uint64(hdr[1] & 0x7f)
		switch n {
		case 126:
			if _, err := io.ReadFull(br, hdr[2:4]); err != nil {
				return err
			}
			n = uint64(binary.BigEndian.Uint16(hdr[2:4]))
		case 127:
			if _, err := io.ReadFull(br, hdr[2:10]); err != nil {
				return err
			}
			n = binary.BigEndian.Uint64(hdr[2:10])
		}
		if n > 16<<20 {
			return errors.New("frame too large")
		}
		var mask [4]byte
		if masked {
			if _, err := io.ReadFull(br, mask[:]); err != nil {
				return err
			}
		}
		out = out[:0]
		switch {
		case n < 126:
			out = append(out, 0, byte(n))
		case n <= 0xffff:
			out = append(out, 0, 126, byte(n>>8), byte(n))
		default:
			out = append(out, 0, 127)
			out = binary.BigEndian.AppendUint64(out, n)
		}
		replyOp := op
		if op == 0x9 {
			replyOp = 0xA // ping → pong
		}
		out[0] = fin | replyOp
		start := len(out)
		out = slices.Grow(out, int(n))[:start+int(n)]
		if _, err := io.ReadFull(br, out[start:]); err != nil {
			return err
		}
		if masked {
			p := out[start:]
			for i := range p {
				p[i] ^= mask[i&3]
			}
		}
		if op == 0xA { // unsolicited pong: no answer
			continue
		}
		if _, err := conn.Write(out); err != nil {
			return err
		}
		if op == 0x8 {
			return nil
		}
	}
}
