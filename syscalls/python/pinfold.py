"""Talk to pinfold from inside a sandbox.

pinfold places one end of a control channel (an AF_UNIX SOCK_SEQPACKET
socket) in every app it starts and names its descriptor in PINFOLD_CTL_FD.
This module speaks pinfold's syscall protocol on it (the wire format is
documented in syscalls/abi/doc.go of the pinfold source) with the standard
library only, mirroring the Go client (syscalls/client):

    import pinfold

    c = pinfold.connect()
    fd = c.shm_create("results/1", 4096)          # a read-write memfd
    fd, size = c.shm_attach("results/1", "read")  # a read-only one
    try:
        c.shm_attach("private/x", "readwrite")
    except PermissionError as e:                  # also pinfold.Error
        print(e)  # pinfold shm_attach private/x: EPERM: not granted: ...

Every call returns what the Go client returns; descriptors are plain ints,
close-on-exec, owned by the caller. A refused call raises pinfold.Error, a
subclass of OSError carrying .errno, .name ("EPERM"), .call ("shm_attach"),
.filename (the object name) and the reason; it is also an instance of the
OSError subclass Python maps the errno to (PermissionError for EPERM,
FileNotFoundError for ENOENT, FileExistsError for EEXIST, ...).

Requires Python 3.9 or later. Imports nothing outside the standard library.
"""

import ctypes
import errno as _errno
import os
import re
import socket
import struct
import threading
import time

__all__ = [
    "connect", "channels", "parse_channels", "errno_name",
    "Client", "Batch", "MessageQueue",
    "Error", "ProtocolError", "ChannelClosed", "NotUnderPinfold",
    "MAX_MESSAGE", "MAX_BATCH",
]

# Protocol constants (syscalls/abi).
VERSION = 1
MAX_MESSAGE = 65536
MAX_BATCH = 64
MAX_NAME_LEN = 200
TYPE_REQUEST = 1
TYPE_REPLY = 2
FLAG_STOP_ON_ERROR = 1
VALUE_U64 = 1
VALUE_BYTES = 2

_HEADER = struct.Struct("<2sBBHHII")       # magic, version, type, count, flags, length, reserved
_REQUEST_ENTRY = struct.Struct("<QHHI")    # id, sysno, nargs, args length
_REPLY_ENTRY = struct.Struct("<QHHHHII")   # id, sysno, errno, nfds, nvals, values length, reserved
_VALUE_HEAD = struct.Struct("<B3sI")       # type, zero, length
_U64 = struct.Struct("<Q")

SYS_NOP = 0
SYS_SELF = 1
SYS_LIST = 2
SYS_STAT = 3
SYS_UNLINK = 4
SYS_PIPE_OPEN = 5
SYS_SHM_CREATE = 6
SYS_SHM_ATTACH = 7
SYS_REGION_MAP = 8
SYS_MQ_OPEN = 9

# sysno: (name, argument types, result types, repeated result group, returns an fd).
# "s" is a bytes value (a string), "u" a u64.
SYSCALLS = {
    SYS_NOP: ("nop", "", "", "", False),
    SYS_SELF: ("self", "", "ssuuuu", "", False),
    SYS_LIST: ("list", "u", "u", "suus", False),
    SYS_STAT: ("stat", "s", "uussuuuuu", "", False),
    SYS_UNLINK: ("unlink", "s", "", "", False),
    SYS_PIPE_OPEN: ("pipe_open", "su", "", "", True),
    SYS_SHM_CREATE: ("shm_create", "su", "u", "", True),
    SYS_SHM_ATTACH: ("shm_attach", "su", "u", "", True),
    SYS_REGION_MAP: ("region_map", "suu", "uu", "", True),
    SYS_MQ_OPEN: ("mq_open", "suuuu", "uuu", "", True),
}

