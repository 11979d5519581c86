package abi_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/pinfold/pinfold/syscalls/abi"
)

// le serializes its arguments little-endian, by type: the tests build
// hostile messages byte by byte with it, independently of the encoder.
func le(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch v := p.(type) {
		case uint8:
			b = append(b, v)
		case uint16:
			b = binary.LittleEndian.AppendUint16(b, v)
		case uint32:
			b = binary.LittleEndian.AppendUint32(b, v)
		case uint64:
			b = binary.LittleEndian.AppendUint64(b, v)
		case string:
			b = append(b, v...)
		case []byte:
			b = append(b, v...)
		default:
			panic("le: unsupported type")
		}
	}
	return b
}

// header builds a header with the magic and a zero reserved field.
func header(version, typ uint8, count, flags uint16, length uint32) []byte {
	return le(uint8('P'), uint8('F'), version, typ, count, flags, length, uint32(0))
}

// req builds a request message around raw entries with a correct length.
func req(count uint16, flags uint16, entries ...[]byte) []byte {
	body := bytes.Join(entries, nil)
	return append(header(1, 1, count, flags, uint32(abi.HeaderSize+len(body))), body...)
}

func rqEntry(id uint64, sysno, nargs uint16, args ...[]byte) []byte {
	a := bytes.Join(args, nil)
	return append(le(id, sysno, nargs, uint32(len(a))), a...)
}

func vU64(v uint64) []byte { return le(uint8(1), uint8(0), uint8(0), uint8(0), uint32(8), v) }

func vStr(s string) []byte {
	b := le(uint8(2), uint8(0), uint8(0), uint8(0), uint32(len(s)), s)
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	return b
}

func TestGoldenRequest(t *testing.T) {
	// shm_attach("results/1", readwrite) as id 7: the layout is pinned
	// byte by byte, so a change to the wire format fails here.
	want := []byte{
		'P', 'F', 1, 1, 1, 0, 0, 0, 72, 0, 0, 0, 0, 0, 0, 0, // header: v1 request, count 1, length 72
		7, 0, 0, 0, 0, 0, 0, 0, 7, 0, 2, 0, 40, 0, 0, 0, // id 7, sysno 7, nargs 2, args 40 bytes
		2, 0, 0, 0, 9, 0, 0, 0, 'r', 'e', 's', 'u', 'l', 't', 's', '/', '1', 0, 0, 0, 0, 0, 0, 0, // "results/1"
		1, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, // u64 3
	}
	var b abi.RequestBuilder
	b.Reset(nil, 0)
	b.Begin(7, abi.SysShmAttach)
	b.String("results/1")
	b.U64(3)
	b.End()
	got, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoded\n%v\nwant\n%v", got, want)
	}
}

func TestGoldenReply(t *testing.T) {
	want := []byte{
		'P', 'F', 1, 2, 2, 0, 0, 0, 88, 0, 0, 0, 0, 0, 0, 0, // header: v1 reply, count 2, length 88
		7, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1, 0, 1, 0, 16, 0, 0, 0, 0, 0, 0, 0, // id 7 shm_attach ok, 1 fd, 1 value
		1, 0, 0, 0, 8, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, // size 4096
		8, 0, 0, 0, 0, 0, 0, 0, 3, 0, 1, 0, 0, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, // id 8 stat EPERM, 1 value
		2, 0, 0, 0, 0, 0, 0, 0, // reason ""
	}
	var b abi.ReplyBuilder
	b.Reset(nil)
	b.Begin(7, abi.SysShmAttach)
	b.U64(4096)
	b.End(0, 1)
	b.Fail(8, abi.SysStat, abi.EPERM, "")
	got, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoded\n%v\nwant\n%v", got, want)
	}
}

