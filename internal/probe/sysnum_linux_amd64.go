package probe

// Syscall numbers the syscall package lacks on this architecture.
const (
	sysSetns          = 308
	sysBPF            = 321
	sysUserfaultfd    = 323
	sysProcessVMReadv = 310
	sysOpenByHandleAt = 304
	sysIOUringSetup   = 425
	sysPidfdOpen      = 434
	sysSetdomainname  = 171
	sysFsopen         = 430
)
