package abi

import "encoding/binary"

// Request is a decoded request message.
type Request struct {
	Flags Flags
	Calls []Call

	vals []Value // storage for the calls' Args, reused by DecodeRequest
}

// Call is one request entry.
type Call struct {
	ID    uint64
	Sysno Sysno
	Args  []Value
	// Err is set by DecodeRequest, instead of Args, when the entry's
	// arguments are malformed (EBADMSG): the entry is answered with it
	// while the rest of the batch runs.
	Err *ProtocolError
}

// Reply is a decoded reply message.
type Reply struct {
	Results []Result

	vals []Value // storage for the results' Values, reused by DecodeReply
}

// Result is one reply entry.
type Result struct {
	ID     uint64
	Sysno  Sysno
	Errno  Errno
	NFDs   int
	Values []Value
}

// Reason returns a failed result's reason.
func (r *Result) Reason() string {
	if r.Errno == 0 || len(r.Values) != 1 || r.Values[0].Type != Bytes {
		return ""
	}
	return string(r.Values[0].Bytes)
}

// IsMessageError reports whether reply is the answer to a request refused
// as a whole: a single failed entry with request id 0 and sysno 0.
func (r *Reply) IsMessageError() bool {
	return len(r.Results) == 1 && r.Results[0].ID == 0 && r.Results[0].Sysno == 0 && r.Results[0].Errno != 0
}

// DecodeRequest decodes a request message into r, reusing r's storage.
// Argument bytes alias msg. It returns a *ProtocolError when the message as
// a whole cannot be trusted; an entry whose arguments alone are malformed
// gets Call.Err and the others decode. It allocates only when r's storage
// is too small, and never more than the message's size accounts for.
func DecodeRequest(msg []byte, r *Request) error {
	r.Calls = r.Calls[:0]
	r.vals = r.vals[:0]
	r.Flags = 0
	h, err := ParseHeader(msg, TypeRequest)
	if err != nil {
		return err
	}
	if h.Flags&^RequestFlags != 0 {
		return protoErr(EINVAL, "unknown request flags %#x", uint16(h.Flags&^RequestFlags))
	}
	r.Flags = h.Flags
	// Record each entry's values as a span of r.vals; slice them at the
	// end, once r.vals has stopped growing.
	var spans [MaxBatch][2]int
	off := HeaderSize
	for i := range int(h.Count) {
		if len(msg)-off < RequestEntrySize {
			return protoErr(EBADMSG, "entry %d of %d: truncated head at byte %d (the count says more entries than the message holds)", i+1, h.Count, off)
		}
		e := msg[off:]
		c := Call{
			ID:    binary.LittleEndian.Uint64(e),
			Sysno: Sysno(binary.LittleEndian.Uint16(e[8:])),
		}
		nargs := int(binary.LittleEndian.Uint16(e[10:]))
		alen := binary.LittleEndian.Uint32(e[12:])
		if alen%8 != 0 {
			return protoErr(EBADMSG, "entry %d: args length %d is not a multiple of 8", i+1, alen)
		}
		if uint64(alen) > uint64(len(e)-RequestEntrySize) {
			return protoErr(EBADMSG, "entry %d: args length %d runs past the end of the message", i+1, alen)
		}
		args := e[RequestEntrySize : RequestEntrySize+int(alen)]
		start := len(r.vals)
		if nargs > MaxArgs {
			c.Err = protoErr(EBADMSG, "entry %d has %d arguments, more than %d", i+1, nargs, MaxArgs)
		} else {
			r.vals, c.Err = decodeValues(args, nargs, r.vals, i+1)
			if c.Err != nil {
				r.vals = r.vals[:start]
			}
		}
		spans[i] = [2]int{start, len(r.vals)}
		r.Calls = append(r.Calls, c)
		off += RequestEntrySize + int(alen)
	}
	if off != len(msg) {
		return protoErr(EBADMSG, "%d bytes after the last of %d entries (the count says fewer entries than the message holds)", len(msg)-off, h.Count)
	}
	for i := range r.Calls {
		if r.Calls[i].Err == nil {
			s := spans[i]
			r.Calls[i].Args = r.vals[s[0]:s[1]:s[1]]
		}
	}
	return nil
}

