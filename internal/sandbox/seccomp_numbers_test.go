//go:build linux && (amd64 || arm64)

package sandbox

import (
	"runtime"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// The hand-written syscall numbers of the native architecture are the
// kernel's (as x/sys/unix has them).
func TestSeccompSyscallNumbers(t *testing.T) {
	a, err := abiFor(runtime.GOARCH)
	if err != nil {
		t.Skip(err)
	}
	named := map[string]uint32{
		"clone": a.clone, "unshare": a.unshare, "clone3": a.clone3, "ioctl": a.ioctl,
		"personality": a.personality, "io_uring_setup": a.ioURingSetup,
	}
	want := map[string]int{
		"clone": unix.SYS_CLONE, "unshare": unix.SYS_UNSHARE, "clone3": unix.SYS_CLONE3, "ioctl": unix.SYS_IOCTL,
		"personality": unix.SYS_PERSONALITY, "io_uring_setup": unix.SYS_IO_URING_SETUP,
	}
	for name, nr := range named {
		if int(nr) != want[name] {
			t.Errorf("%s is %d, the kernel's is %d", name, nr, want[name])
		}
	}
	denied := []int{
		unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER,
		unix.SYS_BPF, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY, unix.SYS_KEYCTL,
		unix.SYS_PERF_EVENT_OPEN, unix.SYS_USERFAULTFD,
		unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD,
		unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE,
		unix.SYS_SETNS, unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT,
		unix.SYS_OPEN_TREE, unix.SYS_MOVE_MOUNT, unix.SYS_FSOPEN, unix.SYS_FSCONFIG, unix.SYS_FSMOUNT, unix.SYS_FSPICK,
		unix.SYS_MOUNT_SETATTR, unix.SYS_OPEN_TREE_ATTR,
		unix.SYS_NAME_TO_HANDLE_AT, unix.SYS_OPEN_BY_HANDLE_AT,
		unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV, unix.SYS_PIDFD_GETFD,
		unix.SYS_ACCT, unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_REBOOT, unix.SYS_SYSLOG,
		unix.SYS_QUOTACTL, unix.SYS_QUOTACTL_FD, unix.SYS_LOOKUP_DCOOKIE,
	}
	denied = append(denied, archOnlyDenied()...)
	got := make([]int, len(a.denied))
	for i, nr := range a.denied {
		got[i] = int(nr)
	}
	slices.Sort(got)
	slices.Sort(denied)
	if !slices.Equal(got, denied) {
		t.Errorf("denied calls %v, want the kernel's %v", got, denied)
	}
}