KINDS = {1: "pipe", 2: "shm", 3: "region", 4: "mq"}
ACCESS = {"read": 1, "write": 2, "readwrite": 3}
MQ_NONBLOCK = 1
MQ_EXCLUSIVE = 2
STAT_PERSISTENT = 1
STAT_UNLINKED = 2

# Linux's errno names, with the Go client's choice for numbers that have
# two (EAGAIN, EDEADLK, EOPNOTSUPP).
_ERRNO_NAMES = dict(_errno.errorcode)
_ERRNO_NAMES.update({11: "EAGAIN", 35: "EDEADLK", 95: "EOPNOTSUPP", 133: "EHWPOISON"})


def errno_name(n):
    """The symbolic name of errno n ("EPERM"), or "errno N"."""
    return _ERRNO_NAMES.get(n, "errno %d" % n)


class Error(OSError):
    """A call pinfold refused or that failed.

    .errno is the errno, .name its symbolic name, .call the syscall's name,
    .filename the object name (or None), .reason (also .strerror) pinfold's
    explanation. Instances also belong to the OSError subclass Python maps
    the errno to, so `except PermissionError` works as usual.
    """

    name = ""
    call = ""

    def __str__(self):
        s = "pinfold " + self.call
        if self.filename:
            s += " " + self.filename
        s += ": " + self.name
        if self.strerror:
            s += ": " + self.strerror
        return s

    @property
    def reason(self):
        return self.strerror


_error_classes = {}


def _error_class(n):
    cls = _error_classes.get(n)
    if cls is None:
        builtin = type(OSError(n, ""))  # what Python maps the errno to
        cls = Error
        if builtin is not OSError:
            cls = type("Error", (Error, builtin), {"__module__": __name__, "__qualname__": "Error"})
        _error_classes[n] = cls
    return cls


def _make_error(n, call, name, reason):
    cls = _error_class(n)
    e = cls(n, reason, name) if name else cls(n, reason)
    e.name = errno_name(n)
    e.call = call
    return e


class ProtocolError(Exception):
    """pinfold's reply did not make sense (the client and pinfold disagree
    about the protocol)."""


class ChannelClosed(ConnectionError):
    """pinfold closed the control channel, or the client was closed."""


class NotUnderPinfold(RuntimeError):
    """The process has no pinfold control channel."""


# ---- encoding ---------------------------------------------------------------


def _pad(n):
    return (n + 7) & ~7


def _encode_value(t, v):
    if t == "u":
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError("expected an int, got %r" % (v,))
        if not 0 <= v < 1 << 64:
            raise ValueError("%d does not fit in a u64" % v)
        return _VALUE_HEAD.pack(VALUE_U64, b"\0\0\0", 8) + _U64.pack(v)
    if isinstance(v, str):
        v = v.encode("utf-8")
    elif not isinstance(v, (bytes, bytearray)):
        raise TypeError("expected a str, got %r" % (v,))
    return _VALUE_HEAD.pack(VALUE_BYTES, b"\0\0\0", len(v)) + bytes(v) + b"\0" * (_pad(len(v)) - len(v))


def encode_request(calls, flags=0):
    """Encode [(id, sysno, [args])] as one request message (args typed by
    the syscall table)."""
    if not 1 <= len(calls) <= MAX_BATCH:
        raise ValueError("a request has 1 to %d calls, not %d" % (MAX_BATCH, len(calls)))
    parts = []
    for cid, sysno, args in calls:
        types = SYSCALLS[sysno][1]
        if len(args) != len(types):
            raise TypeError("%s takes %d arguments" % (SYSCALLS[sysno][0], len(types)))
        body = b"".join(_encode_value(t, a) for t, a in zip(types, args))
        parts.append(_REQUEST_ENTRY.pack(cid, sysno, len(args), len(body)) + body)
    body = b"".join(parts)
    length = _HEADER.size + len(body)
    if length > MAX_MESSAGE:
        raise ValueError("request of %d bytes is larger than %d" % (length, MAX_MESSAGE))
    return _HEADER.pack(b"PF", VERSION, TYPE_REQUEST, len(calls), flags, length, 0) + body