// DecodeReply decodes a reply message into r, reusing r's storage. Values'
// bytes alias msg. Any malformation is a *ProtocolError (EBADMSG): a reply
// is trusted whole or not at all. It does not check values against the
// syscall table (Syscall.CheckResults does).
func DecodeReply(msg []byte, r *Reply) error {
	r.Results = r.Results[:0]
	r.vals = r.vals[:0]
	h, err := ParseHeader(msg, TypeReply)
	if err != nil {
		return err
	}
	if h.Flags != 0 {
		return protoErr(EBADMSG, "reply flags %#x are not zero", uint16(h.Flags))
	}
	var spans [MaxBatch][2]int
	off := HeaderSize
	for i := range int(h.Count) {
		if len(msg)-off < ReplyEntrySize {
			return protoErr(EBADMSG, "reply entry %d of %d: truncated head at byte %d", i+1, h.Count, off)
		}
		e := msg[off:]
		res := Result{
			ID:    binary.LittleEndian.Uint64(e),
			Sysno: Sysno(binary.LittleEndian.Uint16(e[8:])),
			Errno: Errno(binary.LittleEndian.Uint16(e[10:])),
			NFDs:  int(binary.LittleEndian.Uint16(e[12:])),
		}
		nvals := int(binary.LittleEndian.Uint16(e[14:]))
		vlen := binary.LittleEndian.Uint32(e[16:])
		switch {
		case binary.LittleEndian.Uint32(e[20:]) != 0:
			return protoErr(EBADMSG, "reply entry %d: reserved field is not zero", i+1)
		case vlen%8 != 0:
			return protoErr(EBADMSG, "reply entry %d: values length %d is not a multiple of 8", i+1, vlen)
		case uint64(vlen) > uint64(len(e)-ReplyEntrySize):
			return protoErr(EBADMSG, "reply entry %d: values length %d runs past the end of the message", i+1, vlen)
		case res.NFDs > MaxEntryFDs:
			return protoErr(EBADMSG, "reply entry %d carries %d descriptors, at most %d", i+1, res.NFDs, MaxEntryFDs)
		case res.Errno != 0 && (res.NFDs != 0 || nvals != 1):
			return protoErr(EBADMSG, "failed reply entry %d must carry exactly its reason and no descriptor", i+1)
		}
		start := len(r.vals)
		var perr *ProtocolError
		r.vals, perr = decodeValues(e[ReplyEntrySize:ReplyEntrySize+int(vlen)], nvals, r.vals, i+1)
		if perr != nil {
			return perr
		}
		if res.Errno != 0 && r.vals[start].Type != Bytes {
			return protoErr(EBADMSG, "failed reply entry %d: the reason is not a bytes value", i+1)
		}
		spans[i] = [2]int{start, len(r.vals)}
		r.Results = append(r.Results, res)
		off += ReplyEntrySize + int(vlen)
	}
	if off != len(msg) {
		return protoErr(EBADMSG, "%d bytes after the last of %d reply entries", len(msg)-off, h.Count)
	}
	for i := range r.Results {
		s := spans[i]
		r.Results[i].Values = r.vals[s[0]:s[1]:s[1]]
	}
	return nil
}

// decodeValues decodes exactly n values that fill b, appending them to vals.
// Every length is checked against b before it is used; n is only trusted
// as far as b holds values (each takes at least 8 bytes).
func decodeValues(b []byte, n int, vals []Value, entry int) ([]Value, *ProtocolError) {
	if n > len(b)/ValueHeadSize {
		return vals, protoErr(EBADMSG, "entry %d: %d values cannot fit in %d bytes", entry, n, len(b))
	}
	for j := range n {
		if len(b) < ValueHeadSize {
			return vals, protoErr(EBADMSG, "entry %d value %d: truncated head", entry, j+1)
		}
		t := ValueType(b[0])
		if b[1]|b[2]|b[3] != 0 {
			return vals, protoErr(EBADMSG, "entry %d value %d: reserved bytes are not zero", entry, j+1)
		}
		l := binary.LittleEndian.Uint32(b[4:])
		if uint64(l) > uint64(len(b)-ValueHeadSize) {
			return vals, protoErr(EBADMSG, "entry %d value %d: length %d runs past the entry", entry, j+1, l)
		}
		size := pad8(int(l))
		if size > len(b)-ValueHeadSize {
			return vals, protoErr(EBADMSG, "entry %d value %d: padding runs past the entry", entry, j+1)
		}
		payload := b[ValueHeadSize : ValueHeadSize+int(l)]
		for _, c := range b[ValueHeadSize+int(l) : ValueHeadSize+size] {
			if c != 0 {
				return vals, protoErr(EBADMSG, "entry %d value %d: padding is not zero", entry, j+1)
			}
		}
		switch t {
		case U64:
			if l != 8 {
				return vals, protoErr(EBADMSG, "entry %d value %d: u64 of length %d", entry, j+1, l)
			}
			vals = append(vals, Value{Type: U64, U64: binary.LittleEndian.Uint64(payload)})
		case Bytes:
			vals = append(vals, Value{Type: Bytes, Bytes: payload})
		default:
			return vals, protoErr(EBADMSG, "entry %d value %d: unknown value type %d", entry, j+1, uint8(t))
		}
		b = b[ValueHeadSize+size:]
	}
	if len(b) != 0 {
		return vals, protoErr(EBADMSG, "entry %d: %d bytes after its %d values", entry, len(b), n)
	}
	return vals, nil
}
