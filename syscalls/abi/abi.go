package abi

import (
	"encoding/binary"
	"fmt"
)

// Protocol constants. The layouts are drawn in the package documentation.
const (
	// Magic0 and Magic1 are the first two bytes of every message: "PF".
	Magic0 = 'P'
	Magic1 = 'F'
	// Version is the protocol version this package speaks.
	Version = 1

	// MaxMessage is the largest message, in bytes, in either direction.
	MaxMessage = 65536
	// MaxBatch is the most entries (calls) in one message.
	MaxBatch = 64
	// MaxArgs is the most arguments one request entry may carry.
	MaxArgs = 8
	// MaxEntryFDs is the most file descriptors one reply entry carries.
	MaxEntryFDs = 1
	// MaxFDs is the most file descriptors one reply carries.
	MaxFDs = MaxBatch * MaxEntryFDs

	// HeaderSize is the size of the message header.
	HeaderSize = 16
	// RequestEntrySize is the size of a request entry's head.
	RequestEntrySize = 16
	// ReplyEntrySize is the size of a reply entry's head.
	ReplyEntrySize = 24
	// ValueHeadSize is the size of a value's head (type, zero, length).
	ValueHeadSize = 8

	// U64Size is the encoded size of a u64 value.
	U64Size = ValueHeadSize + 8
)

// MsgType tells requests from replies.
type MsgType uint8

// Message types.
const (
	TypeRequest MsgType = 1
	TypeReply   MsgType = 2
)

func (t MsgType) String() string {
	switch t {
	case TypeRequest:
		return "request"
	case TypeReply:
		return "reply"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Flags are the header's flag bits.
type Flags uint16

// Request flags.
const (
	// FlagStopOnError stops a batch at its first failing call: the later
	// entries get ECANCELED and are not executed.
	FlagStopOnError Flags = 1 << 0

	// RequestFlags are the flag bits a request may set.
	RequestFlags = FlagStopOnError
)

// ValueType is the type byte of a value.
type ValueType uint8

// Value types.
const (
	U64   ValueType = 1
	Bytes ValueType = 2
)

func (t ValueType) String() string {
	switch t {
	case U64:
		return "u64"
	case Bytes:
		return "str"
	}
	return fmt.Sprintf("valuetype(%d)", uint8(t))
}

// Value is one argument or result. Exactly one of U64 and Bytes is
// meaningful, as Type says. A decoded Bytes aliases the message buffer: it
// is valid until the buffer is reused.
type Value struct {
	Type  ValueType
	U64   uint64
	Bytes []byte
}

// U64Value returns a u64 value.
func U64Value(v uint64) Value { return Value{Type: U64, U64: v} }

// BytesValue returns a bytes value.
func BytesValue(b []byte) Value { return Value{Type: Bytes, Bytes: b} }

// StringValue returns a bytes value holding s.
func StringValue(s string) Value { return Value{Type: Bytes, Bytes: []byte(s)} }

// EncodedSize is the number of bytes v takes on the wire.
func (v Value) EncodedSize() int {
	if v.Type == U64 {
		return U64Size
	}
	return BytesSize(len(v.Bytes))
}

// BytesSize is the encoded size of a bytes value of n bytes.
func BytesSize(n int) int { return ValueHeadSize + pad8(n) }

func pad8(n int) int { return (n + 7) &^ 7 }

// Header is a message header.
type Header struct {
	Version uint8
	Type    MsgType
	Count   uint16
	Flags   Flags
	Length  uint32
}

// putHeader writes h into b[0:HeaderSize], with the magic and a zero
// reserved field.
func putHeader(b []byte, h Header) {
	_ = b[HeaderSize-1]
	b[0], b[1] = Magic0, Magic1
	b[2] = h.Version
	b[3] = byte(h.Type)
	binary.LittleEndian.PutUint16(b[4:], h.Count)
	binary.LittleEndian.PutUint16(b[6:], uint16(h.Flags))
	binary.LittleEndian.PutUint32(b[8:], h.Length)
	binary.LittleEndian.PutUint32(b[12:], 0)
}

// ParseHeader reads and checks a message header against the message it
// starts: magic, version, want's type, a length equal to len(msg), count in
// 1..MaxBatch, a zero reserved field. The errors are *ProtocolError with the
// errno the message as a whole gets: EPROTONOSUPPORT for another version,
// E2BIG for a message or batch too large, EBADMSG for the rest.
func ParseHeader(msg []byte, want MsgType) (Header, error) {
	if len(msg) > MaxMessage {
		return Header{}, protoErr(E2BIG, "message of %d bytes is larger than %d", len(msg), MaxMessage)
	}
	if len(msg) < 3 {
		return Header{}, protoErr(EBADMSG, "message of %d bytes is shorter than the %d-byte header", len(msg), HeaderSize)
	}
	if msg[0] != Magic0 || msg[1] != Magic1 {
		return Header{}, protoErr(EBADMSG, "bad magic %#02x %#02x (not a pinfold message)", msg[0], msg[1])
	}
	if msg[2] != Version {
		return Header{}, protoErr(EPROTONOSUPPORT, "protocol version %d is not supported (this side speaks version %d)", msg[2], Version)
	}
	if len(msg) < HeaderSize {
		return Header{}, protoErr(EBADMSG, "message of %d bytes is shorter than the %d-byte header", len(msg), HeaderSize)
	}
	h := Header{
		Version: msg[2],
		Type:    MsgType(msg[3]),
		Count:   binary.LittleEndian.Uint16(msg[4:]),
		Flags:   Flags(binary.LittleEndian.Uint16(msg[6:])),
		Length:  binary.LittleEndian.Uint32(msg[8:]),
	}
	switch {
	case h.Type != want:
		return h, protoErr(EBADMSG, "message type %s, want %s", h.Type, want)
	case uint64(h.Length) != uint64(len(msg)):
		return h, protoErr(EBADMSG, "length field says %d bytes, the message has %d", h.Length, len(msg))
	case binary.LittleEndian.Uint32(msg[12:]) != 0:
		return h, protoErr(EBADMSG, "reserved header field is not zero")
	case h.Count == 0:
		return h, protoErr(EBADMSG, "message has no entries")
	case h.Count > MaxBatch:
		return h, protoErr(E2BIG, "batch of %d calls is larger than %d", h.Count, MaxBatch)
	}
	return h, nil
}
