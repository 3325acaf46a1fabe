#!/usr/bin/env python3
"""Prints a TCP port on 127.0.0.1 that nothing uses now, chosen at random
below the kernel's ephemeral range (32768 and up): a port the kernel hands
out with bind(0) can be handed again to a test running in parallel, or be
a connection's source port, before the test's server binds it."""
import random
import socket
import sys

for _ in range(100):
    port = random.randrange(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    sys.exit(0)
sys.exit("no free port found")
