package probe

// Syscall numbers the syscall package lacks (or names differently) on this
// architecture.
const (
	sysSetns          = 268
	sysBPF            = 280
	sysUserfaultfd    = 282
	sysProcessVMReadv = 270
	sysOpenByHandleAt = 265
	sysIOUringSetup   = 425
	sysPidfdOpen      = 434
	sysSetdomainname  = 162
	sysFsopen         = 430
)