def decode_reply(msg):
    """Decode a reply message: a list of (id, sysno, errno, nfds, values),
    values being ints (u64) and bytes. Raises ProtocolError."""
    if len(msg) < _HEADER.size:
        raise ProtocolError("reply of %d bytes is shorter than its header" % len(msg))
    magic, version, mtype, count, flags, length, reserved = _HEADER.unpack_from(msg)
    if magic != b"PF" or version != VERSION or mtype != TYPE_REPLY:
        raise ProtocolError("not a version %d pinfold reply" % VERSION)
    if length != len(msg) or reserved or flags or not 1 <= count <= MAX_BATCH:
        raise ProtocolError("malformed reply header")
    off = _HEADER.size
    entries = []
    for i in range(count):
        if len(msg) - off < _REPLY_ENTRY.size:
            raise ProtocolError("reply entry %d is truncated" % (i + 1))
        cid, sysno, err, nfds, nvals, vlen, rsv = _REPLY_ENTRY.unpack_from(msg, off)
        off += _REPLY_ENTRY.size
        if rsv or vlen % 8 or vlen > len(msg) - off or nfds > 1:
            raise ProtocolError("malformed reply entry %d" % (i + 1))
        values = _decode_values(msg[off:off + vlen], nvals, i + 1)
        if err and (nfds or len(values) != 1 or not isinstance(values[0], bytes)):
            raise ProtocolError("failed reply entry %d must carry only its reason" % (i + 1))
        entries.append((cid, sysno, err, nfds, values))
        off += vlen
    if off != len(msg):
        raise ProtocolError("%d bytes after the last reply entry" % (len(msg) - off))
    return entries


def _decode_values(b, n, entry):
    if n > len(b) // 8:
        raise ProtocolError("entry %d: %d values cannot fit in %d bytes" % (entry, n, len(b)))
    out = []
    off = 0
    for j in range(n):
        if len(b) - off < _VALUE_HEAD.size:
            raise ProtocolError("entry %d value %d is truncated" % (entry, j + 1))
        t, zero, l = _VALUE_HEAD.unpack_from(b, off)
        off += _VALUE_HEAD.size
        size = _pad(l)
        if zero != b"\0\0\0" or size > len(b) - off or any(b[off + l:off + size]):
            raise ProtocolError("entry %d value %d is malformed" % (entry, j + 1))
        if t == VALUE_U64 and l == 8:
            out.append(_U64.unpack_from(b, off)[0])
        elif t == VALUE_BYTES:
            out.append(bytes(b[off:off + l]))
        else:
            raise ProtocolError("entry %d value %d has type %d" % (entry, j + 1, t))
        off += size
    if off != len(b):
        raise ProtocolError("entry %d has bytes after its values" % entry)
    return out


def _check_results(sysno, values):
    _, _, fixed, each, _ = SYSCALLS[sysno]
    types = ["u" if isinstance(v, int) else "s" for v in values]
    if types[:len(fixed)] != list(fixed):
        return False
    rest = types[len(fixed):]
    if not each:
        return not rest
    return len(rest) % len(each) == 0 and all(t == each[i % len(each)] for i, t in enumerate(rest))


# ---- the client -------------------------------------------------------------


def _name(v):
    return v.decode("utf-8", "replace")


def _access(call, v, allowed):
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if v not in allowed:
        raise ValueError("%s access must be one of %s, not %r" % (call, ", ".join(allowed), v))
    return ACCESS[v]


