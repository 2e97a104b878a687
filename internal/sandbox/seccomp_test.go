package sandbox

import (
	"encoding/binary"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/bpf"
)

// seccompData is struct seccomp_data as the filter sees it. The kernel
// loads each 32-bit word of the (little-endian) struct in native order;
// x/net/bpf's VM loads words big-endian, so the words are written
// big-endian here, in the places the little-endian struct has them:
// nr at 0, arch at 4, args[i] low half at 16+8i, high half at 20+8i.
func seccompData(arch uint32, nr int32, args ...uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], uint32(nr))
	binary.BigEndian.PutUint32(b[4:], arch)
	for i, a := range args {
		binary.BigEndian.PutUint32(b[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(b[20+8*i:], uint32(a>>32))
	}
	return b
}

// seccompCase is one call and the filter's expected answer.
type seccompCase struct {
	name string
	arch uint32
	nr   int32
	args []uint64
	want uint32
}

// The filter, run in x/net/bpf's VM for both architectures. Before the
// filter existed, nothing here did (no seccompFilter, no --seccomp).
func TestSeccompFilter(t *testing.T) {
	const (
		newUser  = 0x10000000
		newTime  = 0x80
		sigchld  = 17
		threads  = 0x3d0f00   // glibc's pthread_create: CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
		i386     = 0x40000003 // AUDIT_ARCH_I386
		aarch32  = 0x40000028 // AUDIT_ARCH_ARM
		highBits = 0xffffffff_00000000
	)
	// Numbers the abi does not name.
	other := map[string]struct{ read, bpf, ptrace, mount int32 }{
		"amd64": {0, 321, 101, 165},
		"arm64": {63, 280, 117, 40},
	}
	for _, goarch := range []string{"amd64", "arm64"} {
		a, err := abiFor(goarch)
		if err != nil {
			t.Fatal(err)
		}
		o, arch := other[goarch], a.auditArch
		n := func(v uint32) int32 { return int32(v) }
		cases := []seccompCase{
			{"read", arch, o.read, nil, retAllow},
			{"unshare(CLONE_NEWUSER)", arch, n(a.unshare), []uint64{newUser}, retEPERM},
			{"unshare(CLONE_NEWNET)", arch, n(a.unshare), []uint64{0x40000000}, retEPERM},
			{"unshare(CLONE_NEWTIME)", arch, n(a.unshare), []uint64{newTime}, retEPERM},
			// No namespace: unsharing files or fs attributes is the
			// process's own business.
			{"unshare(0)", arch, n(a.unshare), []uint64{0}, retAllow},
			{"unshare(CLONE_FILES|CLONE_FS)", arch, n(a.unshare), []uint64{0x400 | 0x200}, retAllow},
			{"clone(SIGCHLD)", arch, n(a.clone), []uint64{sigchld}, retAllow},
			{"clone(threads)", arch, n(a.clone), []uint64{threads}, retAllow},
			{"clone(CLONE_NEWUSER|SIGCHLD)", arch, n(a.clone), []uint64{newUser | sigchld}, retEPERM},
			{"clone(CLONE_NEWNS|SIGCHLD), high bits set", arch, n(a.clone), []uint64{highBits | 0x20000 | sigchld}, retEPERM},
			{"clone(SIGCHLD), high bits set", arch, n(a.clone), []uint64{highBits | sigchld}, retAllow},
			{"clone3", arch, n(a.clone3), []uint64{0, 88}, retENOSYS},
			{"io_uring_setup", arch, n(a.ioURingSetup), []uint64{1, 0}, retEPERM},
			{"bpf", arch, o.bpf, nil, retEPERM},
			{"ptrace", arch, o.ptrace, nil, retEPERM},
			{"mount", arch, o.mount, nil, retEPERM},
			{"ioctl TIOCSTI", arch, n(a.ioctl), []uint64{0, tiocsti}, retEPERM},
			{"ioctl TIOCSTI, high bits set", arch, n(a.ioctl), []uint64{0, highBits | tiocsti}, retEPERM},
			{"ioctl TIOCLINUX", arch, n(a.ioctl), []uint64{0, tioclinux}, retEPERM},
			{"ioctl TCGETS", arch, n(a.ioctl), []uint64{0, 0x5401}, retAllow},
			{"personality query", arch, n(a.personality), []uint64{0xffffffff}, retAllow},
			{"personality(PER_LINUX)", arch, n(a.personality), []uint64{0}, retAllow},
			{"personality(PER_LINUX32)", arch, n(a.personality), []uint64{8}, retAllow},
			{"personality(ADDR_NO_RANDOMIZE)", arch, n(a.personality), []uint64{0x0040000}, retEPERM},
			{"personality(READ_IMPLIES_EXEC)", arch, n(a.personality), []uint64{0x0400000}, retEPERM},
			{"i386 call", i386, o.read, nil, retEPERM},
			{"aarch32 call", aarch32, o.read, nil, retEPERM},
		}
		if a.x32 {
			cases = append(cases,
				seccompCase{"x32 read", arch, x32SyscallBit | 0, nil, retEPERM},
				seccompCase{"x32 unshare(CLONE_NEWUSER)", arch, x32SyscallBit | 272, []uint64{newUser}, retEPERM},
				seccompCase{"nr -1 (a skipped call)", arch, -1, nil, retAllow},
			)
		}
		for _, nr := range a.denied {
			cases = append(cases, seccompCase{"denied " + strconv.Itoa(int(nr)), arch, int32(nr), nil, retEPERM})
		}

		p, err := seccompFilter(goarch)
		if err != nil {
			t.Fatal(err)
		}
		vm, err := bpf.NewVM(p)
		if err != nil {
			t.Fatalf("%s: %v", goarch, err)
		}
		for _, c := range cases {
			t.Run(goarch+"/"+c.name, func(t *testing.T) {
				// The VM's result is a count of bytes to keep: for a
				// RetConstant, the constant, here a SECCOMP_RET_* value.
				got, err := vm.Run(seccompData(c.arch, c.nr, c.args...))
				if err != nil {
					t.Fatal(err)
				}
				if uint32(got) != c.want {
					t.Errorf("filter answered %#x, want %#x", got, c.want)
				}
			})
		}
	}
}

func TestNewRefusesOtherArchitectures(t *testing.T) {
	for _, goarch := range []string{"386", "riscv64", "s390x"} {
		if _, err := seccompProgram(goarch); err == nil || !strings.Contains(err.Error(), "seccomp filters exist for amd64 and arm64 only") {
			t.Errorf("%s: %v", goarch, err)
		}
	}
	for _, goarch := range []string{"amd64", "arm64"} {
		raw, err := seccompProgram(goarch)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := seccompFilter(goarch)
		if len(raw) != 8*len(p) {
			t.Errorf("%s: %d bytes for %d instructions", goarch, len(raw), len(p))
		}
		// The first instruction, little-endian: ld [4] (BPF_LD|BPF_W|BPF_ABS = 0x20).
		if want := []byte{0x20, 0, 0, 0, 4, 0, 0, 0}; !slices.Equal(raw[:8], want) {
			t.Errorf("%s: first instruction % x, want % x", goarch, raw[:8], want)
		}
	}
}
