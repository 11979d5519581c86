package abi_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/pinfold/pinfold/syscalls/abi"
)

// maxValsCap bounds the value storage a decoder may hold for a message of
// n bytes: every value takes at least 8 bytes of it, and append at most
// doubles the storage it needs.
func maxValsCap(n int) int { return 2*(n/abi.ValueHeadSize) + 8 }

func seedRequests(f *testing.F) {
	for _, r := range sampleRequests() {
		msg, err := abi.AppendRequest(nil, r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(msg)
	}
	for _, tc := range hostileRequests() {
		f.Add(tc.msg)
	}
	f.Add(req(2, 0, rqEntry(1, 3, 0xffff, vStr("a")), rqEntry(2, 0, 0)))
	f.Add(req(1, 0, rqEntry(1, 3, 1, vStr("a"), vU64(1))))
}

func seedReplies(f *testing.F) {
	for _, r := range sampleReplies() {
		msg, err := abi.AppendReply(nil, r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(msg)
	}
	f.Add(abi.AppendErrorReply(nil, abi.EBADMSG, "bad magic"))
	for _, tc := range hostileRequests() {
		f.Add(tc.msg)
	}
}

// FuzzDecodeRequest checks that DecodeRequest never panics, refuses with a
// *ProtocolError carrying an errno and a reason, holds no more storage than
// the message accounts for, and that what it accepts whole is canonical:
// encoding the decoded request gives back the same bytes.
func FuzzDecodeRequest(f *testing.F) {
	seedRequests(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		var r abi.Request
		err := abi.DecodeRequest(msg, &r)
		if err != nil {
			var pe *abi.ProtocolError
			if !errors.As(err, &pe) || pe.Errno == 0 || pe.Reason == "" {
				t.Fatalf("error %#v is not a *ProtocolError with an errno and a reason", err)
			}
			return
		}
		if len(r.Calls) == 0 || len(r.Calls) > abi.MaxBatch || len(msg) > abi.MaxMessage {
			t.Fatalf("accepted %d calls in %d bytes", len(r.Calls), len(msg))
		}
		if c := abi.ValsCap(&r); c > maxValsCap(len(msg)) {
			t.Fatalf("holds storage for %d values after a %d-byte message", c, len(msg))
		}
		whole := true
		for _, c := range r.Calls {
			if c.Err != nil {
				if c.Err.Errno != abi.EBADMSG || c.Args != nil {
					t.Fatalf("refused entry: %+v", c)
				}
				whole = false
				continue
			}
			if len(c.Args) > abi.MaxArgs {
				t.Fatalf("%d args", len(c.Args))
			}
		}
		if !whole {
			return
		}
		again, err := abi.AppendRequest(nil, &r)
		if err != nil {
			t.Fatalf("re-encoding an accepted request: %v", err)
		}
		if !bytes.Equal(again, msg) {
			t.Fatalf("not canonical:\n got %v\nwant %v", again, msg)
		}
	})
}

// FuzzDecodeReply is FuzzDecodeRequest for replies.
func FuzzDecodeReply(f *testing.F) {
	seedReplies(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		var r abi.Reply
		err := abi.DecodeReply(msg, &r)
		if err != nil {
			var pe *abi.ProtocolError
			if !errors.As(err, &pe) || pe.Errno == 0 || pe.Reason == "" {
				t.Fatalf("error %#v is not a *ProtocolError with an errno and a reason", err)
			}
			return
		}
		if c := abi.ReplyValsCap(&r); c > maxValsCap(len(msg)) {
			t.Fatalf("holds storage for %d values after a %d-byte message", c, len(msg))
		}
		for _, res := range r.Results {
			if res.NFDs > abi.MaxEntryFDs || (res.Errno != 0 && (res.NFDs != 0 || len(res.Values) != 1)) {
				t.Fatalf("accepted entry %+v", res)
			}
			if sc, ok := abi.Lookup(res.Sysno); ok && res.Errno == 0 {
				_ = sc.CheckResults(res.Values) // must not panic on anything
			}
		}
		again, err := abi.AppendReply(nil, &r)
		if err != nil {
			t.Fatalf("re-encoding an accepted reply: %v", err)
		}
		if !bytes.Equal(again, msg) {
			t.Fatalf("not canonical:\n got %v\nwant %v", again, msg)
		}
	})
}