def _convert(sysno, name, values, fd):
    """A successful call's return value, as the Go client returns it."""
    if sysno == SYS_SELF:
        app, policy, max_objects, max_bytes, objects, nbytes = values
        return {"app": _name(app), "policy": _name(policy), "max_objects": max_objects,
                "max_bytes": max_bytes, "objects": objects, "bytes": nbytes}
    if sysno == SYS_LIST:
        objs = []
        for i in range(1, len(values), 4):
            oname, kind, size, owner = values[i:i + 4]
            objs.append({"name": _name(oname), "kind": KINDS.get(kind, str(kind)), "size": size, "owner": _name(owner)})
        return values[0], objs
    if sysno == SYS_STAT:
        kind, size, owner, owner_policy, holders, flags, created, maxmsg, msgsize = values
        return {"name": name, "kind": KINDS.get(kind, str(kind)), "size": size, "owner": _name(owner),
                "owner_policy": _name(owner_policy), "holders": holders,
                "persistent": bool(flags & STAT_PERSISTENT), "unlinked": bool(flags & STAT_UNLINKED),
                "created_ns": created, "maxmsg": maxmsg, "msgsize": msgsize}
    if sysno == SYS_PIPE_OPEN or sysno == SYS_SHM_CREATE:
        return fd
    if sysno == SYS_SHM_ATTACH:
        return fd, values[0]
    if sysno == SYS_REGION_MAP:
        return fd, values[0], bool(values[1])
    if sysno == SYS_MQ_OPEN:
        return MessageQueue(fd, values[0], values[1], bool(values[2]))
    return None


