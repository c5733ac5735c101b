#!/usr/bin/env python3
"""Wait until a count reaches WANT, cheaply (one process, no fork per poll).

Usage: waitcount.py WANT SECONDS WATCH sqlite DB
       waitcount.py WANT SECONDS WATCH dir DIR
The count is `SELECT count(*) FROM messages` in DB (read-only, WAL) or the
number of files in DIR, polled every 20 ms.  WATCH is a PID (0: none) of a
process whose end is noted, or file:PATH, a file whose appearance is
noted.  Prints one line:
  ok|timeout WAIT_AT WAIT_N WATCH_AT WATCH_N
(times are CLOCK_REALTIME seconds; WATCH_AT and WATCH_N are - when the
watched process did not end, or the file did not appear, while waiting).
"""
import os
import sqlite3
import sys
import time


def main():
    want, secs = int(sys.argv[1]), float(sys.argv[2])
    watch_file = None
    if sys.argv[3].startswith("file:"):
        watch_file, watch = sys.argv[3][5:], 0
    else:
        watch = int(sys.argv[3])
    mode, target = sys.argv[4], sys.argv[5]
    db = None
    if mode == "sqlite":
        db = sqlite3.connect("file:%s?mode=ro" % target, uri=True, timeout=5)

    def count():
        try:
            if db is not None:
                return db.execute("SELECT count(*) FROM messages").fetchone()[0]
            return len(os.listdir(target))
        except (OSError, sqlite3.Error):
            return 0

    end = time.monotonic() + secs
    watch_at = watch_n = "-"
    while True:
        n = count()
        if watch > 0 and watch_at == "-":
            try:
                os.kill(watch, 0)
            except OSError:
                watch_at, watch_n = "%.6f" % time.time(), str(n)
        if watch_file is not None and watch_at == "-" and \
                os.path.exists(watch_file):
            watch_at, watch_n = "%.6f" % time.time(), str(n)
        if n >= want:
            print("ok %.6f %d %s %s" % (time.time(), n, watch_at, watch_n))
            return 0
        if time.monotonic() >= end:
            print("timeout - %d %s %s" % (n, watch_at, watch_n))
            return 1
        time.sleep(0.02)


if __name__ == "__main__":
    sys.exit(main())
