package sandbox

import (
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// syscallProbe runs inside the sandbox: each line names a call and how
// it ended (ok, or the errno's name), read by TestSeccompInsideTheSandbox.
const syscallProbe = `
import ctypes, errno, os, subprocess, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
SYS_CLONE, SYS_IO_URING_SETUP, SYS_CLONE3 = (int(n) for n in sys.argv[1:4])
CLONE_NEWUSER, SIGCHLD, TIOCSTI = 0x10000000, 17, 0x5412

def report(name, r):
    print("%s=%s" % (name, "ok" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")))

# A raw clone: the child leaves at once, before Python can notice.
def clone(flags):
    r = libc.syscall(SYS_CLONE, ctypes.c_ulong(flags), 0, 0, 0, 0)
    if r == 0:
        os._exit(0)
    if r > 0:
        os.waitpid(r, 0)
    return r

report("clone_newuser", clone(CLONE_NEWUSER | SIGCHLD))
report("clone_fork", clone(SIGCHLD))
report("io_uring_setup", libc.syscall(SYS_IO_URING_SETUP, 1, ctypes.c_void_p(0)))
report("clone3", libc.syscall(SYS_CLONE3, ctypes.c_void_p(0), 0))
report("tiocsti", libc.ioctl(0, TIOCSTI, ctypes.c_char_p(b"x")))

out = []
t = threading.Thread(target=lambda: out.append(subprocess.run(["true"]).returncode))
t.start()
t.join()
print("thread_subprocess=%s" % ("ok" if out == [0] else out))

# Last: once in a user namespace of its own, the process could not
# make another (its uid has no mapping there), which would hide the
# clone result above.
report("unshare_newuser", libc.unshare(CLONE_NEWUSER))
`

// The seccomp filter holds inside a real sandbox: no user namespace
// (through unshare or clone), no io_uring, clone3 answered ENOSYS so
// that glibc falls back to clone, no TIOCSTI; while fork, threads and
// subprocesses keep working. Without the filter, unshare -U succeeds
// (this kernel allows unprivileged user namespaces), io_uring_setup and
// clone3 fail on their NULL arguments (EFAULT, EINVAL) and TIOCSTI on
// /dev/null with ENOTTY.
func TestSeccompInsideTheSandbox(t *testing.T) {
	s := newSandbox(t)
	for _, tool := range []string{"/usr/bin/unshare", "/usr/bin/python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	abi, err := abiFor(runtime.GOARCH)
	if err != nil {
		t.Skip(err)
	}
	nr := func(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
	out := run(t, s, Spec{Env: []string{"PATH=/usr/bin:/bin"}}, `
unshare -U true 2>&1 && echo "unshare_U=ok" || echo "unshare_U=refused"
unshare -r true 2>&1 && echo "unshare_r=ok" || echo "unshare_r=refused"
sh -c 'true & wait' && echo "fork=ok"
python3 -c '`+syscallProbe+`' `+nr(abi.clone)+` `+nr(abi.ioURingSetup)+` `+nr(abi.clone3)+` 2>&1
`)
	want := []string{
		"Operation not permitted",
		"unshare_U=refused", "unshare_r=refused", "fork=ok",
		"unshare_newuser=EPERM", "clone_newuser=EPERM", "clone_fork=ok",
		"io_uring_setup=EPERM", "clone3=ENOSYS", "tiocsti=EPERM",
		"thread_subprocess=ok",
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("sandbox output lacks %q:\n%s", w, out)
		}
	}
}
