package ipc

import (
	"syscall"
	"testing"
)

func benchBroker(b *testing.B) (*Broker, *Session, *Session) {
	b.Helper()
	needRoot(b)
	br, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	owner, err := br.Join(AppInfo{ID: "owner", Policy: "p", Grants: allGrants})
	if err != nil {
		b.Fatal(err)
	}
	other, err := br.Join(AppInfo{ID: "other", Policy: "q", Grants: allGrants})
	if err != nil {
		b.Fatal(err)
	}
	return br, owner, other
}

// BenchmarkCreate measures creating and unlinking one object of each kind
// (no descriptor handed out): the kernel work behind shm_create,
// region_map and mq_open, plus the broker's bookkeeping.
func BenchmarkCreate(b *testing.B) {
	for _, c := range []Channel{
		{Name: "x", Kind: Pipe},
		{Name: "x", Kind: Shm, Size: 1 << 20},
		{Name: "x", Kind: Region, Size: 1 << 20},
		{Name: "x", Kind: MQ, MaxMsg: 8, MsgSize: 1024},
	} {
		b.Run(c.Kind.String(), func(b *testing.B) {
			_, owner, _ := benchBroker(b)
			for b.Loop() {
				if err := owner.Create(c); err != nil {
					b.Fatal(err)
				}
				if err := owner.Unlink(c.Name); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAttach measures handing another app a descriptor of an
// existing object (grant checks and one reopen through /proc/self/fd).
func BenchmarkAttach(b *testing.B) {
	for _, c := range []Channel{
		{Name: "x", Kind: Pipe, Access: Read},
		{Name: "x", Kind: Shm, Size: 1 << 20, Access: Read},
		{Name: "x", Kind: Region, Size: 1 << 20, Access: ReadWrite},
		{Name: "x", Kind: MQ, MaxMsg: 8, MsgSize: 1024, Access: Write},
	} {
		b.Run(c.Kind.String(), func(b *testing.B) {
			_, owner, other := benchBroker(b)
			if err := owner.Create(c); err != nil {
				b.Fatal(err)
			}
			attach := c
			attach.Size, attach.MaxMsg, attach.MsgSize = 0, 0, 0
			for b.Loop() {
				fd, err := other.OpenChannel(attach)
				if err != nil {
					b.Fatal(err)
				}
				syscall.Close(fd)
			}
		})
	}
}
