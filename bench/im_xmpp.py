#!/usr/bin/python3
"""im_xmpp.py - the instant-message workload of bench/im_load.c on XMPP
(Prosody), with slixmpp (Debian python3-slixmpp), for bench/im.sh.

Accounts a001..aNNN@a.test and b001..bNNN@b.test (password from
--password), c2s over STARTTLS to 127.0.0.1:--port, the server's
certificate checked against --ca when given (else not checked: a
self-signed test certificate).  Every client sends its presence, so that
a message to a bare JID goes to its online resource.

  --mode latency     a001 -> b001, one message at a time: N messages; the
                     latency of each is from just before it is sent to
                     its arrival at b001.
  --mode throughput  each pair chats: a<i> sends to b<i>, b<i> answers
                     once it has the message, and so on (one message per
                     pair in flight), all pairs at once, until N were sent
                     in all.

Prints one line of key=value figures like im_load: mode pairs size sent
received elapsed_s rate p50_ms p90_ms p99_ms max_ms.
"""
import argparse
import asyncio
import logging
import ssl
import sys
import time

import slixmpp


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, bench):
        super().__init__(jid, password)
        self.bench = bench
        self.ready = asyncio.Event()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("failed_auth", self.on_failed)

    async def on_start(self, _event):
        self.send_presence()
        self.ready.set()

    def on_failed(self, _event):
        print("im_xmpp: authentication failed for %s" % self.boundjid.bare,
              file=sys.stderr)
        self.bench.failed = True
        self.ready.set()

    def on_message(self, msg):
        body = msg["body"]
        if not body.startswith("#"):
            return
        try:
            k = int(body[1:].split(" ", 1)[0])
        except ValueError:
            return
        b = self.bench
        if 0 <= k < b.n and b.arrived[k] == 0:
            b.arrived[k] = time.monotonic()
            b.received += 1
            ev = b.waiting.pop(k, None)
            if ev is not None:
                ev.set()


class Bench:
    def __init__(self, n, size):
        self.n = n
        self.size = size
        self.sent = [0.0] * n
        self.arrived = [0.0] * n
        self.received = 0
        self.next = 0
        self.waiting = {}
        self.failed = False

    def body(self, k):
        head = "#%d " % k
        return head + "x" * max(0, self.size - len(head))


async def chat(bench, turns, deadline):
    """Send from each (client, peer) of turns in turn, each message once
    the previous one arrived."""
    i = 0
    while bench.next < bench.n and time.monotonic() < deadline:
        c, peer = turns[i % len(turns)]
        i += 1
        k = bench.next
        bench.next += 1
        ev = asyncio.Event()
        bench.waiting[k] = ev
        bench.sent[k] = time.monotonic()
        c.send_message(mto=peer, mbody=bench.body(k), mtype="chat")
        try:
            await asyncio.wait_for(ev.wait(), 30)
        except asyncio.TimeoutError:
            bench.waiting.pop(k, None)


async def main(a):
    bench = Bench(a.n, a.size)
    pairs = 1 if a.mode == "latency" else a.pairs
    clients = []
    for i in range(1, pairs + 1):
        for jid in ("a%03d@a.test" % i, "b%03d@b.test" % i):
            c = Client(jid, a.password, bench)
            if a.ca:
                c.ssl_context.load_verify_locations(a.ca)
            else:
                c.ssl_context.check_hostname = False
                c.ssl_context.verify_mode = ssl.CERT_NONE
            c.connect(address=("127.0.0.1", a.port))
            clients.append(c)
    for c in clients:
        await asyncio.wait_for(c.ready.wait(), 60)
    if bench.failed:
        return 2
    await asyncio.sleep(0.5)
    deadline = time.monotonic() + a.deadline
    t0 = time.monotonic()
    if a.mode == "latency":
        await chat(bench, [(clients[0], clients[1].boundjid.bare)], deadline)
    else:
        tasks = []
        for i in range(pairs):
            ca, cb = clients[2 * i], clients[2 * i + 1]
            tasks.append(chat(bench, [(ca, cb.boundjid.bare),
                                      (cb, ca.boundjid.bare)], deadline))
        await asyncio.gather(*tasks)
    lat = sorted((bench.arrived[k] - bench.sent[k]) * 1000
                 for k in range(bench.n) if bench.arrived[k] and bench.sent[k])
    last = max((t for t in bench.arrived if t), default=t0)
    el = last - t0

    def pct(p):
        return lat[int((len(lat) - 1) * p)] if lat else 0

    print("mode=%s pairs=%d size=%d sent=%d received=%d elapsed_s=%.2f "
          "rate=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f" %
          (a.mode, pairs, a.size, min(bench.next, bench.n), bench.received,
           el, len(lat) / el if el > 0 else 0, pct(0.5), pct(0.9),
           pct(0.99), lat[-1] if lat else 0))
    for c in clients:
        c.disconnect()
    await asyncio.sleep(0.5)
    return 0 if bench.received == bench.n else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--ca")
    p.add_argument("--mode", choices=("latency", "throughput"),
                   default="latency")
    p.add_argument("--pairs", type=int, default=100)
    p.add_argument("-n", type=int, default=10000)
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--deadline", type=int, default=600)
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sys.exit(asyncio.get_event_loop().run_until_complete(main(args)))
