#!/usr/bin/env python3
"""The memory of a process group, counted four ways (run as root).

    tests/bench/resident.py PGID

Prints one line of KiB figures for every process of the group together:
  vmrss=     the sum of their VmRSS (a library's pages once per process)
  anon=      the sum of their RssAnon (heap, stacks: private memory)
  pss=       the sum of their Pss (shared pages divided among sharers)
  distinct=  the resident pages mapped by any of them, each counted once
             (their page frame numbers from /proc/PID/pagemap): the memory
             the group holds together
  distinct_no_ledger=  the same without the CA's LMDB ledger map (its
             touched pages are the page cache of data.mdb, growing with
             the certificates it holds)
  libs=      the part of vmrss that is shared libraries' mappings (*.so
             and *.so.N, summed Rss of /proc/PID/smaps): their file pages
             counted once per process that maps them, and each process's
             own copies of the pages its loader relocated
"""
import os
import re
import struct
import sys

PAGE = os.sysconf("SC_PAGE_SIZE")


def group_pids(pgid):
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # pgrp, after state and ppid
                pids.append(int(name))
        except OSError:
            continue
    return pids


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def library_kib(pid):
    kib, lib = 0, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split(None, 1)[0]
            if not first.endswith(":"):  # a mapping's header line
                parts = line.split(None, 5)
                lib = len(parts) > 5 and re.search(r"\.so(\.|$)", os.path.basename(parts[5].strip())) is not None
            elif lib and first == "Rss:":
                kib += int(line.split()[1])
    return kib


def frames(pid):
    """(pfn, is_ledger) of every present page of pid."""
    out = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pm:
        for line in maps:
            parts = line.split()
            start, end = (int(x, 16) for x in parts[0].split("-"))
            path = parts[5] if len(parts) > 5 else ""
            if path == "[vsyscall]":
                continue
            ledger = path.endswith("/data.mdb")
            n = (end - start) // PAGE
            pm.seek(start // PAGE * 8)
            data = pm.read(n * 8)
            for (entry,) in struct.iter_unpack("<Q", data):
                if entry >> 63 & 1:  # present
                    out.append((entry & ((1 << 55) - 1), ledger))
    return out


def main():
    pgid = int(sys.argv[1])
    vmrss = anon = pss = swap = libs = procs = 0
    everything, no_ledger = set(), set()
    for pid in group_pids(pgid):
        # A process left out would lower every figure: none is.
        try:
            vmrss += status_kib(pid, "VmRSS")
            anon += status_kib(pid, "RssAnon")
            swap += status_kib(pid, "VmSwap")
            pss += pss_kib(pid)
            libs += library_kib(pid)
            for pfn, ledger in frames(pid):
                everything.add(pfn)
                if not ledger:
                    no_ledger.add(pfn)
        except OSError as e:
            sys.exit(f"resident.py: process {pid}: {e}")
        procs += 1
    if procs == 0:
        sys.exit(f"resident.py: no process in group {pgid}")
    # Hidden page frame numbers read as 0 (not root): one 0 among others
    # would merge pages, all of them into one.
    if 0 in everything:
        sys.exit("resident.py: page frame numbers are hidden (not root?)")
    kib = PAGE // 1024
    print(f"vmrss={vmrss} anon={anon} pss={pss} distinct={len(everything) * kib} "
          f"distinct_no_ledger={len(no_ledger) * kib} libs={libs} procs={procs} swap={swap}")


main()
