package abi

import (
	"fmt"
	"slices"
	"strings"
)

// Sysno is a syscall number.
type Sysno uint16

// Syscall numbers. They never change; new calls get new numbers.
const (
	SysNop       Sysno = 0
	SysSelf      Sysno = 1
	SysList      Sysno = 2
	SysStat      Sysno = 3
	SysUnlink    Sysno = 4
	SysPipeOpen  Sysno = 5
	SysShmCreate Sysno = 6
	SysShmAttach Sysno = 7
	SysRegionMap Sysno = 8
	SysMQOpen    Sysno = 9

	// NumSyscalls is one more than the largest syscall number.
	NumSyscalls = 10
)

// Flags of stat's flags result.
const (
	StatPersistent = 1 << 0
	StatUnlinked   = 1 << 1
)

// Flags of mq_open's flags argument (the numbers of ipc.MQFlags).
const (
	MQNonblock  = 1 << 0
	MQExclusive = 1 << 1
)

// Param is one argument or result of a syscall.
type Param struct {
	Name string
	Type ValueType
}

// Syscall describes one call: the data the server dispatches from and the
// documentation and tests iterate.
type Syscall struct {
	Sysno Sysno
	// Name is the call's name in errors and client libraries: "shm_attach".
	Name string
	// Args are the arguments, in order.
	Args []Param
	// Results are the values of a successful reply, in order.
	Results []Param
	// Each, if set, is a group of results repeated after Results as many
	// times as the reply holds (list: one group per object).
	Each []Param
	// FD reports that a successful call returns one file descriptor.
	FD bool
	// Summary says what the call does, in one line.
	Summary string
}

func u64(name string) Param { return Param{Name: name, Type: U64} }
func str(name string) Param { return Param{Name: name, Type: Bytes} }

var table = [NumSyscalls]Syscall{
	SysNop: {Sysno: SysNop, Name: "nop",
		Summary: "does nothing (for round-trip benchmarks)"},
	SysSelf: {Sysno: SysSelf, Name: "self",
		Results: []Param{str("app"), str("policy"), u64("maxObjects"), u64("maxBytes"), u64("objects"), u64("bytes")},
		Summary: "the calling app, its policy, its quota and what it uses of it"},
	SysList: {Sysno: SysList, Name: "list",
		Args:    []Param{u64("offset")},
		Results: []Param{u64("total")},
		Each:    []Param{str("name"), u64("kind"), u64("size"), str("owner")},
		Summary: "the objects the app can see, sorted by name, from offset, as many as fit in one reply"},
	SysStat: {Sysno: SysStat, Name: "stat",
		Args: []Param{str("name")},
		Results: []Param{u64("kind"), u64("size"), str("owner"), str("ownerPolicy"), u64("holders"),
			u64("flags"), u64("created"), u64("maxmsg"), u64("msgsize")},
		Summary: "one object's kind, size, owner, holders, flags (1 persistent, 2 unlinked), creation time (unix ns) and mq attributes"},
	SysUnlink: {Sysno: SysUnlink, Name: "unlink",
		Args:    []Param{str("name")},
		Summary: "removes an object's name; holders keep their descriptors"},
	SysPipeOpen: {Sysno: SysPipeOpen, Name: "pipe_open",
		Args:    []Param{str("name"), u64("end")},
		FD:      true,
		Summary: "one end of a named pipe (end 1 read, 2 write), created on first use"},
	SysShmCreate: {Sysno: SysShmCreate, Name: "shm_create",
		Args:    []Param{str("name"), u64("size")},
		Results: []Param{u64("size")},
		FD:      true,
		Summary: "creates sealed shared memory of size bytes; returns a read-write descriptor"},
	SysShmAttach: {Sysno: SysShmAttach, Name: "shm_attach",
		Args:    []Param{str("name"), u64("access")},
		Results: []Param{u64("size")},
		FD:      true,
		Summary: "attaches existing shared memory (access 1 read, 3 readwrite)"},
	SysRegionMap: {Sysno: SysRegionMap, Name: "region_map",
		Args:    []Param{str("name"), u64("size"), u64("access")},
		Results: []Param{u64("size"), u64("created")},
		FD:      true,
		Summary: "a region file to mmap: created with size bytes when absent (size 0 only attaches)"},
	SysMQOpen: {Sysno: SysMQOpen, Name: "mq_open",
		Args:    []Param{str("name"), u64("maxmsg"), u64("msgsize"), u64("access"), u64("flags")},
		Results: []Param{u64("maxmsg"), u64("msgsize"), u64("created")},
		FD:      true,
		Summary: "a message queue descriptor (access 1 receive, 2 send, 3 both; flags 1 nonblock, 2 exclusive create); maxmsg and msgsize 0 only attach"},
}

