#!/usr/bin/env python3
"""WAL frames by B-tree: which tables and indexes a SQLite write load writes, per event.

Usage: scripts/wal-frames.py DB EVENTS WAL_COPY...

DB is the database (a `file:...?mode=ro` URI opens it read-only; stop the server with
SIGSTOP while this reads, so no checkpoint moves pages under it). Each WAL_COPY is a copy of
`DB-wal` taken during the load (e.g. every 0.15 s: `cp vigil.db-wal copies/$n`); frames are
deduplicated by (salt, frame index), so copies of one WAL generation count once and a
restarted WAL's generations add up. EVENTS is how many events the load stored. Pages are
mapped to B-trees with SQLite's `dbstat` table, which walks the whole file (minutes at 10M
events). Used for BENCHMARKS.md ("What each B-tree writes to the WAL per event").
"""
import collections
import sqlite3
import struct
import sys


def main() -> None:
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    db, events, copies = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    conn = sqlite3.connect(db, uri=db.startswith("file:"))
    owner = dict((pageno, name) for name, pageno in conn.execute("SELECT name, pageno FROM dbstat"))
    frames = {}
    page_size = 4096
    for path in copies:
        with open(path, "rb") as f:
            data = f.read()
        if len(data) < 32:
            continue
        page_size, _ckpt, salt1, salt2 = struct.unpack(">IIII", data[8:24])
        size, off, index = 24 + page_size, 32, 0
        while off + size <= len(data):
            page, commit, s1, s2 = struct.unpack(">IIII", data[off:off + 16])
            if (s1, s2) != (salt1, salt2):
                break  # the rest is an older generation
            frames[(s1, s2, index)] = (page, commit)
            index += 1
            off += size
    if not frames:
        sys.exit("no WAL frames in the copies")
    per = collections.Counter(owner.get(page, "?") for page, _ in frames.values())
    commits = sum(1 for _, commit in frames.values() if commit)
    bytes_per_frame = 24 + page_size
    total = len(frames)
    print(f"frames={total} commits={commits} events={events} "
          f"bytes_per_event={total * bytes_per_frame / events:.0f} "
          f"generations={len({k[:2] for k in frames})}")
    for name, n in per.most_common(15):
        print(f"{name:32s} bytes_per_event={n * bytes_per_frame / events:7.0f} share={100 * n / total:5.1f}%")


if __name__ == "__main__":
    main()