// sampleRequests are valid requests covering every syscall's arguments.
func sampleRequests() map[string]*abi.Request {
	s := abi.StringValue
	u := abi.U64Value
	all := &abi.Request{}
	for i, sc := range abi.Syscalls() {
		c := abi.Call{ID: uint64(100 + i), Sysno: sc.Sysno}
		for j, p := range sc.Args {
			if p.Type == abi.Bytes {
				c.Args = append(c.Args, s("obj/"+strconv.Itoa(j)))
			} else {
				c.Args = append(c.Args, u(uint64(j)<<40|7))
			}
		}
		all.Calls = append(all.Calls, c)
	}
	full := &abi.Request{Flags: abi.FlagStopOnError}
	for i := range abi.MaxBatch {
		full.Calls = append(full.Calls, abi.Call{ID: ^uint64(i), Sysno: abi.SysNop})
	}
	return map[string]*abi.Request{
		"nop":           {Calls: []abi.Call{{ID: 1}}},
		"every syscall": all,
		"stop on error": {Flags: abi.FlagStopOnError, Calls: []abi.Call{{ID: 1, Sysno: abi.SysUnlink, Args: []abi.Value{s("a")}}, {ID: 2}}},
		"64 calls":      full,
		"unknown sysno": {Calls: []abi.Call{{ID: 9, Sysno: 999, Args: []abi.Value{u(1), s(""), s("12345678")}}}},
		"max args":      {Calls: []abi.Call{{ID: 9, Sysno: 1, Args: []abi.Value{u(1), u(2), u(3), u(4), u(5), u(6), u(7), u(8)}}}},
		"large string":  {Calls: []abi.Call{{ID: 9, Sysno: abi.SysStat, Args: []abi.Value{s(strings.Repeat("x", abi.MaxMessage-abi.HeaderSize-abi.RequestEntrySize-abi.ValueHeadSize))}}}},
	}
}

func sampleReplies() map[string]*abi.Reply {
	s := abi.StringValue
	u := abi.U64Value
	list := abi.Result{ID: 3, Sysno: abi.SysList, Values: []abi.Value{u(2), s("a"), u(2), u(4096), s("app1"), s("b/c"), u(4), u(0), s("app2")}}
	return map[string]*abi.Reply{
		"nop":           {Results: []abi.Result{{ID: 1}}},
		"fd":            {Results: []abi.Result{{ID: 1, Sysno: abi.SysShmCreate, NFDs: 1, Values: []abi.Value{u(4096)}}}},
		"error":         {Results: []abi.Result{{ID: 2, Sysno: abi.SysShmAttach, Errno: abi.EPERM, Values: []abi.Value{s("not granted: no attach grant")}}}},
		"message error": {Results: []abi.Result{{Errno: abi.EBADMSG, Values: []abi.Value{s("bad magic")}}}},
		"batch":         {Results: []abi.Result{list, {ID: 4, Sysno: abi.SysMQOpen, NFDs: 1, Values: []abi.Value{u(10), u(128), u(1)}}, {ID: 5, Sysno: abi.SysNop, Errno: abi.ECANCELED, Values: []abi.Value{s("")}}}},
	}
}

// normalize makes nil and empty slices compare equal.
func normalizeRequest(r *abi.Request) abi.Request {
	out := abi.Request{Flags: r.Flags}
	for _, c := range r.Calls {
		c.Args = normalizeValues(c.Args)
		out.Calls = append(out.Calls, c)
	}
	return out
}

func normalizeReply(r *abi.Reply) abi.Reply {
	var out abi.Reply
	for _, res := range r.Results {
		res.Values = normalizeValues(res.Values)
		out.Results = append(out.Results, res)
	}
	return out
}

func normalizeValues(vs []abi.Value) []abi.Value {
	if len(vs) == 0 {
		return nil
	}
	out := make([]abi.Value, len(vs))
	for i, v := range vs {
		if v.Type == abi.Bytes && v.Bytes == nil {
			v.Bytes = []byte{}
		}
		out[i] = v
	}
	return out
}

func TestRequestRoundTrip(t *testing.T) {
	for name, r := range sampleRequests() {
		t.Run(name, func(t *testing.T) {
			msg, err := abi.AppendRequest(nil, r)
			if err != nil {
				t.Fatal(err)
			}
			var got abi.Request
			if err := abi.DecodeRequest(msg, &got); err != nil {
				t.Fatal(err)
			}
			if g, w := normalizeRequest(&got), normalizeRequest(r); !reflect.DeepEqual(g, w) {
				t.Fatalf("decoded %+v\nwant %+v", g, w)
			}
		})
	}
}

func TestReplyRoundTrip(t *testing.T) {
	for name, r := range sampleReplies() {
		t.Run(name, func(t *testing.T) {
			msg, err := abi.AppendReply(nil, r)
			if err != nil {
				t.Fatal(err)
			}
			var got abi.Reply
			if err := abi.DecodeReply(msg, &got); err != nil {
				t.Fatal(err)
			}
			if g, w := normalizeReply(&got), normalizeReply(r); !reflect.DeepEqual(g, w) {
				t.Fatalf("decoded %+v\nwant %+v", g, w)
			}
		})
	}
}

