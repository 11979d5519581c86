package sandbox

import (
	"os"
	"strconv"
	"strings"

	"github.com/pinfold/pinfold/syscalls"
)

// Features is what the kernel offers that pinfold uses or will use; the
// daemon reports it at start and `pinfold info` prints it.
type Features struct {
	Kernel            string   `json:"kernel"`
	CgroupMode        string   `json:"cgroupMode"`
	CgroupControllers []string `json:"cgroupControllers"`
	SeccompUserNotify bool     `json:"seccompUserNotify"`
	LandlockABI       int      `json:"landlockAbi"`
	UserNamespaces    bool     `json:"userNamespaces"`
	Pidfd             bool     `json:"pidfd"`
}

// ProbeFeatures reports the kernel features, with the cgroup layout the
// supervisor found.
func ProbeFeatures(s *Supervisor) Features {
	f := Features{
		Kernel:      syscalls.KernelRelease(),
		LandlockABI: syscalls.LandlockABI(),
		Pidfd:       syscalls.PidfdWorks(),
	}
	if s != nil {
		f.CgroupMode = string(s.cgroups.Mode())
		f.CgroupControllers = s.cgroups.Controllers()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/seccomp/actions_avail"); err == nil {
		f.SeccompUserNotify = strings.Contains(string(b), "user_notif")
	}
	if b, err := os.ReadFile("/proc/sys/user/max_user_namespaces"); err == nil {
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		f.UserNamespaces = n > 0
	}
	return f
}
