package sandbox

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// The seccomp filter bwrap loads (--seccomp) right before it executes
// the command: a denylist, whose reasons the package comment gives.

// Values a seccomp filter returns (linux/seccomp.h), and errnos.
const (
	retAllow = 0x7fff0000 // SECCOMP_RET_ALLOW
	retErrno = 0x00050000 // SECCOMP_RET_ERRNO, with the errno in the low 16 bits
	ePERM    = 1
	eNOSYS   = 38

	retEPERM  = retErrno | ePERM
	retENOSYS = retErrno | eNOSYS
)

// Offsets in struct seccomp_data { int nr; u32 arch; u64 instruction_pointer;
// u64 args[6]; }. Both architectures are little-endian, so an argument's
// low 32 bits come first.
const (
	offNr   = 0
	offArch = 4
	offArg0 = 16 // args[0], low half
	offArg1 = 24 // args[1], low half
)

const (
	// Every CLONE_NEW* flag. Low 32 bits only: unshare refuses higher
	// bits (EINVAL) and clone reads only the low 32 bits of its flags.
	cloneNewNamespaces = 0x00020000 | // CLONE_NEWNS
		0x02000000 | // CLONE_NEWCGROUP
		0x04000000 | // CLONE_NEWUTS
		0x08000000 | // CLONE_NEWIPC
		0x10000000 | // CLONE_NEWUSER
		0x20000000 | // CLONE_NEWPID
		0x40000000 | // CLONE_NEWNET
		0x00000080 // CLONE_NEWTIME
	// clone's low byte is the child's exit signal (CSIGNAL), so 0x80
	// there is no CLONE_NEWTIME (clone cannot make a time namespace).
	cloneNewNamespacesViaClone = cloneNewNamespaces &^ 0x00000080

	tiocsti   = 0x5412 // push a byte into a terminal's input
	tioclinux = 0x541c // its subcommands paste a console's selection as input

	x32SyscallBit = 0x40000000 // __X32_SYSCALL_BIT
)

// abi is what the filter needs to know of one architecture.
type abi struct {
	auditArch uint32 // AUDIT_ARCH_* of the native 64-bit ABI
	x32       bool   // x86_64: refuse x32 calls (same arch, nr with x32SyscallBit)

	clone, unshare, clone3, ioctl, personality uint32
	ioURingSetup                               uint32 // also named by the tests
	// Refused with EPERM, whatever their arguments.
	denied []uint32
}

// abiFor gives the syscall numbers of goarch (from the kernel's
// syscall tables; the tests compare the native one with x/sys/unix).
func abiFor(goarch string) (abi, error) {
	switch goarch {
	case "amd64":
		return abi{
			auditArch: 0xc000003e, // AUDIT_ARCH_X86_64
			x32:       true,
			clone:     56, unshare: 272, clone3: 435, ioctl: 16, personality: 135,
			ioURingSetup: 425,
			denied: []uint32{
				425, 426, 427, // io_uring_setup, io_uring_enter, io_uring_register
				321,           // bpf
				248, 249, 250, // add_key, request_key, keyctl
				298,      // perf_event_open
				323,      // userfaultfd
				246, 320, // kexec_load, kexec_file_load
				175, 313, 176, // init_module, finit_module, delete_module
				134,      // uselib
				308,      // setns
				165, 166, // mount, umount2
				155,                          // pivot_root
				428, 429, 430, 431, 432, 433, // open_tree, move_mount, fsopen, fsconfig, fsmount, fspick
				442, 467, // mount_setattr, open_tree_attr
				303, 304, // name_to_handle_at, open_by_handle_at
				101,      // ptrace
				310, 311, // process_vm_readv, process_vm_writev
				438,      // pidfd_getfd
				163,      // acct
				167, 168, // swapon, swapoff
				169,      // reboot
				103,      // syslog
				179, 443, // quotactl, quotactl_fd
				212,      // lookup_dcookie
				172, 173, // iopl, ioperm
			},
		}, nil
	case "arm64":
		return abi{
			auditArch: 0xc00000b7, // AUDIT_ARCH_AARCH64
			clone:     220, unshare: 97, clone3: 435, ioctl: 29, personality: 92,
			ioURingSetup: 425,
			denied: []uint32{
				425, 426, 427, // io_uring_setup, io_uring_enter, io_uring_register
				280,           // bpf
				217, 218, 219, // add_key, request_key, keyctl
				241,      // perf_event_open
				282,      // userfaultfd
				104, 294, // kexec_load, kexec_file_load
				105, 273, 106, // init_module, finit_module, delete_module
				268,    // setns
				40, 39, // mount, umount2
				41,                           // pivot_root
				428, 429, 430, 431, 432, 433, // open_tree, move_mount, fsopen, fsconfig, fsmount, fspick
				442, 467, // mount_setattr, open_tree_attr
				264, 265, // name_to_handle_at, open_by_handle_at
				117,      // ptrace
				270, 271, // process_vm_readv, process_vm_writev
				438,      // pidfd_getfd
				89,       // acct
				224, 225, // swapon, swapoff
				142,     // reboot
				116,     // syslog
				60, 443, // quotactl, quotactl_fd
				18, // lookup_dcookie
			},
		}, nil
	}
	return abi{}, fmt.Errorf("sandbox: seccomp filters exist for amd64 and arm64 only, not %s", goarch)
}