// hostileRequests are messages the decoder must refuse as a whole, with
// the errno the reply carries.
func hostileRequests() map[string]struct {
	msg   []byte
	errno abi.Errno
} {
	nop := rqEntry(1, 0, 0)
	ok := req(1, 0, nop)
	lengthLie := append([]byte(nil), ok...)
	binary.LittleEndian.PutUint32(lengthLie[8:], uint32(len(ok)+8))
	shortLie := append([]byte(nil), ok...)
	binary.LittleEndian.PutUint32(shortLie[8:], uint32(len(ok)-8))
	hugeLie := append([]byte(nil), ok...)
	binary.LittleEndian.PutUint32(hugeLie[8:], 0xffffffff)
	reserved := append([]byte(nil), ok...)
	reserved[15] = 1
	over := make([]byte, abi.MaxMessage+1)
	copy(over, header(1, 1, 1, 0, uint32(len(over))))
	return map[string]struct {
		msg   []byte
		errno abi.Errno
	}{
		"empty":                    {nil, abi.EBADMSG},
		"one byte":                 {[]byte{'P'}, abi.EBADMSG},
		"magic only":               {[]byte{'P', 'F', 1}, abi.EBADMSG},
		"truncated header":         {ok[:10], abi.EBADMSG},
		"bad magic":                {append([]byte{'X', 'F'}, ok[2:]...), abi.EBADMSG},
		"garbage":                  {[]byte("GET / HTTP/1.1\r\nHost: pinfold\r\n\r\n"), abi.EBADMSG},
		"version 0":                {append([]byte{'P', 'F', 0}, ok[3:]...), abi.EPROTONOSUPPORT},
		"version 2":                {append([]byte{'P', 'F', 2}, ok[3:]...), abi.EPROTONOSUPPORT},
		"version 2 short":          {[]byte{'P', 'F', 2}, abi.EPROTONOSUPPORT},
		"reply type":               {append(header(1, 2, 1, 0, 32), nop...), abi.EBADMSG},
		"type 0":                   {append(header(1, 0, 1, 0, 32), nop...), abi.EBADMSG},
		"length longer":            {lengthLie, abi.EBADMSG},
		"length shorter":           {shortLie, abi.EBADMSG},
		"length 4G":                {hugeLie, abi.EBADMSG},
		"reserved set":             {reserved, abi.EBADMSG},
		"count 0":                  {req(0, 0), abi.EBADMSG},
		"count 0 with entry":       {req(0, 0, nop), abi.EBADMSG},
		"count 65":                 {req(65, 0, nop), abi.E2BIG},
		"count 65535":              {req(0xffff, 0, nop), abi.E2BIG},
		"count more than entries":  {req(3, 0, nop, nop), abi.EBADMSG},
		"count fewer than entries": {req(1, 0, nop, nop), abi.EBADMSG},
		"trailing byte":            {req(1, 0, nop, []byte{0}), abi.EBADMSG},
		"truncated entry head":     {req(1, 0, nop[:12]), abi.EBADMSG},
		"args length past end":     {req(1, 0, le(uint64(1), uint16(3), uint16(1), uint32(64)), vStr("a")), abi.EBADMSG},
		"args length 4G":           {req(1, 0, le(uint64(1), uint16(3), uint16(1), uint32(0xfffffff8)), vStr("a")), abi.EBADMSG},
		"args length unaligned":    {req(1, 0, le(uint64(1), uint16(3), uint16(1), uint32(15)), vStr("a")[:15]), abi.EBADMSG},
		"unknown flag":             {req(1, 2, nop), abi.EINVAL},
		"over MaxMessage":          {over, abi.E2BIG},
	}
}

func TestDecodeRequestHostile(t *testing.T) {
	for name, tc := range hostileRequests() {
		t.Run(name, func(t *testing.T) {
			var r abi.Request
			err := abi.DecodeRequest(tc.msg, &r)
			var pe *abi.ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("DecodeRequest = %v, want a *ProtocolError", err)
			}
			if pe.Errno != tc.errno || !errors.Is(err, tc.errno) {
				t.Fatalf("errno %s (%v), want %s", pe.Errno.Name(), err, tc.errno.Name())
			}
			if pe.Reason == "" {
				t.Fatal("no reason")
			}
		})
	}
}