class Client:
    """A connection to pinfold. Safe to share between threads: calls take
    turns, one round trip at a time."""

    def __init__(self, sock):
        if sock.type != socket.SOCK_SEQPACKET:
            raise ValueError("not a pinfold control channel: a SOCK_SEQPACKET socket is needed")
        self._sock = sock
        self._lock = threading.Lock()
        self._next_id = 0
        self._closed = False

    def close(self):
        with self._lock:
            if not self._closed:
                self._closed = True
                self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def fileno(self):
        return self._sock.fileno()

    def _round_trip(self, calls, flags=0):
        """Send calls [(sysno, name or None, args)] as one message; return
        one item per call: the converted result, or an Error instance."""
        with self._lock:
            if self._closed:
                raise ChannelClosed("pinfold closed the control channel")
            first = self._next_id + 1
            self._next_id += len(calls)
            msg = encode_request([(first + i, sysno, args) for i, (sysno, _, args) in enumerate(calls)], flags)
            try:
                self._sock.sendmsg([msg])
                data, anc, mflags, _ = self._sock.recvmsg(
                    MAX_MESSAGE, socket.CMSG_SPACE(4 * MAX_BATCH), getattr(socket, "MSG_CMSG_CLOEXEC", 0))
            except (BrokenPipeError, ConnectionResetError):
                raise ChannelClosed("pinfold closed the control channel") from None
        fds = []
        for level, ctype, cdata in anc:
            if level == socket.SOL_SOCKET and ctype == socket.SCM_RIGHTS:
                usable = len(cdata) - len(cdata) % 4
                fds.extend(struct.unpack("<%di" % (usable // 4), cdata[:usable]))
        try:
            if not data and not fds:
                raise ChannelClosed("pinfold closed the control channel")
            if mflags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                raise ProtocolError("truncated reply")
            return self._decode(calls, first, data, fds)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise

    def _decode(self, calls, first, data, fds):
        entries = decode_reply(data)
        if len(entries) == 1 and entries[0][0] == 0 and entries[0][1] == 0 and entries[0][2]:
            if fds:
                raise ProtocolError("descriptors with an error reply")
            err, reason = entries[0][2], _name(entries[0][4][0])
            return [_make_error(err, SYSCALLS[s][0], n, reason) for s, n, _ in calls]
        if len(entries) != len(calls):
            raise ProtocolError("%d results for %d calls" % (len(entries), len(calls)))
        if sum(e[3] for e in entries) != len(fds):
            raise ProtocolError("the reply announces %d descriptors, %d came" % (sum(e[3] for e in entries), len(fds)))
        for i, ((cid, sysno, err, nfds, values), (want, _, _)) in enumerate(zip(entries, calls)):
            if cid != first + i or sysno != want:
                raise ProtocolError("reply entry %d answers another request" % i)
            if not err and (not _check_results(sysno, values) or (nfds == 1) != SYSCALLS[sysno][4]):
                raise ProtocolError("malformed %s reply" % SYSCALLS[sysno][0])
        out = []
        fds = list(fds)
        for (cid, sysno, err, nfds, values), (_, name, _) in zip(entries, calls):
            if err:
                out.append(_make_error(err, SYSCALLS[sysno][0], name, _name(values[0])))
                continue
            fd = fds.pop(0) if nfds else None
            out.append(_convert(sysno, name, values, fd))
        return out

    def _one(self, sysno, name=None, *nums):
        args = ([name] if name is not None else []) + list(nums)
        r = self._round_trip([(sysno, name, args)])[0]
        if isinstance(r, Error):
            raise r
        return r

    def nop(self):
        """A round trip to pinfold and back."""
        self._one(SYS_NOP)

    def self(self):
        """The app's identity and quota: a dict with app, policy,
        max_objects, max_bytes, objects, bytes."""
        return self._one(SYS_SELF)

    def list(self):
        """Every object the app can see, sorted by name: a list of dicts
        with name, kind, size, owner (paging through several calls)."""
        objs = []
        while True:
            total, page = self._one(SYS_LIST, None, len(objs))
            objs.extend(page)
            if not page or len(objs) >= total:
                return objs

    def stat(self, name):
        """One object: a dict with name, kind, size, owner, owner_policy,
        holders, persistent, unlinked, created_ns, maxmsg, msgsize."""
        return self._one(SYS_STAT, name)

    def unlink(self, name):
        """Remove the object's name; descriptors already handed out keep
        working."""
        self._one(SYS_UNLINK, name)

    def pipe_open(self, name, end):
        """One end ("read" or "write") of the named pipe, created on first
        use: an fd."""
        return self._one(SYS_PIPE_OPEN, name, _access("pipe_open", end, ("read", "write")))

    def shm_create(self, name, size):
        """Create shared memory of size bytes: a read-write fd to mmap."""
        return self._one(SYS_SHM_CREATE, name, size)

    def shm_attach(self, name, access):
        """Attach shared memory ("read" or "readwrite"): (fd, size)."""
        return self._one(SYS_SHM_ATTACH, name, _access("shm_attach", access, ("read", "readwrite")))

    def region_map(self, name, size=0, access="readwrite"):
        """The region file name, created with size bytes when absent (size 0
        only attaches): (fd, size, created)."""
        return self._one(SYS_REGION_MAP, name, size, _access("region_map", access, ACCESS))

    def mq_open(self, name, maxmsg=0, msgsize=0, access="readwrite", nonblock=False, exclusive=False):
        """A message queue ("read" receives, "write" sends, "readwrite"
        both), created with maxmsg messages of msgsize bytes when absent
        (both 0 only attach): a MessageQueue."""
        flags = (MQ_NONBLOCK if nonblock else 0) | (MQ_EXCLUSIVE if exclusive else 0)
        return self._one(SYS_MQ_OPEN, name, maxmsg, msgsize, _access("mq_open", access, ACCESS), flags)

    def batch(self, stop_on_error=False):
        """Collect calls to make in one round trip; see Batch."""
        return Batch(self, stop_on_error)


class Batch:
    """Calls made in one round trip (several when there are more than
    MAX_BATCH). Add calls with the Client's method names, then run():

        b = c.batch()
        b.stat("results/1")
        b.shm_attach("results/1", "read")
        stat, (fd, size) = b.run()

    run() returns one item per call: its return value, or the Error it
    failed with (not raised). With stop_on_error the calls after the first
    failure are not made and fail with ECANCELED.
    """

    def __init__(self, client, stop_on_error=False):
        self._client = client
        self.stop_on_error = stop_on_error
        self._calls = []

    def __len__(self):
        return len(self._calls)

    def _add(self, sysno, name=None, *nums):
        args = ([name] if name is not None else []) + list(nums)
        self._calls.append((sysno, name, args))

    def nop(self):
        self._add(SYS_NOP)

    def self(self):
        self._add(SYS_SELF)

    def list(self, offset=0):
        """One page of list: (total, [objects])."""
        self._add(SYS_LIST, None, offset)

    def stat(self, name):
        self._add(SYS_STAT, name)

    def unlink(self, name):
        self._add(SYS_UNLINK, name)

    def pipe_open(self, name, end):
        self._add(SYS_PIPE_OPEN, name, _access("pipe_open", end, ("read", "write")))

    def shm_create(self, name, size):
        self._add(SYS_SHM_CREATE, name, size)

    def shm_attach(self, name, access):
        self._add(SYS_SHM_ATTACH, name, _access("shm_attach", access, ("read", "readwrite")))

    def region_map(self, name, size=0, access="readwrite"):
        self._add(SYS_REGION_MAP, name, size, _access("region_map", access, ACCESS))

    def mq_open(self, name, maxmsg=0, msgsize=0, access="readwrite", nonblock=False, exclusive=False):
        flags = (MQ_NONBLOCK if nonblock else 0) | (MQ_EXCLUSIVE if exclusive else 0)
        self._add(SYS_MQ_OPEN, name, maxmsg, msgsize, _access("mq_open", access, ACCESS), flags)

    def run(self):
        calls, self._calls = self._calls, []
        flags = FLAG_STOP_ON_ERROR if self.stop_on_error else 0
        out = []
        for start in range(0, len(calls), MAX_BATCH):
            chunk = calls[start:start + MAX_BATCH]
            try:
                results = self._client._round_trip(chunk, flags)
            except BaseException:
                _close_results(calls, out)
                raise
            out.extend(results)
            if self.stop_on_error and any(isinstance(r, Error) for r in results):
                for sysno, name, _ in calls[start + MAX_BATCH:]:
                    out.append(_make_error(_errno.ECANCELED, SYSCALLS[sysno][0], name,
                                           "not executed: an earlier call in the batch failed"))
                break
        return out


def _close_results(calls, results):
    """Close the descriptors successful calls returned."""
    for (sysno, _, _), r in zip(calls, results):
        if isinstance(r, Error):
            continue
        if sysno == SYS_MQ_OPEN:
            r.close()
        elif sysno in (SYS_PIPE_OPEN, SYS_SHM_CREATE):
            os.close(r)
        elif sysno in (SYS_SHM_ATTACH, SYS_REGION_MAP):
            os.close(r[0])


def connect():
    """Connect through the control channel named by PINFOLD_CTL_FD. The
    descriptor is made non-inheritable, so that programs the app runs do
    not share the channel. Call it once: the Client owns the descriptor."""
    v = os.environ.get("PINFOLD_CTL_FD", "")
    if not v:
        raise NotUnderPinfold("not running under pinfold: PINFOLD_CTL_FD is not set")
    if not v.isdigit() or not v.isascii() or str(int(v)) != v:
        raise ValueError("PINFOLD_CTL_FD=%r is not a descriptor number" % v)
    fd = int(v)
    try:
        sock = socket.socket(fileno=fd)
    except OSError as e:
        raise ValueError("PINFOLD_CTL_FD=%d is not a pinfold control channel: %s" % (fd, e)) from None
    if sock.type != socket.SOCK_SEQPACKET or sock.family != socket.AF_UNIX:
        sock.detach()  # not ours to close
        raise ValueError("PINFOLD_CTL_FD=%d is not a pinfold control channel" % fd)
    os.set_inheritable(fd, False)
    return Client(sock)


_SEGMENT = re.compile(r"[A-Za-z0-9._-]+\Z")


def valid_name(name):
    """Whether name is a valid object name (see ipc.ValidName)."""
    if not name or len(name.encode("utf-8")) > MAX_NAME_LEN:
        return False
    return all(s not in (".", "..") and _SEGMENT.match(s) for s in name.split("/"))


def parse_channels(value):
    """Parse a PINFOLD_FDS value, "name:fd,name:fd", strictly, into
    {name: fd}; raises ValueError."""
    out, seen = {}, {}
    if not value:
        return out
    for i, item in enumerate(value.split(","), 1):
        name, sep, num = item.partition(":")
        if not sep:
            raise ValueError("PINFOLD_FDS entry %d %r is not name:fd" % (i, item))
        if not valid_name(name):
            raise ValueError("PINFOLD_FDS entry %d: %r is not a valid object name" % (i, name))
        if not (num.isascii() and num.isdigit()) or str(int(num)) != num or int(num) > 1 << 30:
            raise ValueError("PINFOLD_FDS entry %d: %r is not a descriptor number" % (i, num))
        fd = int(num)
        if name in out:
            raise ValueError("PINFOLD_FDS lists channel %s twice" % name)
        if fd in seen:
            raise ValueError("PINFOLD_FDS lists descriptor %d for both %s and %s" % (fd, seen[fd], name))
        out[name], seen[fd] = fd, name
    return out


def channels():
    """The channels pinfold opened for the app before it started, as
    listed in PINFOLD_FDS: {name: fd} ({} when unset). Each must be open."""
    out = parse_channels(os.environ.get("PINFOLD_FDS", ""))
    for name, fd in out.items():
        try:
            os.fstat(fd)
        except OSError:
            raise ValueError("PINFOLD_FDS lists descriptor %d for channel %s, which is not open" % (fd, name)) from None
    return out


# ---- message queues ---------------------------------------------------------


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc = None


def _mq_lib():
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)  # libc: mq_* live there since glibc 2.34
        if not hasattr(lib, "mq_timedsend"):
            lib = ctypes.CDLL("librt.so.1", use_errno=True)
        lib.mq_timedsend.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
                                     ctypes.POINTER(_Timespec)]
        lib.mq_timedsend.restype = ctypes.c_int
        lib.mq_timedreceive.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t,
                                        ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(_Timespec)]
        lib.mq_timedreceive.restype = ctypes.c_ssize_t
        _libc = lib
    return _libc