// seccompFilter is the classic BPF program for goarch, in the order
// the kernel runs it:
//
//  1. another ABI (i386 or x32 on x86_64, aarch32 on arm64): EPERM, since
//     the checks below know the native syscall numbers only;
//  2. unshare or clone with a CLONE_NEW* flag: EPERM;
//  3. clone3: ENOSYS, since its flags sit in memory a filter cannot read
//     (glibc then falls back to clone);
//  4. ioctl TIOCSTI or TIOCLINUX: EPERM;
//  5. personality other than the allowed ones: EPERM;
//  6. the denied calls: EPERM;
//  7. everything else: allowed.
//
// A linear list of short forward jumps: no offset comes near 255.
func seccompFilter(goarch string) ([]bpf.Instruction, error) {
	a, err := abiFor(goarch)
	if err != nil {
		return nil, err
	}
	// The personalities a process may set (those Docker's default
	// profile allows): Linux, PER_LINUX32, UNAME26, both, and the
	// 0xffffffff query. Others (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE,
	// MMAP_PAGE_ZERO…) only weaken the process's own hardening.
	personalities := [...]uint32{0x0, 0x8, 0x20000, 0x20008, 0xffffffff}
	ld := func(off uint32) bpf.Instruction { return bpf.LoadAbsolute{Off: off, Size: 4} }
	ret := func(v uint32) bpf.Instruction { return bpf.RetConstant{Val: v} }
	p := []bpf.Instruction{
		ld(offArch),
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: a.auditArch, SkipTrue: 1},
		ret(retEPERM),
		ld(offNr),
	}
	if a.x32 {
		// nr -1 is no call (a tracer's way to skip one): let the
		// kernel answer ENOSYS as without a filter.
		p = append(p,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0xffffffff, SkipTrue: 2},
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: x32SyscallBit, SkipFalse: 1},
			ret(retEPERM),
		)
	}
	// Each block below starts with the call's number in A and leaves
	// through a return once the call matched.
	flags := func(nr, mask uint32) {
		p = append(p,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: 4},
			ld(offArg0),
			bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: mask, SkipFalse: 1},
			ret(retEPERM),
			ret(retAllow),
		)
	}
	flags(a.unshare, cloneNewNamespaces)
	flags(a.clone, cloneNewNamespacesViaClone)
	p = append(p,
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: a.clone3, SkipFalse: 1},
		ret(retENOSYS),

		// ioctl's request is an unsigned int: its low 32 bits are all.
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: a.ioctl, SkipFalse: 5},
		ld(offArg1),
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: tiocsti, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: tioclinux, SkipTrue: 1},
		ret(retAllow),
		ret(retEPERM),

		// personality's argument is an unsigned int too.
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: a.personality, SkipFalse: uint8(len(personalities) + 3)},
		ld(offArg0),
	)
	for i, v := range personalities {
		p = append(p, bpf.JumpIf{Cond: bpf.JumpEqual, Val: v, SkipTrue: uint8(len(personalities) - i)})
	}
	p = append(p, ret(retEPERM), ret(retAllow))
	for _, nr := range a.denied {
		p = append(p,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: 1},
			ret(retEPERM),
		)
	}
	return append(p, ret(retAllow)), nil
}

// seccompProgram is seccompFilter as bwrap reads it: struct sock_filter
// { u16 code; u8 jt; u8 jf; u32 k; } after another, in the native
// (little-endian, on both architectures) byte order.
func seccompProgram(goarch string) ([]byte, error) {
	p, err := seccompFilter(goarch)
	if err != nil {
		return nil, err
	}
	raw, err := bpf.Assemble(p)
	if err != nil {
		return nil, fmt.Errorf("sandbox: seccomp filter: %w", err)
	}
	// The kernel's limit (BPF_MAXINSNS); it also keeps the program (8
	// bytes an instruction) within what dataPipe holds.
	if len(raw) > 4096 {
		return nil, fmt.Errorf("sandbox: the seccomp filter has %d instructions, more than the kernel's 4096", len(raw))
	}
	out := make([]byte, 0, 8*len(raw))
	for _, r := range raw {
		out = append(out,
			byte(r.Op), byte(r.Op>>8), r.Jt, r.Jf,
			byte(r.K), byte(r.K>>8), byte(r.K>>16), byte(r.K>>24))
	}
	return out, nil
}
