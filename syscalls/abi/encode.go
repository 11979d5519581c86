package abi

import "encoding/binary"

var zeros [HeaderSize]byte

// writer appends one message to a buffer: the header, then entries, each a
// head followed by values. It never grows the message past MaxMessage:
// an append that would is dropped and recorded as a sticky error.
type writer struct {
	buf      []byte
	typ      MsgType
	flags    Flags
	count    int
	entry    int // offset of the open entry's head; -1 when none is open
	nvals    int
	headSize int
	tooBig   Errno // errno for a message over MaxMessage
	err      *ProtocolError
}

func (w *writer) reset(dst []byte, typ MsgType, flags Flags) {
	*w = writer{buf: append(dst[:0], zeros[:HeaderSize]...), typ: typ, flags: flags, entry: -1}
	w.headSize = RequestEntrySize
	w.tooBig = E2BIG
	if typ == TypeReply {
		w.headSize = ReplyEntrySize
		w.tooBig = EMSGSIZE
	}
}

func (w *writer) fail(e *ProtocolError) {
	if w.err == nil {
		w.err = e
	}
}

// room reports whether n more bytes fit, recording an error when not.
func (w *writer) room(n int) bool {
	if w.err != nil {
		return false
	}
	if len(w.buf) > MaxMessage-n {
		w.fail(protoErr(w.tooBig, "%s is larger than %d bytes", w.typ, MaxMessage))
		return false
	}
	return true
}

func (w *writer) begin(id uint64, sysno Sysno) {
	switch {
	case w.buf == nil:
		w.fail(protoErr(EINVAL, "builder used before Reset"))
		return
	case w.entry >= 0:
		w.fail(protoErr(EINVAL, "entry %d begun before entry %d ended", w.count+1, w.count))
		return
	case w.count >= MaxBatch:
		w.fail(protoErr(E2BIG, "more than %d entries", MaxBatch))
		return
	}
	if !w.room(w.headSize) {
		return
	}
	w.entry = len(w.buf)
	w.nvals = 0
	w.buf = binary.LittleEndian.AppendUint64(w.buf, id)
	w.buf = binary.LittleEndian.AppendUint16(w.buf, uint16(sysno))
	w.buf = append(w.buf, zeros[:w.headSize-10]...)
}

func (w *writer) putU64(v uint64) {
	if w.entry < 0 {
		w.fail(protoErr(EINVAL, "value outside an entry"))
		return
	}
	if !w.room(U64Size) {
		return
	}
	w.buf = append(w.buf, byte(U64), 0, 0, 0, 8, 0, 0, 0)
	w.buf = binary.LittleEndian.AppendUint64(w.buf, v)
	w.nvals++
}

func (w *writer) putBytes(p []byte) {
	if w.entry < 0 {
		w.fail(protoErr(EINVAL, "value outside an entry"))
		return
	}
	if !w.room(BytesSize(len(p))) {
		return
	}
	w.buf = append(w.buf, byte(Bytes), 0, 0, 0)
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(p)))
	w.buf = append(w.buf, p...)
	w.buf = append(w.buf, zeros[:pad8(len(p))-len(p)]...)
	w.nvals++
}

func (w *writer) putString(s string) {
	if w.entry < 0 {
		w.fail(protoErr(EINVAL, "value outside an entry"))
		return
	}
	if !w.room(BytesSize(len(s))) {
		return
	}
	w.buf = append(w.buf, byte(Bytes), 0, 0, 0)
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(s)))
	w.buf = append(w.buf, s...)
	w.buf = append(w.buf, zeros[:pad8(len(s))-len(s)]...)
	w.nvals++
}