// program turns fuzz bytes into a sequence of small numbers and byte
// strings, so that FuzzRoundTrip explores structured messages.
type program struct {
	b    []byte
	made int // bytes values made so far, bounded to keep each run fast
}

func (p *program) byte() byte {
	if len(p.b) == 0 {
		return 0
	}
	c := p.b[0]
	p.b = p.b[1:]
	return c
}

func (p *program) u64() uint64 {
	var v uint64
	for i := range p.byte() % 9 {
		v |= uint64(p.byte()) << (8 * i)
	}
	return v
}

func (p *program) bytes() []byte {
	n := int(p.byte())
	if p.byte()%16 == 0 && p.made < 2*abi.MaxMessage {
		n *= 200 // sometimes large, to reach MaxMessage
	}
	p.made += n
	out := make([]byte, n)
	for i := range out {
		out[i] = p.byte()
	}
	return out
}

func (p *program) value() abi.Value {
	if p.byte()%2 == 0 {
		return abi.U64Value(p.u64())
	}
	return abi.BytesValue(p.bytes())
}

// FuzzRoundTrip checks decode(encode(x)) == x for requests and replies
// built from the fuzz input, and that the encoder refuses exactly the
// messages that would not fit.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18})
	f.Add(bytes.Repeat([]byte{63, 255, 1, 7, 0, 200, 0}, 40))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := &program{b: data}
		count := 1 + int(p.byte())%abi.MaxBatch
		req := &abi.Request{Flags: abi.Flags(p.byte()) & abi.RequestFlags}
		rep := &abi.Reply{}
		size, rsize := abi.HeaderSize, abi.HeaderSize
		for range count {
			c := abi.Call{ID: p.u64(), Sysno: abi.Sysno(p.u64())}
			res := abi.Result{ID: c.ID, Sysno: c.Sysno}
			size += abi.RequestEntrySize
			rsize += abi.ReplyEntrySize
			for range int(p.byte()) % (abi.MaxArgs + 1) {
				v := p.value()
				c.Args = append(c.Args, v)
				res.Values = append(res.Values, v)
				size += v.EncodedSize()
				rsize += v.EncodedSize()
			}
			if p.byte()%4 == 0 {
				res.Errno = abi.Errno(1 + p.byte())
				reason := abi.BytesValue(p.bytes())
				for _, v := range res.Values {
					rsize -= v.EncodedSize()
				}
				res.Values = []abi.Value{reason}
				rsize += reason.EncodedSize()
			} else {
				res.NFDs = int(p.byte() % 2)
			}
			req.Calls = append(req.Calls, c)
			rep.Results = append(rep.Results, res)
		}

		msg, err := abi.AppendRequest(nil, req)
		if size > abi.MaxMessage {
			if !errors.Is(err, abi.E2BIG) {
				t.Fatalf("request of %d bytes: %v, want E2BIG", size, err)
			}
		} else {
			if err != nil || len(msg) != size {
				t.Fatalf("request of %d bytes: %d bytes, %v", size, len(msg), err)
			}
			var got abi.Request
			if err := abi.DecodeRequest(msg, &got); err != nil {
				t.Fatalf("decoding an encoded request: %v", err)
			}
			if g, w := normalizeRequest(&got), normalizeRequest(req); !reflect.DeepEqual(g, w) {
				t.Fatalf("request round trip:\n got %+v\nwant %+v", g, w)
			}
		}

		msg, err = abi.AppendReply(nil, rep)
		if rsize > abi.MaxMessage {
			if !errors.Is(err, abi.EMSGSIZE) {
				t.Fatalf("reply of %d bytes: %v, want EMSGSIZE", rsize, err)
			}
			return
		}
		if err != nil || len(msg) != rsize {
			t.Fatalf("reply of %d bytes: %d bytes, %v", rsize, len(msg), err)
		}
		var got abi.Reply
		if err := abi.DecodeReply(msg, &got); err != nil {
			t.Fatalf("decoding an encoded reply: %v", err)
		}
		if g, w := normalizeReply(&got), normalizeReply(rep); !reflect.DeepEqual(g, w) {
			t.Fatalf("reply round trip:\n got %+v\nwant %+v", g, w)
		}
	})
}
