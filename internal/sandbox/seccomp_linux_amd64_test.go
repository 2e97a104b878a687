package sandbox

import "golang.org/x/sys/unix"

// archOnlyDenied are the denied calls only x86_64 has.
func archOnlyDenied() []int { return []int{unix.SYS_USELIB, unix.SYS_IOPL, unix.SYS_IOPERM} }