// TestDecodeRequestBadEntry checks that an entry whose arguments alone are
// malformed gets Call.Err while its neighbours decode.
func TestDecodeRequestBadEntry(t *testing.T) {
	bads := map[string][]byte{
		"unknown value type":      rqEntry(2, 3, 1, le(uint8(9), uint8(0), uint8(0), uint8(0), uint32(0))),
		"value reserved set":      rqEntry(2, 3, 1, le(uint8(2), uint8(1), uint8(0), uint8(0), uint32(0))),
		"value length past entry": rqEntry(2, 3, 1, le(uint8(2), uint8(0), uint8(0), uint8(0), uint32(9), uint64(0))),
		"value length 4G":         rqEntry(2, 3, 1, le(uint8(2), uint8(0), uint8(0), uint8(0), uint32(0xffffffff), uint64(0))),
		"u64 of length 4":         rqEntry(2, 3, 1, le(uint8(1), uint8(0), uint8(0), uint8(0), uint32(4), uint64(0))),
		"nonzero padding":         rqEntry(2, 3, 1, le(uint8(2), uint8(0), uint8(0), uint8(0), uint32(1), uint64(0x0100))),
		"nargs more than values":  rqEntry(2, 3, 2, vStr("a")),
		"nargs fewer than values": rqEntry(2, 3, 1, vStr("a"), vU64(1)),
		"nargs 65535":             rqEntry(2, 3, 0xffff, vStr("a")),
		"nargs 9":                 rqEntry(2, 3, 9, vU64(1), vU64(1), vU64(1), vU64(1), vU64(1), vU64(1), vU64(1), vU64(1), vU64(1)),
		"nargs 1 no args":         rqEntry(2, 3, 1),
	}
	for name, bad := range bads {
		t.Run(name, func(t *testing.T) {
			msg := req(3, 0, rqEntry(1, 0, 0), bad, rqEntry(3, 3, 1, vStr("ok")))
			var r abi.Request
			if err := abi.DecodeRequest(msg, &r); err != nil {
				t.Fatalf("DecodeRequest: %v (want only the middle entry refused)", err)
			}
			if len(r.Calls) != 3 {
				t.Fatalf("%d calls, want 3", len(r.Calls))
			}
			if r.Calls[0].Err != nil || r.Calls[2].Err != nil {
				t.Fatalf("neighbours refused: %v, %v", r.Calls[0].Err, r.Calls[2].Err)
			}
			if e := r.Calls[1].Err; e == nil || e.Errno != abi.EBADMSG || r.Calls[1].ID != 2 || r.Calls[1].Sysno != 3 {
				t.Fatalf("middle entry: %+v, want EBADMSG with id 2, sysno 3", r.Calls[1])
			}
			if got := string(r.Calls[2].Args[0].Bytes); got != "ok" {
				t.Fatalf("last entry arg %q", got)
			}
		})
	}
}

func TestDecodeReplyHostile(t *testing.T) {
	rp := func(count uint16, entries ...[]byte) []byte {
		body := bytes.Join(entries, nil)
		return append(header(1, 2, count, 0, uint32(abi.HeaderSize+len(body))), body...)
	}
	rpEntry := func(id uint64, sysno, errno, nfds, nvals uint16, rsv uint32, vals ...[]byte) []byte {
		v := bytes.Join(vals, nil)
		return append(le(id, sysno, errno, nfds, nvals, uint32(len(v)), rsv), v...)
	}
	flagged := rp(1, rpEntry(1, 0, 0, 0, 0, 0))
	flagged[6] = 1
	cases := map[string][]byte{
		"request type":         req(1, 0, rqEntry(1, 0, 0)),
		"flags set":            flagged,
		"reserved set":         rp(1, rpEntry(1, 0, 0, 0, 0, 1)),
		"two fds":              rp(1, rpEntry(1, 6, 0, 2, 1, 0, vU64(1))),
		"error with fd":        rp(1, rpEntry(1, 6, 1, 1, 1, 0, vStr("x"))),
		"error without reason": rp(1, rpEntry(1, 6, 1, 0, 0, 0)),
		"error with 2 values":  rp(1, rpEntry(1, 6, 1, 0, 2, 0, vStr("x"), vStr("y"))),
		"error reason u64":     rp(1, rpEntry(1, 6, 1, 0, 1, 0, vU64(1))),
		"nvals lie":            rp(1, rpEntry(1, 6, 0, 0, 3, 0, vU64(1))),
		"nvals 65535":          rp(1, rpEntry(1, 6, 0, 0, 0xffff, 0, vU64(1))),
		"values length past":   rp(1, le(uint64(1), uint16(0), uint16(0), uint16(0), uint16(1), uint32(64), uint32(0)), vU64(1)),
		"count lie":            rp(2, rpEntry(1, 0, 0, 0, 0, 0)),
		"trailing":             rp(1, rpEntry(1, 0, 0, 0, 0, 0), []byte{0, 0, 0, 0, 0, 0, 0, 0}),
		"bad value":            rp(1, rpEntry(1, 0, 0, 0, 1, 0, le(uint8(3), uint8(0), uint8(0), uint8(0), uint32(0)))),
	}
	for name, msg := range cases {
		t.Run(name, func(t *testing.T) {
			var r abi.Reply
			err := abi.DecodeReply(msg, &r)
			if !errors.Is(err, abi.EBADMSG) {
				t.Fatalf("DecodeReply = %v, want EBADMSG", err)
			}
		})
	}
}

