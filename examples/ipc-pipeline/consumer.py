"""Consumer half of the ipc-pipeline example: reads the producer's stream
out of the shared-memory ring, computes the CRC-32 of every byte, checks it
against the producer's, and prints the throughput.

Channels (PINFOLD_FDS): ring (shm, read-only here: the kernel refuses this
app any write to it), filled (pipe, read end), freed (pipe, write end).
producer.py describes the records and why the credit scheme cannot
deadlock.

Standard library plus pinfold's client module only.
"""

import mmap
import os
import struct
import sys
import time
import zlib

import pinfold

HELLO, FILLED, END = 1, 2, 3
RECORD = struct.Struct("<QQQ")
CREDIT = struct.Struct("<Q")


class Records:
    """The read end of "filled": whole 24-byte records."""

    def __init__(self, fd):
        self.fd = fd
        self.buf = b""

    def wait(self):
        """Block until at least one record arrived; return all that did."""
        while True:
            data = os.read(self.fd, 65536)
            if not data:
                raise EOFError("the producer closed the filled pipe before the end of the stream (did it exit?)")
            self.buf += data
            n = len(self.buf) // RECORD.size * RECORD.size
            if n:
                recs = list(RECORD.iter_unpack(self.buf[:n]))
                self.buf = self.buf[n:]
                return recs


def main():
    batch = int(os.environ.get("BATCH", "8"))
    ch = pinfold.channels()
    for name in ("ring", "filled", "freed"):
        if name not in ch:
            sys.exit("consumer: no %s channel in PINFOLD_FDS=%r: run me with pinfold up group.yaml"
                     % (name, os.environ.get("PINFOLD_FDS", "")))
    records = Records(ch["filled"])
    freed = ch["freed"]
    producer_done = False

    def give_back(n):
        # Once the producer has written its last slot it stops reading
        # credits and exits: then the pipe has no reader (EPIPE), which is
        # fine. If it died early instead, the filled pipe says so (EOF).
        nonlocal producer_done
        if producer_done:
            return
        try:
            os.write(freed, CREDIT.pack(n))
        except BrokenPipeError:
            producer_done = True

    hello = records.wait()
    tag, slot, nslots = hello[0]
    if tag != HELLO:
        sys.exit("consumer: the first record is not HELLO: %r" % (hello[0],))
    start = time.perf_counter()
    ring_size = os.fstat(ch["ring"]).st_size
    if slot * nslots > ring_size:
        sys.exit("consumer: %d slots of %d bytes do not fit the %d-byte ring" % (nslots, slot, ring_size))
    batch = max(1, min(batch, nslots // 2))
    flags = mmap.MAP_SHARED
    if os.environ.get("PREFAULT", "1") == "1":
        flags |= getattr(mmap, "MAP_POPULATE", 0)  # map every page now (Python 3.10+)
    ring = mmap.mmap(ch["ring"], slot * nslots, flags=flags, prot=mmap.PROT_READ)
    mv = memoryview(ring)

    queue = hello[1:]
    tail = 0     # next slot to read
    got = 0
    crc = 0
    done = 0     # slots read, not yet returned
    end = None
    while end is None:
        if not queue:
            # Return every credit before waiting: the producer may be
            # waiting for them.
            if done:
                give_back(done)
                done = 0
            queue = records.wait()
        for i, (tag, a, b) in enumerate(queue):
            if tag == END:
                end = (a, b)
                if i != len(queue) - 1:
                    sys.exit("consumer: records after END")
                break
            if tag != FILLED:
                sys.exit("consumer: unexpected record %r" % ((tag, a, b),))
            left = b
            for _ in range(a):
                n = min(slot, left)
                off = tail * slot
                crc = zlib.crc32(mv[off:off + n], crc)
                left -= n
                got += n
                tail = tail + 1 if tail + 1 < nslots else 0
                done += 1
                if done >= batch:
                    give_back(done)
                    done = 0
            if left:
                sys.exit("consumer: a FILLED record of %d slots says %d bytes" % (a, b))
        queue = []
    took = time.perf_counter() - start
    total, want = end
    del mv
    ring.close()
    if got != total or crc != want:
        print("consumer: MISMATCH: received %d bytes with crc32 %08x; the producer sent %d bytes with crc32 %08x"
              % (got, crc, total, want), flush=True)
        sys.exit(1)
    print("received %d bytes (%.2f GiB) in %.3f s: %.2f GB/s; crc32 %08x matches the producer's"
          % (got, got / (1 << 30), took, got / max(took, 1e-9) / 1e9, crc), flush=True)


if __name__ == "__main__":
    try:
        main()
    except (OSError, EOFError) as e:
        sys.exit("consumer: %s" % e)
