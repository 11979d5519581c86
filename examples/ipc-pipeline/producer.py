"""Producer half of the ipc-pipeline example: moves TOTAL bytes to the
consumer through a shared-memory ring that pinfold created for the group.

Channels (PINFOLD_FDS, opened by pinfold before the app started):
  ring    shm, read-write here: NSLOTS slots of SLOT bytes
  filled  pipe, write end: records telling the consumer which slots are full
  freed   pipe, read end: credits, slots the consumer has finished with

Protocol (README.md has the diagram). Every record on "filled" is 24
bytes, three little-endian u64 (tag, a, b):
  HELLO   a = slot size, b = number of slots   (first record)
  FILLED  a = slots filled, b = bytes in them  (the next a slots, in ring order;
                                                all full but the stream's last)
  END     a = total bytes,  b = CRC-32 of the whole stream
Every record on "freed" is one u64: that many more slots are free again.

Flow control is by credits: the producer owns all slots at the start and
fills a slot only while it holds a credit for it. It announces slots in
batches of BATCH and always announces what it filled before it waits for
credits; the consumer returns credits in batches and always returns them
before it waits for slots. So one of them can always make progress: no
deadlock, and at most NSLOTS records are ever in flight on either pipe,
far below a pipe's 64 KiB, so no write blocks.

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
BLOCKS = 7  # distinct data blocks, cycled (7 is prime to any power-of-two slot count)


def parse_size(s):
    """'1Gi', '64Mi', '4Ki', '1G', '1000' -> bytes."""
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
             "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    s = s.strip()
    for suffix in sorted(units, key=len, reverse=True):
        if s.endswith(suffix):
            return int(s[:-len(suffix)]) * units[suffix]
    return int(s)


def crc_shift_tables(n):
    """Tables for the linear map c -> crc32(zeros(n), c) ^ crc32(zeros(n), 0).

    CRC-32 is affine in its initial value: crc32(B, c) = M(c) ^ crc32(B, 0),
    where M depends only on len(B). So the CRC of a stream extended by a
    block whose own CRC is known costs four table look-ups, and the producer
    announces the CRC of every byte it wrote without reading them again.
    (zlib's crc32_combine, which Python does not expose.)
    """
    zeros = bytes(n)
    base = zlib.crc32(zeros, 0)
    cols = [zlib.crc32(zeros, 1 << i) ^ base for i in range(32)]
    tables = []
    for k in range(4):
        t = [0] * 256
        for v in range(1, 256):
            low = v & -v
            t[v] = t[v ^ low] ^ cols[8 * k + low.bit_length() - 1]
        tables.append(t)
    return tables


def crc_extend(tables, crc, block_crc):
    t0, t1, t2, t3 = tables
    return t0[crc & 255] ^ t1[(crc >> 8) & 255] ^ t2[(crc >> 16) & 255] ^ t3[crc >> 24] ^ block_crc


class Credits:
    """The read end of "freed"."""

    def __init__(self, fd):
        self.fd = fd
        self.buf = b""

    def wait(self):
        """Block until the consumer returns at least one slot; return how many."""
        while True:
            data = os.read(self.fd, 4096)
            if not data:
                raise EOFError("the consumer closed the freed pipe (did it exit?)")
            self.buf += data
            n = len(self.buf) // CREDIT.size * CREDIT.size
            if n:
                got = sum(c for (c,) in CREDIT.iter_unpack(self.buf[:n]))
                self.buf = self.buf[n:]
                return got


def main():
    total = parse_size(os.environ.get("TOTAL", "1Gi"))
    slot = parse_size(os.environ.get("SLOT", "1Mi"))
    batch = int(os.environ.get("BATCH", "8"))
    ch = pinfold.channels()
    for name in ("ring", "filled", "freed"):
        if name not in ch:
            sys.exit("producer: no %s channel in PINFOLD_FDS=%r: run me with pinfold up group.yaml"
                     % (name, os.environ.get("PINFOLD_FDS", "")))
    ring_size = os.fstat(ch["ring"]).st_size
    nslots = ring_size // slot
    if nslots < 2 or slot <= 0:
        sys.exit("producer: ring of %d bytes is too small for slots of %d bytes" % (ring_size, slot))
    batch = max(1, min(batch, nslots // 2))
    ring = mmap.mmap(ch["ring"], nslots * slot)  # MAP_SHARED, read-write
    mv = memoryview(ring)
    if os.environ.get("PREFAULT", "1") == "1":
        # Allocate the ring's pages now (the first touch of a page costs
        # a fault, ~7x a warm write), before the clock starts.
        zero = bytes(slot)
        for i in range(nslots):
            mv[i * slot:(i + 1) * slot] = zero
    filled = ch["filled"]
    credits = Credits(ch["freed"])

    blocks = [os.urandom(slot) for _ in range(BLOCKS)]
    block_crcs = [zlib.crc32(b) for b in blocks]
    full_shift = crc_shift_tables(slot)

    os.write(filled, RECORD.pack(HELLO, slot, nslots))
    start = time.perf_counter()
    waited = 0.0
    free = nslots  # credits held
    head = 0       # next slot to fill
    sent = 0
    crc = 0
    seq = 0
    pending, pending_bytes = 0, 0
    notes = 0
    while sent < total:
        if free == 0:
            if pending:
                os.write(filled, RECORD.pack(FILLED, pending, pending_bytes))
                pending, pending_bytes, notes = 0, 0, notes + 1
            t = time.perf_counter()
            free += credits.wait()
            waited += time.perf_counter() - t
        n = min(slot, total - sent)
        block = blocks[seq % BLOCKS]
        off = head * slot
        mv[off:off + n] = block[:n] if n < slot else block
        if n == slot:
            crc = crc_extend(full_shift, crc, block_crcs[seq % BLOCKS])
        else:
            crc = zlib.crc32(block[:n], crc)
        sent += n
        seq += 1
        free -= 1
        head = head + 1 if head + 1 < nslots else 0
        pending += 1
        pending_bytes += n
        if pending >= batch:
            os.write(filled, RECORD.pack(FILLED, pending, pending_bytes))
            pending, pending_bytes, notes = 0, 0, notes + 1
    if pending:
        os.write(filled, RECORD.pack(FILLED, pending, pending_bytes))
        notes += 1
    os.write(filled, RECORD.pack(END, sent, crc))
    took = time.perf_counter() - start
    print("wrote %d bytes in %d slots of %d (ring %d MiB) in %.3f s, %d notifications, "
          "%.3f s waiting for credits; crc32 %08x" % (sent, seq, slot, ring_size >> 20, took, notes, waited, crc),
          flush=True)
    del mv
    ring.close()


if __name__ == "__main__":
    try:
        main()
    except (OSError, EOFError) as e:
        sys.exit("producer: %s" % e)