// Syscalls returns a copy of the syscall table, in sysno order.
func Syscalls() []Syscall { return slices.Clone(table[:]) }

// Lookup returns the syscall numbered n.
func Lookup(n Sysno) (Syscall, bool) {
	if int(n) >= len(table) {
		return Syscall{}, false
	}
	return table[n], true
}

func (n Sysno) String() string {
	if s, ok := Lookup(n); ok {
		return s.Name
	}
	return fmt.Sprintf("sysno(%d)", uint16(n))
}

// Signature formats the call as "shm_attach(name str, access u64) -> (size u64) + fd".
func (s Syscall) Signature() string {
	var b strings.Builder
	b.WriteString(s.Name)
	writeParams(&b, s.Args)
	b.WriteString(" -> ")
	res := s.Results
	if len(s.Each) > 0 {
		b.WriteString("(")
		for i, p := range res {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s %s", p.Name, p.Type)
		}
		b.WriteString(", [")
		for i, p := range s.Each {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s %s", p.Name, p.Type)
		}
		b.WriteString("]...)")
	} else {
		writeParams(&b, res)
	}
	if s.FD {
		b.WriteString(" + fd")
	}
	return b.String()
}

func writeParams(b *strings.Builder, ps []Param) {
	b.WriteString("(")
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(b, "%s %s", p.Name, p.Type)
	}
	b.WriteString(")")
}

// CheckArgs reports whether args match the call's signature: their number
// and types. The error is a *ProtocolError with EINVAL.
func (s Syscall) CheckArgs(args []Value) error {
	if len(args) != len(s.Args) {
		return &ProtocolError{Errno: EINVAL, Reason: s.argsReason("got " + plural(len(args), "argument"))}
	}
	for i, a := range args {
		if a.Type != s.Args[i].Type {
			return &ProtocolError{Errno: EINVAL, Reason: s.argsReason(fmt.Sprintf("argument %d (%s) is %s", i+1, s.Args[i].Name, a.Type))}
		}
	}
	return nil
}

func (s Syscall) argsReason(got string) string {
	var b strings.Builder
	b.WriteString(s.Name)
	b.WriteString(" takes ")
	writeParams(&b, s.Args)
	b.WriteString("; ")
	b.WriteString(got)
	return b.String()
}

// CheckResults reports whether vals are well-formed results of a
// successful call: Results, then whole groups of Each.
func (s Syscall) CheckResults(vals []Value) error {
	if len(vals) < len(s.Results) {
		return protoErr(EBADMSG, "%s reply has %s, want %d", s.Name, plural(len(vals), "value"), len(s.Results))
	}
	for i, p := range s.Results {
		if vals[i].Type != p.Type {
			return protoErr(EBADMSG, "%s reply value %d (%s) is %s", s.Name, i+1, p.Name, vals[i].Type)
		}
	}
	rest := vals[len(s.Results):]
	if len(s.Each) == 0 {
		if len(rest) > 0 {
			return protoErr(EBADMSG, "%s reply has %s, want %d", s.Name, plural(len(vals), "value"), len(s.Results))
		}
		return nil
	}
	if len(rest)%len(s.Each) != 0 {
		return protoErr(EBADMSG, "%s reply has %d values after the first %d, not a multiple of %d", s.Name, len(rest), len(s.Results), len(s.Each))
	}
	for i, v := range rest {
		if p := s.Each[i%len(s.Each)]; v.Type != p.Type {
			return protoErr(EBADMSG, "%s reply value %d (%s) is %s", s.Name, len(s.Results)+i+1, p.Name, v.Type)
		}
	}
	return nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
