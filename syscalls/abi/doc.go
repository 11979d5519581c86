// Package abi owns the wire protocol of pinfold's app-facing syscall
// interface: the message format on an app's control channel, the syscall
// table (numbers, names, argument and result signatures), the errno numbers,
// and a bounds-checked encoder and decoder for both directions. It is pure
// Go and builds on any system.
//
// It does not touch sockets or file descriptors: syscalls/server serves the
// protocol for pinfold, syscalls/client is the Go library apps link, and
// syscalls/python/pinfold.py is the Python one.
//
// # The control channel
//
// Each app gets one end of an AF_UNIX SOCK_SEQPACKET socketpair at the file
// descriptor named by the environment variable PINFOLD_CTL_FD. One datagram
// is one message: the app sends a request message, pinfold answers with
// exactly one reply message, in order. All integers are little-endian. A
// message is at most MaxMessage (65536) bytes.
//
//	app                                                    pinfold
//	 |-- request: header + 1..64 request entries ------------->|
//	 |<- reply:   header + one reply entry per request entry --|
//	 |            + SCM_RIGHTS: the entries' fds, in order     |
//
// # Header (16 bytes, both directions)
//
//	0       2       3       4       6       8               12              16
//	+-------+-------+-------+-------+-------+---------------+---------------+
//	| magic |version| type  | count | flags |    length     |   reserved    |
//	| 'P''F'|   1   |1 req  |  u16  |  u16  |  u32: whole   |  u32: zero    |
//	|       |       |2 reply|       |       |  message      |               |
//	+-------+-------+-------+-------+-------+---------------+---------------+
//
// count is the number of entries, 1..MaxBatch (64). length is the size of
// the whole message including the header and must equal the datagram's
// size. Request flags: bit 0 (FlagStopOnError) stops the batch at the first
// failing call; the later entries are answered with ECANCELED and are not
// executed. Other flag bits are reserved: a request that sets one gets
// EINVAL. Reply flags are zero.
//
// # Request entry (16-byte head, then its arguments)
//
//	0               8       10      12              16
//	+---------------+-------+-------+---------------+
//	|  request id   | sysno | nargs | args length   |  args (args length bytes)
//	+---------------+-------+-------+---------------+
//
// request id is chosen by the app and echoed in the reply entry. nargs is
// the number of values in args (at most MaxArgs); args length, a multiple of
// 8, is their encoded size. The next entry starts right after the args.
//
// # Reply entry (24-byte head, then its values)
//
//	0               8       10      12      14      16              20      24
//	+---------------+-------+-------+-------+-------+---------------+-------+
//	|  request id   | sysno | errno | nfds  | nvals | values length |  rsv  |
//	+---------------+-------+-------+-------+-------+---------------+-------+
//
// request id and sysno echo the request entry's. errno is 0 on success, or a
// Linux errno number (see Errno). On success the values are the call's
// results (see the syscall table); on failure they are exactly one bytes
// value: a human-readable reason, such as "not granted: no attach grant of
// policy consumer matches shm results/1 with access readwrite". nfds is the
// number of file descriptors the entry carries (0 or 1 in version 1). rsv
// (u32) is zero.
//
// A reply message answers one request message: the same count, entries in
// the same order. File descriptors travel in one SCM_RIGHTS control message
// on the reply datagram, concatenated in entry order; the first nfds of them
// belong to the first entry, and so on.
//
// # Value (an argument or a result)
//
//	0       1               4               8
//	+-------+---------------+---------------+-----------------------------+
//	| type  |  zero (3)     |  u32 length   |  payload, zero-padded to a  |
//	| 1 u64 |               |               |  multiple of 8 bytes        |
//	|2 bytes|               |               |                             |
//	+-------+---------------+---------------+-----------------------------+
//
// A u64 value has length 8 (16 bytes in all). A bytes value carries a name
// or other string in UTF-8 (object names are ASCII; see ipc.ValidName);
// strings are not NUL-terminated.
//
// # Errors the message as a whole can get
//
// A message whose header cannot be trusted (too short, bad magic, bad
// version, a length field that is not the datagram's size, a count outside
// 1..64, entries that do not exactly fill the message) or that is refused as
// a whole (larger than MaxMessage, carrying file descriptors) is answered by
// a reply with a single entry: request id 0, sysno 0, the errno and a
// reason. Clients treat it as the answer to every call of the request.
//
//	EBADMSG          malformed header or entry framing; also a single entry
//	                 whose values are malformed (the rest of the batch runs)
//	EPROTONOSUPPORT  a version other than Version
//	E2BIG            a datagram larger than MaxMessage, or count > MaxBatch
//	EINVAL           file descriptors sent with a request (pinfold closes
//	                 them at once), or reserved flag bits set
//
// A server may close the channel of an app that sends many malformed
// messages in a row.
//
// # Syscalls
//
// The table (Syscalls, Lookup) lists each call's number, name, arguments and
// results; "str" is a bytes value, every other value is u64. Kinds and
// accesses use the numbers of ipc.Kind (pipe 1, shm 2, region 3, mq 4) and
// ipc.Access (read 1, write 2, readwrite 3).
//
//	sysno name        arguments -> results [+ fd]
//	0     nop         () -> ()
//	1     self        () -> (app str, policy str, maxObjects, maxBytes, objects, bytes)
//	2     list        (offset) -> (total, then per object: name str, kind, size, owner str)
//	3     stat        (name str) -> (kind, size, owner str, ownerPolicy str, holders,
//	                  flags [1 persistent, 2 unlinked], created [unix ns], maxmsg, msgsize)
//	4     unlink      (name str) -> ()
//	5     pipe_open   (name str, end [1 read, 2 write]) -> () + fd
//	6     shm_create  (name str, size) -> (size) + fd (read-write)
//	7     shm_attach  (name str, access [1 read, 3 readwrite]) -> (size) + fd
//	8     region_map  (name str, size [0: attach only], access) -> (size, created) + fd
//	9     mq_open     (name str, maxmsg, msgsize [both 0: attach only],
//	                  access [1 receive, 2 send, 3 both],
//	                  flags [1 nonblock, 2 exclusive create]) -> (maxmsg, msgsize, created) + fd
//
// list returns objects sorted by name starting at offset, as many as fit in
// one reply; total is the number of objects the app can see, so a client
// pages by calling list again at offset + the number it got. An unknown
// sysno gets ENOSYS; wrong argument count or types get EINVAL.
//
// Errors are Linux errno numbers: EPERM not granted, ENOENT no such object,
// EEXIST, ENOSPC over quota, E2BIG over a size limit, EINVAL bad argument,
// ENAMETOOLONG, EPIPE (the other end of a pipe is gone), ENOSYS unknown
// sysno, EBADMSG malformed, EPROTONOSUPPORT unknown version, ECANCELED (the
// batch stopped before this call), EMSGSIZE (the reply would not fit in one
// message).
package abi
