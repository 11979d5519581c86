"""Tests of pinfold.py against a real pinfold server.

Run by TestPython in syscalls/server (python_linux_test.go), which serves
PINFOLD_CTL_FD with the real server and a stand-in broker session
(servertest.Session) for an app whose policy is "consumer" and whose
id starts with "pyapp" (followed by 3000 dashes, so that list replies can
run out of room). It prepares:

  - shm "from-go": 4096 bytes starting with b"hello from go";
  - PINFOLD_FDS "greeting:N": a memfd starting with b"greeting from go";
  - attach of names under "private/" is not granted;
  - every call on "gone" fails with EPIPE;
  - objects of at most 65536 bytes, 16 objects;
  - PINFOLD_TEST_ERRNO_NAMES: "1:EPERM,2:ENOENT,..." as the Go side names them.

After this script exits 0, the Go side checks that shm "py/out" starts
with b"hello from python".
"""

import errno
import mmap
import os
import socket
import struct
import sys
import sysconfig
import unittest

import pinfold

c = None


def setUpModule():
    global c
    c = pinfold.connect()


def tearDownModule():
    if c is not None:
        c.close()


def raw_round_trip(msg):
    """Send a raw message on the client's socket and decode the reply."""
    with c._lock:
        c._sock.sendmsg([msg])
        data, anc, flags, _ = c._sock.recvmsg(pinfold.MAX_MESSAGE, socket.CMSG_SPACE(4 * 64))
    assert not anc
    return pinfold.decode_reply(data)


class StdlibOnly(unittest.TestCase):
    def test_imports_only_stdlib(self):
        stdlib = sysconfig.get_paths()["stdlib"]
        here = os.path.dirname(os.path.abspath(pinfold.__file__))
        for name, mod in list(sys.modules.items()):
            f = getattr(mod, "__file__", None)
            if f is None or os.path.dirname(os.path.abspath(f)) == here:
                continue  # built-in, or pinfold and this test
            self.assertTrue(os.path.abspath(f).startswith(stdlib), "%s from %s is not in the standard library" % (name, f))


class Offline(unittest.TestCase):
    def test_errno_names_match_go(self):
        for item in os.environ["PINFOLD_TEST_ERRNO_NAMES"].split(","):
            n, name = item.split(":")
            self.assertEqual(pinfold.errno_name(int(n)), name)
        self.assertEqual(pinfold.errno_name(4000), "errno 4000")

    def test_encode_request(self):
        # shm_attach("results/1", readwrite) as id 7, byte for byte as the Go
        # encoder writes it (syscalls/abi TestGoldenRequest).
        want = bytes([
            80, 70, 1, 1, 1, 0, 0, 0, 72, 0, 0, 0, 0, 0, 0, 0,
            7, 0, 0, 0, 0, 0, 0, 0, 7, 0, 2, 0, 40, 0, 0, 0,
            2, 0, 0, 0, 9, 0, 0, 0]) + b"results/1" + bytes(7) + bytes([1, 0, 0, 0, 8, 0, 0, 0, 3]) + bytes(7)
        self.assertEqual(pinfold.encode_request([(7, pinfold.SYS_SHM_ATTACH, ["results/1", 3])]), want)
        with self.assertRaises(ValueError):
            pinfold.encode_request([(1, 0, [])] * 65)
        with self.assertRaises(TypeError):
            pinfold.encode_request([(1, pinfold.SYS_STAT, [5])])
        with self.assertRaises(ValueError):
            pinfold.encode_request([(1, pinfold.SYS_SHM_CREATE, ["x", -1])])

    def test_decode_hostile_replies(self):
        good = struct.pack("<2sBBHHII", b"PF", 1, 2, 1, 0, 40, 0) + struct.pack("<QHHHHII", 1, 0, 0, 0, 0, 0, 0)
        self.assertEqual(pinfold.decode_reply(good[:40]), [(1, 0, 0, 0, [])])
        hostile = {
            "empty": b"",
            "truncated": good[:20],
            "bad magic": b"XF" + good[2:40],
            "version 2": good[:2] + b"\x02" + good[3:40],
            "request type": good[:3] + b"\x01" + good[4:40],
            "length lie": good[:8] + struct.pack("<I", 48) + good[12:40],
            "count lie": good[:4] + struct.pack("<H", 2) + good[6:40],
            "nvals lie": good[:30] + struct.pack("<H", 5) + good[32:40],
            "values past end": good[:32] + struct.pack("<I", 64) + good[36:40],
            "two fds": good[:28] + struct.pack("<H", 2) + good[30:40],
            "trailing": good[:8] + struct.pack("<I", 48) + good[12:40] + bytes(8),
        }
        for what, msg in hostile.items():
            with self.subTest(what):
                with self.assertRaises(pinfold.ProtocolError):
                    pinfold.decode_reply(msg)

    def test_parse_channels(self):
        self.assertEqual(pinfold.parse_channels(""), {})
        self.assertEqual(pinfold.parse_channels("jobs/in:3,jobs/out:4"), {"jobs/in": 3, "jobs/out": 4})
        for bad in ["a", "a:", ":3", "a:3,", "a:-3", "a:+3", "a:03", "a:3:4", "a b:3", "a:3,a:4",
                    "a:3,b:3", "a//b:3", "../a:3", "a:99999999999999999999", "a:\u0663"]:
            with self.subTest(bad):
                with self.assertRaises(ValueError):
                    pinfold.parse_channels(bad)

    def test_connect_errors(self):
        saved = os.environ.get("PINFOLD_CTL_FD")
        try:
            del os.environ["PINFOLD_CTL_FD"]
            with self.assertRaisesRegex(pinfold.NotUnderPinfold, "not running under pinfold: PINFOLD_CTL_FD is not set"):
                pinfold.connect()
            os.environ["PINFOLD_CTL_FD"] = "x"
            with self.assertRaises(ValueError):
                pinfold.connect()
            r, w = os.pipe()
            try:
                os.environ["PINFOLD_CTL_FD"] = str(r)
                with self.assertRaisesRegex(ValueError, "not a pinfold control channel"):
                    pinfold.connect()
                os.fstat(r)  # still open: not ours to close
            finally:
                os.close(r)
                os.close(w)
        finally:
            os.environ["PINFOLD_CTL_FD"] = saved