func TestBuilderMistakes(t *testing.T) {
	big := strings.Repeat("x", abi.MaxMessage)
	cases := map[string]struct {
		build func(b *abi.RequestBuilder)
		errno abi.Errno
	}{
		"no entries": {func(b *abi.RequestBuilder) {}, abi.EINVAL},
		"65 entries": {func(b *abi.RequestBuilder) {
			for i := range 65 {
				b.Begin(uint64(i), 0)
				b.End()
			}
		}, abi.E2BIG},
		"9 args": {func(b *abi.RequestBuilder) {
			b.Begin(1, 0)
			for range 9 {
				b.U64(1)
			}
			b.End()
		}, abi.E2BIG},
		"too large": {func(b *abi.RequestBuilder) { b.Begin(1, 3); b.String(big); b.End() }, abi.E2BIG},
		"not ended": {func(b *abi.RequestBuilder) { b.Begin(1, 0) }, abi.EINVAL},
		"nested":    {func(b *abi.RequestBuilder) { b.Begin(1, 0); b.Begin(2, 0); b.End() }, abi.EINVAL},
		"loose arg": {func(b *abi.RequestBuilder) { b.U64(1) }, abi.EINVAL},
		"bad value": {func(b *abi.RequestBuilder) { b.Begin(1, 0); b.Value(abi.Value{Type: 7}); b.End() }, abi.EINVAL},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var b abi.RequestBuilder
			b.Reset(make([]byte, 0, 64), 0)
			tc.build(&b)
			msg, err := b.Finish()
			if !errors.Is(err, tc.errno) || msg != nil {
				t.Fatalf("Finish = %d bytes, %v; want %s", len(msg), err, tc.errno.Name())
			}
		})
	}
	var b abi.RequestBuilder
	b.Reset(nil, 4)
	b.Begin(1, 0)
	b.End()
	if _, err := b.Finish(); !errors.Is(err, abi.EINVAL) {
		t.Fatalf("unknown flag: %v, want EINVAL", err)
	}
	var rb abi.ReplyBuilder
	rb.Reset(nil)
	rb.Begin(1, 6)
	rb.U64(1)
	rb.End(abi.EPERM, 0)
	if _, err := rb.Finish(); !errors.Is(err, abi.EINVAL) {
		t.Fatalf("failed entry with a u64: %v, want EINVAL", err)
	}
	rb.Reset(nil)
	rb.Begin(1, 6)
	rb.End(0, 2)
	if _, err := rb.Finish(); !errors.Is(err, abi.EINVAL) {
		t.Fatalf("two fds: %v, want EINVAL", err)
	}
}

