#!/usr/bin/env python3
"""fdatasync after a small write: growing a file, into preallocated zeros,
and into fallocate'd space (docs/storage-choice.md, "Preallocation").

    python3 bench/fsync-prealloc.py [DIR]     # DIR on the disk to measure (default .)

Prints wall time and CPU (user + system) per write + fdatasync, twice per
mode, alternating, since this machine's disk speed drifts.
"""
import os
import resource
import sys
import time

N, RECORD, SPACE = 1500, 3000, 8 << 20


def run(directory, mode):
    path = os.path.join(directory, "fsync-prealloc.bin")
    if os.path.exists(path):
        os.remove(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        if mode == "zeros":
            zeros = b"\0" * (1 << 20)
            for _ in range(SPACE >> 20):
                os.write(fd, zeros)
            os.fsync(fd)
        elif mode == "fallocate":
            os.posix_fallocate(fd, 0, SPACE)
            os.fsync(fd)
        data = os.urandom(RECORD)
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        for i in range(N):
            os.pwrite(fd, data, i * RECORD)
            os.fdatasync(fd)
        wall = time.monotonic() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        return wall / N * 1e6, cpu / N * 1e6
    finally:
        os.close(fd)
        os.remove(path)


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "."
    for _ in range(2):
        for mode in ("append", "zeros", "fallocate"):
            wall, cpu = run(directory, mode)
            print(f"{mode:9s} {wall:6.0f} us wall  {cpu:5.0f} us CPU  per {RECORD}-byte write + fdatasync")


if __name__ == "__main__":
    main()
