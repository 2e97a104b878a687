package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// benchSave: the end-to-end save of a 5,000-line playbook.py with 20 other
// files, through the gateway's API (collection out of the real workspace,
// validation, the SQLite store), as the portal's Save button does it.
func benchSave(ctx context.Context, out *output, g *gatewayProc, s *ideSession) error {
	if s.project == "" {
		return fmt.Errorf("save: the session's folder is unknown")
	}
	project := hostPath(g, s.key, s.project)
	progress("save: a 5,000-line playbook and 20 other files")
	var b strings.Builder
	b.WriteString("\"\"\"A long playbook for the save benchmark.\"\"\"\nimport json\n\n\ndef run(alert, ctx):\n    return {\"status\": \"done\"}\n")
	lines := 6
	for i := 0; lines+4 <= 4999; i++ { // 4,999 lines, and one per save below
		fmt.Fprintf(&b, "\ndef helper_%d(value):\n    \"\"\"Helper %d.\"\"\"\n    return json.dumps({\"value\": value, \"n\": %d})\n", i, i, i)
		lines += 4
	}
	playbook := b.String()
	files := map[string]string{
		"README.md":     "# Bench\n\n```mermaid\nflowchart TD\n  A --> B\n```\n",
		"manifest.json": `{"name": "Bench", "description": "save benchmark", "integrations": [], "entrypoint": "playbook.py:run"}`,
	}
	for i := 0; i < 18; i++ {
		files[fmt.Sprintf("docs/note-%02d.md", i)] = strings.Repeat(fmt.Sprintf("Note %d: what this part of the playbook does.\n", i), 40)
	}
	for name, body := range files {
		p := filepath.Join(project, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
	}
	const rounds = 15
	var took []time.Duration
	for i := 0; i < rounds; i++ {
		// Each save is a new version: change the playbook a little.
		src := playbook + fmt.Sprintf("# save %d\n", i)
		if err := os.WriteFile(filepath.Join(project, "playbook.py"), []byte(src), 0o644); err != nil {
			return err
		}
		var res struct {
			Version  struct{ Number, Lines int }
			Error    *struct{ Code, Message string }
			Problems []struct {
				Path    string
				Line    int
				Message string
			}
		}
		start := time.Now()
		code, err := s.api(http.MethodPost, "/api/edit-sessions/"+s.id+"/save", nil, &res)
		d := time.Since(start)
		if err != nil || code != http.StatusCreated {
			return fmt.Errorf("save: %d %v %+v %+v", code, err, res.Error, res.Problems)
		}
		if i == 0 && (res.Version.Lines < 4990 || res.Version.Lines > 5000) {
			return fmt.Errorf("save: the playbook has %d lines, want about 5,000", res.Version.Lines)
		}
		if i > 0 { // the first save creates the playbook and warms up
			took = append(took, d)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	slices.Sort(took)
	out.line("save_5000_lines_p50_ms", float64(took[len(took)/2].Microseconds())/1000, "ms")
	return nil
}

// hostPath is where the workspace key's path p (as its code-server sees
// it) is on this machine: a sandboxed local workspace sees its home,
// DATA_DIR/workspaces/ws/KEY/home, as /home/coder.
func hostPath(g *gatewayProc, key, p string) string {
	if rest, ok := strings.CutPrefix(p, "/home/coder/"); ok {
		return filepath.Join(g.dataDir, "workspaces", "ws", key, "home", rest)
	}
	return p
}
