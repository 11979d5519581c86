#!/usr/bin/python3
"""hello-agent: a small "AI app" that reports what it can see from inside.

It prints who it is, what privileges it holds, which network and files it can
reach, and what happens when it tries things a sandboxed app must not do.
Standard library only; runs with Debian's /usr/bin/python3 (3.11).

Exit status: 0 when every forbidden action was blocked; 1 when any was
allowed or could not be checked, so the report doubles as a self-check.

Nothing here changes the machine it runs on, even when every action is
allowed (for example as root on a host): a test mount is unmounted at once,
the hostname is set to the name it already has, /proc/sysrq-trigger is only
opened (never written), ptrace uses PTRACE_SEIZE (the target never stops),
and each action that could alter the process itself runs in a forked child.
"""

import ctypes
import errno
import fcntl
import grp
import os
import platform
import pwd
import resource
import signal
import socket
import stat
import struct
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from typing import Callable

LABEL_WIDTH = 36
LINE_WIDTH = 100

# Linux constants (uapi headers); the standard library does not export them.
CLONE_NEWUSER = 0x10000000
PTRACE_SEIZE = 0x4206
KEYCTL_GET_KEYRING_ID = 0
KEY_SPEC_SESSION_KEYRING = -3
BPF_MAP_CREATE = 0
BPF_MAP_TYPE_ARRAY = 2
SIOCGIFFLAGS = 0x8913
SIOCGIFADDR = 0x8915
IFF_UP = 0x1
IFNAMSIZ = 16
IFREQ_SIZE = 40

# Syscall numbers for the two actions that have no libc wrapper.
# aarch64, riscv64 and loongarch64 share the generic table.
SYSCALL_NR = {
    "x86_64": {"keyctl": 250, "bpf": 321},
    "aarch64": {"keyctl": 219, "bpf": 280},
    "riscv64": {"keyctl": 219, "bpf": 280},
    "loongarch64": {"keyctl": 219, "bpf": 280},
}

# Capability names by bit number (include/uapi/linux/capability.h).
CAP_NAMES = [
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill",
    "setgid", "setuid", "setpcap", "linux_immutable", "net_bind_service",
    "net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
    "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
    "sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time",
    "sys_tty_config", "mknod", "lease", "audit_write", "audit_control",
    "setfcap", "mac_override", "mac_admin", "syslog", "wake_alarm",
    "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
]


# ---------------------------------------------------------------- output


def _use_color() -> bool:
    return (
        sys.stdout.isatty()
        and "NO_COLOR" not in os.environ
        and os.environ.get("TERM", "dumb") != "dumb"
    )


COLOR = _use_color()


