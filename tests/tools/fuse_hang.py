#!/usr/bin/env python3
"""A FUSE file system that answers its mount and nothing else: a process
that touches it waits, and once killed stays in state D (the kernel waits
for an answer the daemon has read). It stands in for a disk or a network
file system that stopped answering. Usage: fuse_hang.py MOUNTPOINT; prints
"mounted"; killed, its connection ends and the waiting calls fail."""
import ctypes
import os
import struct
import sys

FUSE_INIT = 26

mountpoint = sys.argv[1]
fd = os.open("/dev/fuse", os.O_RDWR)
libc = ctypes.CDLL(None, use_errno=True)
options = f"fd={fd},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
if libc.mount(b"fuse_hang", mountpoint.encode(), b"fuse", 0, options) != 0:
    sys.exit(f"fuse_hang: mount {mountpoint}: {os.strerror(ctypes.get_errno())}")
print("mounted", flush=True)
while True:
    request = os.read(fd, 1 << 21)
    _, opcode, unique = struct.unpack_from("<IIQ", request)
    if opcode != FUSE_INIT:
        continue  # read and never answered
    _, minor = struct.unpack_from("<II", request, 40)
    # fuse_init_out: major, minor, max_readahead, flags, max_background,
    # congestion_threshold, max_write, time_gran, max_pages,
    # map_alignment, flags2, unused[7]
    init = struct.pack("<IIIIHHIIHHI28x", 7, min(minor, 31), 0, 0, 16, 12,
                       65536, 1, 0, 0, 0)
    os.write(fd, struct.pack("<IiQ", 16 + len(init), 0, unique) + init)