// TestReplyRewind checks that an entry that does not fit can be taken back
// and replaced, which is how the server keeps every reply within
// MaxMessage.
func TestReplyRewind(t *testing.T) {
	var b abi.ReplyBuilder
	b.Reset(make([]byte, 0, abi.MaxMessage))
	b.Begin(1, abi.SysNop)
	b.End(0, 0)
	m := b.Mark()
	b.Begin(2, abi.SysStat)
	b.String(strings.Repeat("x", abi.MaxMessage))
	b.End(0, 0)
	if err := b.Err(); !errors.Is(err, abi.EMSGSIZE) {
		t.Fatalf("oversized entry: %v, want EMSGSIZE", err)
	}
	if b.Len() > abi.MaxMessage {
		t.Fatalf("reply grew to %d bytes", b.Len())
	}
	b.Rewind(m)
	b.Fail(2, abi.SysStat, abi.EMSGSIZE, "reply does not fit")
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	var r abi.Reply
	if err := abi.DecodeReply(msg, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Results) != 2 || r.Results[1].Errno != abi.EMSGSIZE || r.Results[1].Reason() != "reply does not fit" {
		t.Fatalf("decoded %+v", r.Results)
	}
}

func TestErrorReply(t *testing.T) {
	msg := abi.AppendErrorReply(nil, abi.EPROTONOSUPPORT, strings.Repeat("é", abi.MaxReason))
	var r abi.Reply
	if err := abi.DecodeReply(msg, &r); err != nil {
		t.Fatal(err)
	}
	if !r.IsMessageError() || r.Results[0].Errno != abi.EPROTONOSUPPORT {
		t.Fatalf("decoded %+v", r.Results)
	}
	reason := r.Results[0].Reason()
	if len(reason) > abi.MaxReason || !strings.HasSuffix(reason, "...") || !strings.HasPrefix(reason, "éé") {
		t.Fatalf("reason of %d bytes: %q...", len(reason), reason[:10])
	}
	if strings.ContainsRune(reason, '\uFFFD') {
		t.Fatal("reason was cut inside a UTF-8 sequence")
	}
}