def paint(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if COLOR else text


def section(title: str) -> None:
    print()
    print(paint(title, "1"))


def row(label: str, value: str) -> None:
    """Print one aligned row; long values wrap under the value column."""
    indent = " " * (2 + LABEL_WIDTH)
    lines = textwrap.wrap(value, LINE_WIDTH - len(indent)) or [""]
    print(f"  {label:<{LABEL_WIDTH}}{lines[0]}")
    for more in lines[1:]:
        print(indent + more)


def errname(code: int | None) -> str:
    """Return "ENAME: message" for an errno value."""
    if code is None:
        return "no errno"
    name = errno.errorcode.get(code, f"errno {code}")
    return f"{name}: {os.strerror(code)}"


def guard(fn: Callable[[], str]) -> str:
    """Run an informational probe; never let it crash the report."""
    try:
        return fn()
    except Exception as exc:  # a report line, not a crash
        return f"unknown ({describe(exc)})"


def describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return errname(exc.errno)
    return f"{type(exc).__name__}: {exc}"


def read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


# ---------------------------------------------------------------- libc


class Libc:
    """Thin ctypes access to the few libc calls the checks need."""

    def __init__(self) -> None:
        try:
            lib = ctypes.CDLL("libc.so.6", use_errno=True)
        except OSError:
            lib = ctypes.CDLL(None, use_errno=True)
        self.lib = lib
        lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p,
                              ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
        lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        lib.unshare.argtypes = [ctypes.c_int]
        lib.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        lib.ptrace.argtypes = [ctypes.c_long, ctypes.c_int,
                               ctypes.c_void_p, ctypes.c_void_p]
        lib.ptrace.restype = ctypes.c_long
        lib.syscall.restype = ctypes.c_long

    def call(self, name: str, *args) -> tuple[int, int]:
        """Call a libc function; return (result, errno), errno 0 on success."""
        ctypes.set_errno(0)
        rc = getattr(self.lib, name)(*args)
        return (rc, ctypes.get_errno()) if rc < 0 else (rc, 0)


_libc: Libc | None = None
_libc_error: str = ""


def libc() -> Libc:
    global _libc, _libc_error
    if _libc is None:
        if _libc_error:
            raise RuntimeError(_libc_error)
        try:
            _libc = Libc()
        except Exception as exc:
            _libc_error = f"ctypes cannot load libc: {describe(exc)}"
            raise RuntimeError(_libc_error) from exc
    return _libc


def in_child(action: Callable[[], int]) -> int:
    """Run action in a forked child and return the errno it reports (0 = ok).

    Used for every action that would change this process (namespaces, root
    directory, tracing) so a successful action cannot skew later checks.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: always leave through os._exit
        try:
            os.close(r)
            signal.alarm(5)  # a stuck action ends the child, not the report
            try:
                msg = str(int(action())).encode()
            except BaseException as exc:
                msg = b"!" + describe(exc).encode()[:300]
            os.write(w, msg)
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    try:
        while chunk := os.read(r, 512):
            data += chunk
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    if not data or data.startswith(b"!"):
        raise RuntimeError("child: " + (data[1:].decode(errors="replace")
                                        or "died without an answer"))
    return int(data)


# ---------------------------------------------------------------- facts


def proc_status() -> dict[str, str]:
    fields = {}
    for line in read_text("/proc/self/status").splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def visible_pids() -> str:
    pids = sorted(int(n) for n in os.listdir("/proc") if n.isdigit())
    if len(pids) <= 5:
        return f"{len(pids)} ({', '.join(map(str, pids))})"
    return f"{len(pids)}"


def user_line() -> str:
    uid, gid = os.getuid(), os.getgid()
    try:
        uname = pwd.getpwuid(uid).pw_name
    except KeyError:
        uname = "no name"
    try:
        gname = grp.getgrgid(gid).gr_name
    except KeyError:
        gname = "no name"
    line = f"uid {uid} ({uname}), gid {gid} ({gname})"
    groups = [g for g in os.getgroups() if g != gid]
    if groups:
        line += f", groups {', '.join(map(str, groups[:8]))}"
        if len(groups) > 8:
            line += f" (+{len(groups) - 8} more)"
    return line


def last_cap() -> int:
    try:
        return int(read_text("/proc/sys/kernel/cap_last_cap").strip())
    except (OSError, ValueError):
        return len(CAP_NAMES) - 1


def decode_caps(hexmask: str) -> str:
    mask = int(hexmask, 16)
    if mask == 0:
        return "none"
    known = last_cap() + 1
    names = [CAP_NAMES[b] if b < len(CAP_NAMES) else f"cap{b}" for b in range(64)]
    held = [names[b] for b in range(64) if mask >> b & 1]
    if len(held) == known and mask < 1 << known:
        return f"all {known}"
    if len(held) > known // 2:
        missing = [names[b] for b in range(known) if not mask >> b & 1]
        return f"{len(held)} of {known}: all but {', '.join(missing)}"
    shown = ", ".join(held[:6])
    if len(held) > 6:
        shown += f" (+{len(held) - 6} more)"
    return f"{len(held)} of {known}: {shown}"


def seccomp_line(status: dict[str, str]) -> str:
    mode = status.get("Seccomp")
    text = {"0": "disabled", "1": "strict", "2": "filter"}.get(
        mode or "", f"unknown ({mode})")
    filters = status.get("Seccomp_filters")
    if mode == "2" and filters:
        text += f" ({filters} filter{'s' if filters != '1' else ''})"
    return text


def mounts_line() -> str:
    lines = read_text("/proc/self/mountinfo").splitlines()
    root = "not found"
    for line in lines:
        fields = line.split()
        if len(fields) > 5 and fields[4] == "/":
            opts = fields[5].split(",")
            fstype = line.split(" - ", 1)[1].split()[0] if " - " in line else "?"
            root = ("read-only" if "ro" in opts else "read-write") + f" ({fstype})"
    return f"/ is {root}; {len(lines)} mounts visible"


def interface_info(name: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = name.encode()[:IFNAMSIZ - 1].ljust(IFREQ_SIZE, b"\0")
        flags = struct.unpack_from("H", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req),
                                   IFNAMSIZ)[0]
        state = "up" if flags & IFF_UP else "down"
        try:
            res = fcntl.ioctl(s.fileno(), SIOCGIFADDR, req)
            addr = socket.inet_ntoa(res[IFNAMSIZ + 4:IFNAMSIZ + 8])
        except OSError:
            addr = "no IPv4 address"
    return f"{state}, {addr}"


def network_rows() -> None:
    names = []
    for line in read_text("/proc/net/dev").splitlines()[2:]:
        name = line.split(":", 1)[0].strip()
        if name:
            names.append(name)
    row("interfaces", f"{len(names)}: {', '.join(names)}" if names else "none")
    for name in names[:8]:
        row(f"  {name}", guard(lambda n=name: interface_info(n)))
    row("default route (IPv4)", guard(default_route))


def default_route() -> str:
    for line in read_text("/proc/net/route").splitlines()[1:]:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "00000000":
            gw = socket.inet_ntoa(struct.pack("<I", int(fields[2], 16)))
            return f"via {gw} dev {fields[0]}"
    return "none"


def cgroup_rows() -> None:
    entries = []
    for line in read_text("/proc/self/cgroup").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            entries.append((parts[1], parts[2]))
    v1 = [e for e in entries if e[0]]
    v2 = [e for e in entries if not e[0]]
    layout = ("hybrid (v1 + v2)" if v1 and v2 else
              "v1" if v1 else "v2 (unified)" if v2 else "none listed")
    paths = sorted({p for _, p in entries})
    if len(paths) == 1:
        where = paths[0]
    else:
        nested = [f"{c or 'v2'}={p}" for c, p in entries if p != "/"]
        where = ", ".join(nested[:3]) + (" (+more)" if len(nested) > 3 else "")
        if "/" in paths:
            where += "; the rest at /"
    note = " (own cgroup namespace)" if paths == ["/"] else ""
    row("cgroup (/proc/self/cgroup)", f"{layout}; {where}{note}")
    if not os.path.isdir("/sys/fs/cgroup") or not os.listdir("/sys/fs/cgroup"):
        row("memory / cpu / pids limits",
            "enforced by the supervisor, not visible inside "
            "(no /sys/fs/cgroup here)")
        return
    for label, fn in (("memory limit", lambda: cg_value(entries, "memory")),
                      ("pids limit", lambda: cg_value(entries, "pids")),
                      ("cpu limit", lambda: cg_value(entries, "cpu"))):
        row(label, guard(fn))


def cg_value(entries: list[tuple[str, str]], ctrl: str) -> str:
    """Read one limit from a visible cgroup filesystem (v2 first, then v1)."""
    v2 = {"memory": "memory.max", "pids": "pids.max", "cpu": "cpu.max"}[ctrl]
    v1 = {"memory": "memory.limit_in_bytes", "pids": "pids.max",
          "cpu": "cpu.cfs_quota_us"}[ctrl]
    candidates = []
    for ctrls, path in entries:
        if not ctrls and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            candidates.append(f"/sys/fs/cgroup{path.rstrip('/')}/{v2}")
        elif ctrl in ctrls.split(","):
            candidates.append(f"/sys/fs/cgroup/{ctrls}{path.rstrip('/')}/{v1}")
    for file in candidates:
        try:
            raw = read_text(file).strip()
        except OSError:
            continue
        return f"{human_limit(ctrl, raw)} ({os.path.basename(file)})"
    files = v2 if v1 == v2 else f"{v2} or {v1}"
    return f"no {files} for this cgroup"


def human_limit(ctrl: str, raw: str) -> str:
    first = raw.split()[0] if raw else raw
    if first in ("max", "-1") or (first.isdigit() and int(first) >= 1 << 62):
        return "unlimited"
    if ctrl == "memory" and first.isdigit():
        return f"{int(first) / (1 << 20):.0f} MiB"
    if ctrl == "cpu" and len(raw.split()) == 2:
        quota, period = raw.split()
        return f"{int(quota) / int(period):.2f} CPU"
    return raw


def rlimit(which: int) -> str:
    def fmt(v: int) -> str:
        return "unlimited" if v == resource.RLIM_INFINITY else str(v)
    soft, hard = resource.getrlimit(which)
    return f"{fmt(soft)} (hard {fmt(hard)})"


def env_names() -> str:
    names = sorted(os.environ)
    shown = ", ".join(names[:40])
    if len(names) > 40:
        shown += f" (+{len(names) - 40} more)"
    return f"{len(names)}: {shown}" if names else "none"


# ---------------------------------------------------------------- actions


@dataclass
class Outcome:
    status: str  # "blocked", "allowed", "skipped" or "error"
    detail: str

    def render(self) -> str:
        if self.status == "blocked":
            return paint(f"blocked ({self.detail})", "32")
        if self.status == "allowed":
            return paint(f"ALLOWED  <-- {self.detail}", "1;31")
        if self.status == "skipped":
            return paint(f"skipped ({self.detail})", "33")
        return paint(f"COULD NOT CHECK ({self.detail})", "1;33")


def blocked(code: int | None, note: str = "") -> Outcome:
    return Outcome("blocked", errname(code) + (f"; {note}" if note else ""))


def allowed(what: str) -> Outcome:
    return Outcome("allowed", what)


def errno_outcome(code: int, did: str,
                  reached: Callable[[int], bool] = lambda c: False) -> Outcome:
    """Map an errno from an action: 0 or a 'reached' errno means it got through."""
    if code == 0:
        return allowed(did)
    if reached(code):
        return allowed(f"the call reached the kernel ({errname(code)})")
    return blocked(code)


def only_denials(code: int) -> bool:
    """For raw syscalls: anything but a denial means the kernel ran it."""
    return code not in (errno.EPERM, errno.EACCES, errno.ENOSYS)


def try_write(directory: str) -> Outcome:
    """Create and remove a file in directory; 'allowed' means writable."""
    path = os.path.join(directory, f".hello-agent-{os.getpid()}")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        return blocked(exc.errno)
    os.close(fd)
    os.unlink(path)
    return allowed("created a file")


def act_mount() -> Outcome:
    lib = libc()
    target = None
    for base in ("/tmp", "/dev/shm", os.environ.get("HOME", "")):
        if base:
            try:
                target = tempfile.mkdtemp(prefix="hello-agent-", dir=base)
                break
            except OSError:
                continue
    made = target is not None
    target = target or "/tmp"
    try:
        def child() -> int:
            _, err = lib.call("mount", b"none", target.encode(), b"tmpfs", 0, None)
            if err == 0:
                lib.call("umount2", target.encode(), 2)  # MNT_DETACH
            return err
        return errno_outcome(in_child(child), f"mounted a tmpfs on {target} "
                             "(unmounted again)")
    finally:
        if made:
            os.rmdir(target)


def act_unshare_user() -> Outcome:
    lib = libc()
    err = in_child(lambda: lib.call("unshare", CLONE_NEWUSER)[1])
    return errno_outcome(err, "created a user namespace")


def act_read(path: str) -> Outcome:
    try:
        if os.path.isdir(path):
            n = len(os.listdir(path))
            return allowed(f"listed it ({n} entr{'y' if n == 1 else 'ies'})")
        with open(path, "rb") as f:
            f.read(1)
        return allowed("read its contents")
    except OSError as exc:
        return blocked(exc.errno)


def act_udp() -> Outcome:
    # A DNS query for the root's NS records: 12-byte header + root + type + class.
    query = struct.pack(">HHHHHH", 0x6861, 0x0100, 1, 0, 0, 0) + b"\0" + \
        struct.pack(">HH", 2, 1)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(query, ("1.1.1.1", 53))
        return allowed(f"sent a {len(query)}-byte DNS query")
    except OSError as exc:
        return blocked(exc.errno)


def act_tcp() -> Outcome:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(2.0)
            s.connect(("8.8.8.8", 53))
        return allowed("connected")
    except TimeoutError:
        return allowed("the SYN went out (no answer in 2 s)")
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ECONNRESET):
            return allowed(f"reached a peer ({errname(exc.errno)})")
        return blocked(exc.errno)


def act_sethostname() -> Outcome:
    lib = libc()
    name = os.uname().nodename.encode()
    err = in_child(lambda: lib.call("sethostname", name, len(name))[1])
    return errno_outcome(err, "set the hostname (to its current value)")


def act_chroot() -> Outcome:
    def child() -> int:
        try:
            os.chroot("/")
            return 0
        except OSError as exc:
            return exc.errno or errno.EIO
    return errno_outcome(in_child(child), "chroot(\"/\") succeeded")


def act_ptrace() -> Outcome:
    lib = libc()
    # PTRACE_SEIZE does not stop the target; the tracer's exit detaches it.
    err = in_child(lambda: lib.call("ptrace", PTRACE_SEIZE, 1, None, None)[1])
    return errno_outcome(err, "attached to pid 1 (detached at exit)")


def act_raw_socket() -> Outcome:
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    except OSError as exc:
        return blocked(exc.errno)
    s.close()
    return allowed("opened an ICMP raw socket")


def syscall_nr(name: str) -> int | None:
    return SYSCALL_NR.get(platform.machine(), {}).get(name)


def act_keyctl() -> Outcome:
    nr = syscall_nr("keyctl")
    if nr is None:
        return Outcome("skipped", f"no syscall number for {platform.machine()}")
    lib = libc()
    rc, err = lib.call("syscall", ctypes.c_long(nr),
                       ctypes.c_long(KEYCTL_GET_KEYRING_ID),
                       ctypes.c_long(KEY_SPEC_SESSION_KEYRING), ctypes.c_long(0))
    return errno_outcome(err, f"got session keyring id {rc}", only_denials)


def act_bpf() -> Outcome:
    nr = syscall_nr("bpf")
    if nr is None:
        return Outcome("skipped", f"no syscall number for {platform.machine()}")
    lib = libc()
    attr = ctypes.create_string_buffer(
        struct.pack("IIII", BPF_MAP_TYPE_ARRAY, 4, 4, 1), 72)
    rc, err = lib.call("syscall", ctypes.c_long(nr), ctypes.c_long(BPF_MAP_CREATE),
                       attr, ctypes.c_long(len(attr)))
    if err == 0:
        os.close(rc)
    return errno_outcome(err, "created a BPF map", only_denials)


def act_proc_file(path: str, flags: int, did: str) -> Outcome:
    """Open a sensitive /proc file; a /dev/null mask over it counts as blocked."""
    try:
        fd = os.open(path, flags | os.O_CLOEXEC)
    except OSError as exc:
        return blocked(exc.errno)
    try:
        if stat.S_ISCHR(os.fstat(fd).st_mode):
            return Outcome("blocked", "masked: a character device "
                           "(/dev/null) is mounted over it")
        if flags == os.O_RDONLY:
            os.read(fd, 4)
        return allowed(did)
    except OSError as exc:
        return blocked(exc.errno)
    finally:
        os.close(fd)


def forbidden_actions() -> list[tuple[str, Callable[[], Outcome]]]:
    return [
        ("mount a tmpfs", act_mount),
        ("unshare(CLONE_NEWUSER)", act_unshare_user),
        ("read /root", lambda: act_read("/root")),
        ("read /etc/shadow", lambda: act_read("/etc/shadow")),
        ("read /home", lambda: act_read("/home")),
        ("write into /", lambda: try_write("/")),
        ("write into /usr", lambda: try_write("/usr")),
        ("write into /etc", lambda: try_write("/etc")),
        ("send UDP to 1.1.1.1:53", act_udp),
        ("TCP connect to 8.8.8.8:53", act_tcp),
        ("sethostname", act_sethostname),
        ("chroot", act_chroot),
        ("ptrace pid 1 (from a child)", act_ptrace),
        ("open a raw socket", act_raw_socket),
        ("keyctl (raw syscall)", act_keyctl),
        ("bpf (raw syscall)", act_bpf),
        ("open /proc/sysrq-trigger to write",
         lambda: act_proc_file("/proc/sysrq-trigger", os.O_WRONLY,
                               "opened for writing (nothing written)")),
        ("read /proc/kcore",
         lambda: act_proc_file("/proc/kcore", os.O_RDONLY,
                               "read kernel memory")),
    ]


# ---------------------------------------------------------------- report


def report() -> int:
    title = "hello-agent: what this app can see from inside"
    print(paint(title, "1"))
    print("=" * len(title))

    section("Identity")
    row("pid (parent)", guard(lambda: f"{os.getpid()} ({os.getppid()})"))
    row("pids visible in /proc", guard(visible_pids))
    row("hostname", guard(lambda: os.uname().nodename))
    row("user", guard(user_line))
    row("kernel", guard(lambda: f"{os.uname().release} ({platform.machine()})"))
    row("python", guard(lambda: f"{platform.python_version()} ({sys.executable})"))
    row("working directory", guard(os.getcwd))

    section("Privileges")
    status: dict[str, str] = {}
    try:
        status = proc_status()
    except OSError as exc:
        row("/proc/self/status", f"unreadable ({describe(exc)})")
    for key in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"):
        if key in status:
            row(key, guard(lambda k=key: decode_caps(status[k])))
    if "NoNewPrivs" in status:
        row("NoNewPrivs", "yes" if status["NoNewPrivs"] == "1" else "no")
    if "Seccomp" in status:
        row("seccomp", seccomp_line(status))

    section("Network")
    try:
        network_rows()
    except Exception as exc:
        row("interfaces", f"unknown ({describe(exc)})")

    section("Filesystem")
    row("mounts", guard(mounts_line))
    home = os.environ.get("HOME", "")
    for path in dict.fromkeys(["/tmp", "/dev/shm"] + ([home] if home else [])):
        label = f"write into {path}" + (" ($HOME)" if path == home else "")
        try:
            out = try_write(path)
            row(label, "yes" if out.status == "allowed" else f"no ({out.detail})")
        except Exception as exc:
            row(label, f"unknown ({describe(exc)})")

    section("Limits")
    try:
        cgroup_rows()
    except Exception as exc:
        row("cgroup", f"unknown ({describe(exc)})")
    row("RLIMIT_NOFILE", guard(lambda: rlimit(resource.RLIMIT_NOFILE)))
    row("RLIMIT_CORE", guard(lambda: rlimit(resource.RLIMIT_CORE)))
    row("RLIMIT_NPROC", guard(lambda: rlimit(resource.RLIMIT_NPROC)))

    section("Environment (names only)")
    row("variables", guard(env_names))

    section("Forbidden actions")
    results: list[tuple[str, Outcome]] = []
    for label, action in forbidden_actions():
        try:
            out = action()
        except Exception as exc:
            out = Outcome("error", describe(exc))
        results.append((label, out))
        row(label, out.render())

    failed = [(lbl, o) for lbl, o in results if o.status in ("allowed", "error")]
    checked = [r for r in results if r[1].status != "skipped"]
    print()
    if not failed:
        print(paint(f"Verdict: all {len(checked)} forbidden actions were "
                    "blocked.", "1;32"))
        return 0
    allowed_n = sum(1 for _, o in failed if o.status == "allowed")
    errors_n = len(failed) - allowed_n
    parts = []
    if allowed_n:
        parts.append(f"{allowed_n} of {len(checked)} forbidden actions were ALLOWED")
    if errors_n:
        parts.append(f"{errors_n} could not be checked")
    verdict = ("Verdict: " + " and ".join(parts) + ": "
               + ", ".join(lbl for lbl, _ in failed) + ".")
    for line in textwrap.wrap(verdict, LINE_WIDTH, subsequent_indent="  "):
        print(paint(line, "1;31"))
    return 1


def main() -> int:
    try:
        return report()
    except BrokenPipeError:
        return 1
    except Exception as exc:  # last resort: still say why, still fail
        print(f"\nhello-agent: report stopped early: {describe(exc)}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