// end closes the open entry; for replies errno and nfds go in its head.
func (w *writer) end(errno Errno, nfds int) {
	if w.err != nil {
		return
	}
	if w.entry < 0 {
		w.fail(protoErr(EINVAL, "entry ended before it was begun"))
		return
	}
	h := w.buf[w.entry:]
	vlen := len(w.buf) - w.entry - w.headSize
	if w.typ == TypeRequest {
		if w.nvals > MaxArgs {
			w.fail(protoErr(E2BIG, "entry %d has %d arguments, more than %d", w.count+1, w.nvals, MaxArgs))
			return
		}
		binary.LittleEndian.PutUint16(h[10:], uint16(w.nvals))
		binary.LittleEndian.PutUint32(h[12:], uint32(vlen))
	} else {
		if nfds < 0 || nfds > MaxEntryFDs {
			w.fail(protoErr(EINVAL, "entry %d carries %d descriptors, at most %d", w.count+1, nfds, MaxEntryFDs))
			return
		}
		if errno != 0 && (nfds != 0 || w.nvals != 1 || ValueType(h[w.headSize]) != Bytes) {
			w.fail(protoErr(EINVAL, "failed entry %d must carry exactly its reason and no descriptor", w.count+1))
			return
		}
		if w.nvals > 0xffff {
			w.fail(protoErr(EMSGSIZE, "entry %d has %d values, more than 65535", w.count+1, w.nvals))
			return
		}
		binary.LittleEndian.PutUint16(h[10:], uint16(errno))
		binary.LittleEndian.PutUint16(h[12:], uint16(nfds))
		binary.LittleEndian.PutUint16(h[14:], uint16(w.nvals))
		binary.LittleEndian.PutUint32(h[16:], uint32(vlen))
	}
	w.entry = -1
	w.count++
}

func (w *writer) finish() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	if w.buf == nil {
		return nil, protoErr(EINVAL, "builder used before Reset")
	}
	if w.entry >= 0 {
		return nil, protoErr(EINVAL, "entry %d was not ended", w.count+1)
	}
	if w.count == 0 {
		return nil, protoErr(EINVAL, "%s has no entries", w.typ)
	}
	putHeader(w.buf, Header{Version: Version, Type: w.typ, Count: uint16(w.count), Flags: w.flags, Length: uint32(len(w.buf))})
	return w.buf, nil
}

// RequestBuilder appends a request message to a caller's buffer without
// allocating when the buffer has MaxMessage bytes of capacity:
//
//	b.Reset(buf, 0)
//	b.Begin(1, abi.SysShmAttach)
//	b.String("results/1")
//	b.U64(uint64(ipc.Read))
//	b.End()
//	msg, err := b.Finish()
//
// Mistakes (too many entries or arguments, a message over MaxMessage, an
// entry not ended) are reported by Finish.
type RequestBuilder struct{ w writer }

// Reset starts a new request in dst's storage (dst[:0]) with the flags.
func (b *RequestBuilder) Reset(dst []byte, flags Flags) {
	b.w.reset(dst, TypeRequest, flags)
	if flags&^RequestFlags != 0 {
		b.w.fail(protoErr(EINVAL, "unknown request flags %#x", uint16(flags&^RequestFlags)))
	}
}

// Begin opens an entry.
func (b *RequestBuilder) Begin(id uint64, sysno Sysno) { b.w.begin(id, sysno) }

// U64 appends a u64 argument.
func (b *RequestBuilder) U64(v uint64) { b.w.putU64(v) }

// Bytes appends a bytes argument.
func (b *RequestBuilder) Bytes(p []byte) { b.w.putBytes(p) }

// String appends a bytes argument holding s.
func (b *RequestBuilder) String(s string) { b.w.putString(s) }

// Value appends an argument of either type.
func (b *RequestBuilder) Value(v Value) { b.w.putValue(v) }

// End closes the entry.
func (b *RequestBuilder) End() { b.w.end(0, 0) }

// Count is the number of entries ended so far.
func (b *RequestBuilder) Count() int { return b.w.count }

// Finish writes the header and returns the message, or the first mistake.
func (b *RequestBuilder) Finish() ([]byte, error) { return b.w.finish() }

func (w *writer) putValue(v Value) {
	switch v.Type {
	case U64:
		w.putU64(v.U64)
	case Bytes:
		w.putBytes(v.Bytes)
	default:
		w.fail(protoErr(EINVAL, "value of unknown type %d", uint8(v.Type)))
	}
}

// ReplyBuilder appends a reply message to a caller's buffer without
// allocating when the buffer has MaxMessage bytes of capacity. An entry that
// turns out not to fit can be taken back with Mark and Rewind.
type ReplyBuilder struct{ w writer }

// Mark is a position in a reply being built.
type Mark struct {
	n, count int
	err      *ProtocolError
}