def _deadline(timeout):
    if timeout is None:
        return None
    t = max(time.time() + timeout, 0.0)
    sec = int(t)
    return ctypes.pointer(_Timespec(sec, int((t - sec) * 1e9)))


class MessageQueue:
    """A POSIX message queue descriptor from mq_open.

    send(data, prio=0, timeout=None) and receive(timeout=None) wait while the
    queue is full or empty: forever when timeout is None, else up to timeout
    seconds (then TimeoutError). On a queue opened with nonblock=True they
    raise BlockingIOError instead of waiting.
    """

    def __init__(self, fd, maxmsg, msgsize, created=False):
        self.fd = fd
        self.maxmsg = maxmsg
        self.msgsize = msgsize
        self.created = created
        self.priority = None  # of the last message received

    def fileno(self):
        return self.fd

    def send(self, data, prio=0, timeout=None):
        lib = _mq_lib()
        data = bytes(data)
        ts = _deadline(timeout)
        while True:
            if lib.mq_timedsend(self.fd, data, len(data), prio, ts) == 0:
                return
            e = ctypes.get_errno()
            if e != _errno.EINTR:
                raise OSError(e, os.strerror(e))

    def receive(self, timeout=None):
        """The oldest message of the highest priority, as bytes (its
        priority is then in .priority)."""
        lib = _mq_lib()
        buf = ctypes.create_string_buffer(max(self.msgsize, 1))
        prio = ctypes.c_uint()
        ts = _deadline(timeout)
        while True:
            n = lib.mq_timedreceive(self.fd, buf, len(buf), ctypes.byref(prio), ts)
            if n >= 0:
                self.priority = prio.value
                return buf.raw[:n]
            e = ctypes.get_errno()
            if e != _errno.EINTR:
                raise OSError(e, os.strerror(e))

    def close(self):
        if self.fd is not None and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