class Calls(unittest.TestCase):
    def test_nop_self(self):
        self.assertIsNone(c.nop())
        s = c.self()
        self.assertTrue(s["app"].startswith("pyapp"))
        self.assertEqual((s["policy"], s["max_objects"], s["max_bytes"]), ("consumer", 16, 1 << 20))

    def test_channels(self):
        ch = pinfold.channels()
        self.assertEqual(list(ch), ["greeting"])
        with mmap.mmap(ch["greeting"], 4096, prot=mmap.PROT_READ) as m:
            self.assertEqual(m[:16], b"greeting from go")

    def test_shm(self):
        fd, size = c.shm_attach("from-go", "read")
        try:
            self.assertEqual(size, 4096)
            with mmap.mmap(fd, size, prot=mmap.PROT_READ) as m:
                self.assertEqual(m[:13], b"hello from go")
            with self.assertRaises(PermissionError):  # read-only: no shared writable map
                mmap.mmap(fd, size, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        fd = c.shm_create("py/out", 4096)
        try:
            with mmap.mmap(fd, 4096) as m:
                m[:17] = b"hello from python"
        finally:
            os.close(fd)
        fd, size = c.shm_attach("py/out", "readwrite")
        with mmap.mmap(fd, size) as m:
            self.assertEqual(m[:17], b"hello from python")
        os.close(fd)

    def test_fds_are_cloexec(self):
        fd = c.pipe_open("cloexec", "read")
        try:
            self.assertFalse(os.get_inheritable(fd))
        finally:
            os.close(fd)

    def test_pipe(self):
        w = c.pipe_open("py/pipe", "write")
        r = c.pipe_open("py/pipe", "read")
        try:
            os.write(w, b"through the pipe")
            self.assertEqual(os.read(r, 100), b"through the pipe")
        finally:
            os.close(w)
            os.close(r)

    def test_region(self):
        fd, size, created = c.region_map("py/region", 8192)
        os.close(fd)
        self.assertEqual((size, created), (8192, True))
        fd, size, created = c.region_map("py/region", access="read")
        os.close(fd)
        self.assertEqual((size, created), (8192, False))

    def test_mq(self):
        with c.mq_open("py/q", 4, 64) as q:
            self.assertEqual((q.maxmsg, q.msgsize, q.created), (4, 64, True))
            q.send(b"low", 1)
            q.send(b"high", 5)
            self.assertEqual(q.receive(), b"high")
            self.assertEqual(q.priority, 5)
            self.assertEqual(q.receive(timeout=5), b"low")
            with self.assertRaises(TimeoutError):
                q.receive(timeout=0.02)
        with c.mq_open("py/q", access="write", nonblock=True) as q:
            self.assertFalse(q.created)
            for i in range(4):
                q.send(b"%d" % i)
            with self.assertRaises(BlockingIOError):
                q.send(b"full")

    def test_stat_list_unlink(self):
        os.close(c.shm_create("py/stat", 1024))
        st = c.stat("py/stat")
        self.assertEqual((st["name"], st["kind"], st["size"], st["owner_policy"], st["persistent"], st["unlinked"]),
                         ("py/stat", "shm", 1024, "consumer", False, False))
        self.assertGreater(st["created_ns"], 0)
        names = [o["name"] for o in c.list()]
        self.assertIn("py/stat", names)
        self.assertEqual(names, sorted(names))
        c.unlink("py/stat")
        with self.assertRaises(FileNotFoundError):
            c.stat("py/stat")

    def test_batch(self):
        b = c.batch()
        b.shm_create("py/batch", 4096)
        b.stat("py/batch")
        b.stat("py/missing")
        b.nop()
        fd, st, missing, nop = b.run()
        os.close(fd)
        self.assertEqual(st["size"], 4096)
        self.assertIsInstance(missing, FileNotFoundError)
        self.assertIsInstance(missing, pinfold.Error)
        self.assertIsNone(nop)
        self.assertEqual(len(b), 0)
        b = c.batch(stop_on_error=True)
        for _ in range(70):
            b.nop()
        b.stat("py/missing")
        for _ in range(70):
            b.nop()
        res = b.run()
        self.assertEqual(len(res), 141)
        self.assertTrue(all(r is None for r in res[:70]))
        self.assertIsInstance(res[70], FileNotFoundError)
        self.assertTrue(all(isinstance(r, pinfold.Error) and r.errno == errno.ECANCELED for r in res[71:]))


class Errors(unittest.TestCase):
    def check(self, exc_type, errnum, call, name, reason, fn):
        with self.assertRaises(pinfold.Error) as cm:
            fn()
        e = cm.exception
        self.assertIsInstance(e, exc_type)
        self.assertIsInstance(e, OSError)
        self.assertEqual((e.errno, e.name, e.call, e.filename), (errnum, errno.errorcode[errnum], call, name))
        self.assertIn(reason, str(e))
        self.assertTrue(str(e).startswith("pinfold %s%s: %s: " % (call, " " + name if name else "", e.name)), str(e))

    def test_each_errno(self):
        os.close(c.shm_create("private/x", 16))
        os.close(c.shm_create("py/exists", 16))
        self.check(PermissionError, errno.EPERM, "shm_attach", "private/x",
                   "not granted: no attach grant of policy consumer matches shm private/x with access readwrite",
                   lambda: c.shm_attach("private/x", "readwrite"))
        self.check(FileNotFoundError, errno.ENOENT, "stat", "nothing", "no object named nothing", lambda: c.stat("nothing"))
        self.check(FileExistsError, errno.EEXIST, "shm_create", "py/exists", "exists", lambda: c.shm_create("py/exists", 16))
        self.check(OSError, errno.E2BIG, "shm_create", "py/huge", "over the limit", lambda: c.shm_create("py/huge", 1 << 20))
        self.check(OSError, errno.EINVAL, "stat", "a//b", "empty segment", lambda: c.stat("a//b"))
        self.check(OSError, errno.EINVAL, "pipe_open", "p", "pipe_open end must be", lambda: c._one(pinfold.SYS_PIPE_OPEN, "p", 3))
        self.check(OSError, errno.ENAMETOOLONG, "stat", "n" * 300, "longer than 200", lambda: c.stat("n" * 300))
        self.check(BrokenPipeError, errno.EPIPE, "pipe_open", "gone", "closed", lambda: c.pipe_open("gone", "write"))
        b = c.batch(stop_on_error=True)
        b.stat("nothing")
        b.nop()
        _, cancelled = b.run()
        self.assertEqual((cancelled.errno, cancelled.name), (errno.ECANCELED, "ECANCELED"))

    def test_over_quota(self):
        made = []
        try:
            with self.assertRaises(pinfold.Error) as cm:
                for i in range(17):
                    made.append(c.shm_create("py/quota/%d" % i, 16))
            self.assertEqual((cm.exception.errno, cm.exception.name), (errno.ENOSPC, "ENOSPC"))
            self.assertIn("over quota", str(cm.exception))
        finally:
            for i, fd in enumerate(made):
                os.close(fd)
                c.unlink("py/quota/%d" % i)

    def test_reply_too_large(self):
        # 64 lists in one batch: the first has no room for an object whose
        # owner (this app's id) is 3000 bytes long.
        b = c.batch()
        for _ in range(64):
            b.list()
        res = b.run()
        self.assertIsInstance(res[0], pinfold.Error)
        self.assertEqual((res[0].errno, res[0].name), (errno.EMSGSIZE, "EMSGSIZE"))

    def test_protocol_errors(self):
        nop = pinfold.encode_request([(1, pinfold.SYS_NOP, [])])
        for what, msg, want in [
            ("unknown sysno", struct.pack("<2sBBHHII", b"PF", 1, 1, 1, 0, 32, 0) + struct.pack("<QHHI", 5, 99, 0, 0),
             errno.ENOSYS),
            ("malformed entry", struct.pack("<2sBBHHII", b"PF", 1, 1, 1, 0, 40, 0) + struct.pack("<QHHI", 5, 3, 1, 8)
             + struct.pack("<B3sI", 9, b"\0\0\0", 0), errno.EBADMSG),
            ("version 2", nop[:2] + b"\x02" + nop[3:], errno.EPROTONOSUPPORT),
            ("garbage", b"garbage", errno.EBADMSG),
        ]:
            with self.subTest(what):
                entries = raw_round_trip(msg)
                self.assertEqual(len(entries), 1)
                self.assertEqual(entries[0][2], want, pinfold.errno_name(entries[0][2]))


class ZZClose(unittest.TestCase):
    # Runs last (unittest sorts classes by name).
    def test_closed(self):
        c.close()
        with self.assertRaises(pinfold.ChannelClosed):
            c.nop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