// Reset starts a new reply in dst's storage (dst[:0]).
func (b *ReplyBuilder) Reset(dst []byte) { b.w.reset(dst, TypeReply, 0) }

// Begin opens an entry answering request entry id, sysno.
func (b *ReplyBuilder) Begin(id uint64, sysno Sysno) { b.w.begin(id, sysno) }

// U64 appends a u64 result.
func (b *ReplyBuilder) U64(v uint64) { b.w.putU64(v) }

// Bytes appends a bytes result.
func (b *ReplyBuilder) Bytes(p []byte) { b.w.putBytes(p) }

// String appends a bytes result holding s.
func (b *ReplyBuilder) String(s string) { b.w.putString(s) }

// Value appends a result of either type.
func (b *ReplyBuilder) Value(v Value) { b.w.putValue(v) }

// End closes the entry with its errno and the number of descriptors it
// carries. A failed entry (errno != 0) must hold exactly its reason.
func (b *ReplyBuilder) End(errno Errno, nfds int) { b.w.end(errno, nfds) }

// Fail appends a whole failed entry: errno and reason.
func (b *ReplyBuilder) Fail(id uint64, sysno Sysno, errno Errno, reason string) {
	b.w.begin(id, sysno)
	b.w.putString(reason)
	b.w.end(errno, 0)
}

// Len is the size of the reply so far, in bytes.
func (b *ReplyBuilder) Len() int { return len(b.w.buf) }

// Count is the number of entries ended so far.
func (b *ReplyBuilder) Count() int { return b.w.count }

// Err is the first mistake so far (a reply over MaxMessage is EMSGSIZE).
func (b *ReplyBuilder) Err() error {
	if b.w.err == nil {
		return nil
	}
	return b.w.err
}

// Mark returns the current position, between entries.
func (b *ReplyBuilder) Mark() Mark { return Mark{n: len(b.w.buf), count: b.w.count, err: b.w.err} }

// Rewind takes back everything appended since m, including an open entry
// and any mistake made since.
func (b *ReplyBuilder) Rewind(m Mark) {
	b.w.buf = b.w.buf[:m.n]
	b.w.count = m.count
	b.w.err = m.err
	b.w.entry = -1
}

// Finish writes the header and returns the message, or the first mistake.
func (b *ReplyBuilder) Finish() ([]byte, error) { return b.w.finish() }

// AppendErrorReply appends the reply to a message refused as a whole: one
// entry with request id 0, sysno 0, errno and reason (cut to MaxReason).
func AppendErrorReply(dst []byte, errno Errno, reason string) []byte {
	var b ReplyBuilder
	b.Reset(dst)
	b.Fail(0, 0, errno, TruncateReason(reason, MaxReason))
	// One entry with a reason of at most MaxReason bytes always fits, so
	// Finish cannot fail here.
	msg, _ := b.Finish()
	return msg
}

// MaxReason is the longest reason a server sends, in bytes.
const MaxReason = 1024

// TruncateReason cuts a reason to at most max bytes (and MaxReason), at a
// UTF-8 boundary, marking the cut with "...".
func TruncateReason(s string, max int) string {
	max = min(max, MaxReason)
	if len(s) <= max {
		return s
	}
	const more = "..."
	if max < len(more) {
		return ""
	}
	n := max - len(more)
	for n > 0 && s[n]&0xc0 == 0x80 { // do not split a UTF-8 sequence
		n--
	}
	return s[:n] + more
}

// AppendRequest appends r encoded as one request message to dst.
func AppendRequest(dst []byte, r *Request) ([]byte, error) {
	var b RequestBuilder
	b.Reset(dst, r.Flags)
	for _, c := range r.Calls {
		b.Begin(c.ID, c.Sysno)
		for _, v := range c.Args {
			b.Value(v)
		}
		b.End()
	}
	return b.Finish()
}

// AppendReply appends r encoded as one reply message to dst.
func AppendReply(dst []byte, r *Reply) ([]byte, error) {
	var b ReplyBuilder
	b.Reset(dst)
	for _, res := range r.Results {
		b.Begin(res.ID, res.Sysno)
		for _, v := range res.Values {
			b.Value(v)
		}
		b.End(res.Errno, res.NFDs)
	}
	return b.Finish()
}
