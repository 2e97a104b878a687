package runner

import (
	"os/exec"
	"strings"
	"testing"
)

// TestRuntimeMatchesSDKStub: the ctx the runtime gives run() offers the
// public methods and exceptions the extension's playbook_sdk.py documents,
// no more and no fewer, so the two cannot drift apart.
func TestRuntimeMatchesSDKStub(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	const script = `
import ast, sys
def api(path):
    tree = ast.parse(open(path).read())
    out = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in ("Context", "Integration", "Response", "IntegrationError", "ActionError"):
            out.append(node.name)
            for f in node.body:
                if isinstance(f, ast.FunctionDef) and not f.name.startswith("_"):
                    out.append(node.name + "." + f.name + "(" + ",".join(a.arg for a in f.args.args) + ")")
    return sorted(out)
a, b = api(sys.argv[1]), api(sys.argv[2])
print("\n".join(a)); print("--"); print("\n".join(b))
`
	out, err := exec.Command(py, "-c", script, "runtime/pbs_runtime.py", "../../extensions/playbook-agent/src/assets/playbook_sdk.py").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	runtime, stub, _ := strings.Cut(string(out), "--\n")
	if strings.TrimSpace(runtime) != strings.TrimSpace(stub) {
		t.Fatalf("the runtime's API:\n%s\nthe stub's:\n%s", runtime, stub)
	}
}
