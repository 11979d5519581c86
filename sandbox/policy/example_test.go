package policy_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/pinfold/pinfold/sandbox/policy"
)

func ExampleParse() {
	_, err := policy.Parse("tool.yaml", []byte(`apiVersion: pinfold/v1
kind: SandboxPolicy
metadata:
  name: tool
spec:
  resources:
    memroy: 256Mi
    pids: many
  limits:
    wallTime: 3 sec
`))
	fmt.Println(err)
	fmt.Println(errors.Is(err, policy.ErrUnknownField))
	// Output:
	// tool.yaml:7:5: spec.resources.memroy: unknown field (did you mean "memory"?)
	// tool.yaml:8:11: spec.resources.pids: expected an integer, got "many"
	// tool.yaml:10:15: spec.limits.wallTime: "3 sec" is not a duration (use e.g. 30s or 1m30s)
	// true
}

func ExamplePolicy_Validate() {
	p := policy.Default()
	p.Spec.Limits.WallTime = -time.Second // e.g. from a command-line flag
	p.Spec.Capabilities.Add = []string{"CAP_NET_BIND"}
	fmt.Println(p.Validate())
	// Output:
	// spec.limits.wallTime: must not be negative (0 is no limit)
	// spec.capabilities.add[0]: "CAP_NET_BIND" is not a capability (did you mean CAP_NET_BIND_SERVICE?)
}

func ExampleResources_OCI() {
	r := policy.Resources{
		Memory:     256 * policy.MiB,
		MemorySwap: 64 * policy.MiB,
		CPU:        0.5,
		CPUPeriod:  100 * time.Millisecond,
		Pids:       64,
	}
	oci := r.OCI()
	fmt.Println("memory", *oci.Memory.Limit, "memory+swap", *oci.Memory.Swap)
	fmt.Println("cpu quota", *oci.CPU.Quota, "period", *oci.CPU.Period)
	fmt.Println("pids", *oci.Pids.Limit)
	// Output:
	// memory 268435456 memory+swap 335544320
	// cpu quota 50000 period 100000
	// pids 64
}
