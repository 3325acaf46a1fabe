#!/usr/bin/env python3
"""Prints a TCP port on 127.0.0.1 that nothing uses now, chosen at random
below the kernel's ephemeral range (32768 and up): a port the kernel hands
out with bind(0) can be handed again to a test running in parallel, or be
a connection's source port, before the test's server binds it.

Each port handed out is also noted in /tmp/scepd-test-ports/ and not handed
out again for ten minutes: free now is not free once the server starts, and
tests run two at a time (CI's test_deploy once found its port taken by
another test's service)."""
import os
import random
import socket
import sys
import time

NOTES = "/tmp/scepd-test-ports"
HELD_S = 600

os.makedirs(NOTES, exist_ok=True)
for _ in range(200):
    port = random.randrange(20000, 32000)
    note = os.path.join(NOTES, str(port))
    try:
        if time.time() - os.stat(note).st_mtime < HELD_S:
            continue
    except FileNotFoundError:
        pass
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    try:
        fd = os.open(note, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        # An old note, or another test's this instant: take it only if old.
        try:
            if time.time() - os.stat(note).st_mtime < HELD_S:
                continue
            os.utime(note)
        except FileNotFoundError:
            continue
    else:
        os.close(fd)
    print(port)
    sys.exit(0)
sys.exit("no free port found")
