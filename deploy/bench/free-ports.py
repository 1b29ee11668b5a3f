#!/usr/bin/env python3
"""Prints a base port P such that P .. P+SPAN-1 are all free on 127.0.0.1 right now.

Usage: free-ports.py SPAN. Bench scripts start clusters on such a range (`larder dev
--base-port P`) instead of fixed ports, so two runs or a leftover process cannot clash.
"""

import random
import socket
import sys


def main():
    span = int(sys.argv[1])
    for _ in range(200):
        base = random.randrange(20000, 60000 - span)
        socks = []
        try:
            for port in range(base, base + span):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        print(base)
        return
    raise SystemExit("no free port range found")


if __name__ == "__main__":
    main()