// TestNoAllocs checks the hot path: building into a buffer with room and
// decoding into reused storage allocate nothing.
func TestNoAllocs(t *testing.T) {
	buf := make([]byte, 0, abi.MaxMessage)
	var b abi.RequestBuilder
	var rb abi.ReplyBuilder
	var r abi.Request
	var rep abi.Reply
	name := []byte("results/1")
	allocs := testing.AllocsPerRun(200, func() {
		b.Reset(buf, 0)
		b.Begin(1, abi.SysShmAttach)
		b.Bytes(name)
		b.U64(3)
		b.End()
		b.Begin(2, abi.SysNop)
		b.End()
		msg, err := b.Finish()
		if err != nil {
			t.Fatal(err)
		}
		if err := abi.DecodeRequest(msg, &r); err != nil {
			t.Fatal(err)
		}
		rb.Reset(buf)
		rb.Begin(1, abi.SysShmAttach)
		rb.U64(4096)
		rb.End(0, 1)
		rb.Fail(2, abi.SysNop, abi.ECANCELED, "stopped")
		msg, err = rb.Finish()
		if err != nil {
			t.Fatal(err)
		}
		if err := abi.DecodeReply(msg, &rep); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per round, want 0", allocs)
	}
}

func TestTable(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for i, sc := range abi.Syscalls() {
		if int(sc.Sysno) != i {
			t.Errorf("%s: sysno %d at index %d", sc.Name, sc.Sysno, i)
		}
		if names[sc.Name] || sc.Name == "" || sc.Summary == "" {
			t.Errorf("sysno %d: name %q duplicate or empty, or no summary", i, sc.Name)
		}
		names[sc.Name] = true
		if len(sc.Args) > abi.MaxArgs {
			t.Errorf("%s takes %d arguments, more than MaxArgs", sc.Name, len(sc.Args))
		}
		// The documented table in doc.go lists every call by number and
		// name, with the same argument names.
		line := strconv.Itoa(i) + "     " + sc.Name
		if !bytes.Contains(doc, []byte(line)) {
			t.Errorf("doc.go does not list %q", line)
		}
		got, ok := abi.Lookup(sc.Sysno)
		if !ok || got.Name != sc.Name || sc.Sysno.String() != sc.Name {
			t.Errorf("Lookup(%d) = %v, %v", sc.Sysno, got.Name, ok)
		}
		// A correct argument list passes CheckArgs; one too many fails.
		var args []abi.Value
		for _, p := range sc.Args {
			args = append(args, abi.Value{Type: p.Type})
		}
		if err := sc.CheckArgs(args); err != nil {
			t.Errorf("%s: CheckArgs(well-typed) = %v", sc.Name, err)
		}
		if err := sc.CheckArgs(append(args, abi.U64Value(1))); !errors.Is(err, abi.EINVAL) {
			t.Errorf("%s: CheckArgs(one too many) = %v, want EINVAL", sc.Name, err)
		}
		if len(args) > 0 {
			args[0].Type = 3 - args[0].Type
			if err := sc.CheckArgs(args); !errors.Is(err, abi.EINVAL) {
				t.Errorf("%s: CheckArgs(wrong type) = %v, want EINVAL", sc.Name, err)
			}
		}
	}
	if len(abi.Syscalls()) != abi.NumSyscalls {
		t.Fatalf("%d syscalls, NumSyscalls %d", len(abi.Syscalls()), abi.NumSyscalls)
	}
	if _, ok := abi.Lookup(abi.NumSyscalls); ok {
		t.Fatal("Lookup past the table succeeded")
	}
	if got, want := mustLookup(t, abi.SysShmAttach).Signature(), "shm_attach(name str, access u64) -> (size u64) + fd"; got != want {
		t.Fatalf("Signature = %q, want %q", got, want)
	}
	if got, want := mustLookup(t, abi.SysList).Signature(), "list(offset u64) -> (total u64, [name str, kind u64, size u64, owner str]...)"; got != want {
		t.Fatalf("Signature = %q, want %q", got, want)
	}
}

func mustLookup(t *testing.T, n abi.Sysno) abi.Syscall {
	t.Helper()
	s, ok := abi.Lookup(n)
	if !ok {
		t.Fatalf("Lookup(%d) failed", n)
	}
	return s
}

func TestCheckResults(t *testing.T) {
	s, u := abi.StringValue, abi.U64Value
	list := mustLookup(t, abi.SysList)
	good := []abi.Value{u(1), s("a"), u(2), u(3), s("app")}
	if err := list.CheckResults(good); err != nil {
		t.Fatal(err)
	}
	if err := list.CheckResults(good[:4]); !errors.Is(err, abi.EBADMSG) {
		t.Fatalf("partial group: %v", err)
	}
	if err := list.CheckResults([]abi.Value{u(1), u(1), u(2), u(3), s("app")}); !errors.Is(err, abi.EBADMSG) {
		t.Fatalf("wrong type in group: %v", err)
	}
	shm := mustLookup(t, abi.SysShmCreate)
	if err := shm.CheckResults([]abi.Value{u(1), u(1)}); !errors.Is(err, abi.EBADMSG) {
		t.Fatalf("extra value: %v", err)
	}
	if err := shm.CheckResults(nil); !errors.Is(err, abi.EBADMSG) {
		t.Fatalf("missing value: %v", err)
	}
}

func TestErrnoNames(t *testing.T) {
	for _, tc := range []struct {
		e    abi.Errno
		name string
	}{
		{abi.EPERM, "EPERM"}, {abi.ENOENT, "ENOENT"}, {abi.EAGAIN, "EAGAIN"}, {35, "EDEADLK"},
		{95, "EOPNOTSUPP"}, {abi.ECANCELED, "ECANCELED"}, {133, "EHWPOISON"}, {0, "errno 0"}, {4000, "errno 4000"},
	} {
		if got := tc.e.Name(); got != tc.name {
			t.Errorf("Errno(%d).Name() = %q, want %q", tc.e, got, tc.name)
		}
	}
	for e := abi.Errno(1); e <= abi.MaxErrnoName; e++ {
		if e == 41 || e == 58 { // unassigned on Linux
			continue
		}
		back, ok := abi.ErrnoByName(e.Name())
		if !ok || back != e {
			t.Errorf("ErrnoByName(%q) = %d, %v", e.Name(), back, ok)
		}
	}
}

func TestTruncateReason(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 100, "short"},
		{"abcdefgh", 8, "abcdefgh"},
		{"abcdefghi", 8, "abcde..."},
		{"ééé", 5, "é..."},
		{"ééé", 4, "..."},
		{"ééé", 6, "ééé"},
		{"éééé", 7, "éé..."},
		{"éééé", 6, "é..."},
		{"abc", 2, ""},
		{strings.Repeat("a", 2000), 5000, strings.Repeat("a", abi.MaxReason-3) + "..."},
	} {
		if got := abi.TruncateReason(tc.in, tc.max); got != tc.want {
			t.Errorf("TruncateReason(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}
