#!/usr/bin/env python3
"""Watchers of the presence load test (load-tests/presence/phase.sh): holds up to
tenants x users x 5 SIP subscriptions, answers every NOTIFY 200 and logs each one
with its kernel receive time.

  subscriber.py --server 127.0.0.1:5200 --tenants 10 --users 1000 --port 5280 \
                --log-dir DIR [--rate 1000] [--max-seconds 3600]

Subscriptions: user i of each tenant subscribes, from its own device, to users
i + 1 .. i + m (mod users) of its tenant, m = the level (at most 5): 5 watchers per
watched user at m = 5. Offsets 1, 3, 5 use the dialog package (RFC 4235), 2 and 4 the
presence package (PIDF). Subscription index idx = (d - 1) * tenants * users + g
(g = the watcher's global index, d the offset); its Call-ID is s<idx>.<random>@load.

Control on stdin, one command per line (answers are JSON lines on stdout):
  level M       subscribe until every user holds M subscriptions (Expires 3600; ended
                ones are subscribed again in a new dialog)
  mark LABEL    close the NOTIFY log of the window (notify-LABEL.log), summary of the
                window, including how many subscriptions' last NOTIFY is not idle
  unsubscribe   Expires: 0 for every subscription, wait for the final NOTIFYs
  quit          (stdin closing counts as quit)

NOTIFY log, one line per NOTIFY received (retransmissions included, flagged):
  rx_ns idx cseq dup state payload
state: a = active, t = terminated; payload: dialog: v<version>|<id>:<state>:<i|r>:<remote>...
(state tr/ea/co/te), presence: the PIDF note with spaces as '_'.
"""

import argparse
import asyncio
import json
import os
import re
import sys
import time

import sipua
from sipua import Msg, build, now_ns, response, token

RE_VERSION = re.compile(rb'<dialog-info[^>]*version="(\d+)"')
RE_DIALOG = re.compile(
    rb'<dialog id="([^"]+)" direction="(\w)\w*">\s*<state>(\w\w)\w*</state>.*?<remote><identity[^>]*>sip:([^@<]+)@',
    re.S,
)
RE_NOTE = re.compile(rb"<note>([^<]*)</note>")


def opts():
    p = argparse.ArgumentParser()
    p.add_argument("--server", default="127.0.0.1:5200")
    p.add_argument("--tenants", type=int, default=10)
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--port", type=int, default=5280)
    p.add_argument("--rate", type=float, default=1000)
    p.add_argument("--max-pending", type=int, default=500)
    p.add_argument("--expires", type=int, default=3600)
    p.add_argument("--log-dir", default=".")
    p.add_argument("--max-seconds", type=float, default=3600)
    return p.parse_args()


O = opts()
HOST, PORT = O.server.split(":")
SERVER = (HOST, int(PORT))
NONCES = sipua.Nonces()
N = O.tenants * O.users


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Sub:
    __slots__ = ("idx", "g", "watched", "dialog", "call_id", "ftag", "cseq", "to", "target",
                 "state", "last_cseq", "last", "idle", "notifies")

    def __init__(self, idx):
        self.idx = idx
        d = idx // N + 1
        self.g = idx % N
        k, i = divmod(self.g, O.users)
        self.watched = k * O.users + (i + d) % O.users
        self.dialog = d % 2 == 1
        self.call_id = f"s{idx}.{token(4)}@load"
        self.ftag = token(4)
        self.cseq = 0
        self.to = None
        self.target = None
        self.state = "new"   # new, pending, active, failed, ending, ended
        self.last_cseq = 0
        self.last = ""
        self.idle = False
        self.notifies = 0


class Window:
    opened = 0

    def __init__(self):
        Window.opened += 1
        self.path = os.path.join(O.log_dir, f"notify-open-{Window.opened}.part")
        self.f = open(self.path, "w", buffering=1 << 20)
        self.started = time.monotonic()
        self.cpu = sipua.cpu_seconds()
        self.notifies = 0
        self.dups = 0
        self.gaps = 0
        self.missing = 0
        self.terminated = 0
        self.unknown = 0
        self.bad_body = 0


subs = {}
table = {}
win = None
loop = None


def on_dgram(data, addr, rx):
    m = Msg(data)
    if m.method is None:
        tx = table.get(m.branch())
        if tx:
            tx.response(m, rx)
        return
    if m.method != "NOTIFY":
        ep.send(response(m, 200, "OK"), addr)
        return
    cid = m.h("call-id")
    try:
        idx = int(cid.split(".", 1)[0][1:])
    except ValueError:
        idx = -1
    s = subs.get(idx)
    if s is None or s.call_id != cid:
        win.unknown += 1
        ep.send(response(m, 481, "Subscription Does Not Exist"), addr)
        return
    ep.send(response(m, 200, "OK"), addr)
    cseq = m.cseq()[0]
    dup = 0
    if cseq <= s.last_cseq:
        dup = 1
        win.dups += 1
    else:
        if s.last_cseq and cseq > s.last_cseq + 1:
            win.gaps += 1
            win.missing += cseq - s.last_cseq - 1
        s.last_cseq = cseq
    sub_state = "t" if m.h("subscription-state").startswith("terminated") else "a"
    if s.dialog:
        v = RE_VERSION.search(m.body)
        parts = [b"v" + (v.group(1) if v else b"?")]
        live = False
        for did, direction, st, remote in RE_DIALOG.findall(m.body):
            parts.append(b"%s:%s:%s:%s" % (did, st, direction, remote))
            if st != b"te":
                live = True
        payload = b"|".join(parts).decode()
        idle = not live
        if v is None:
            win.bad_body += 1
    else:
        n = RE_NOTE.search(m.body)
        payload = n.group(1).decode().replace(" ", "_") if n else "?"
        idle = payload == "Available"
        if n is None:
            win.bad_body += 1
    if not dup:
        win.notifies += 1
        s.notifies += 1
        s.last = payload
        s.idle = idle
        if sub_state == "t":
            win.terminated += 1
            s.state = "ended"
    win.f.write(f"{rx} {idx} {cseq} {dup} {sub_state} {payload}\n")


def domain(k):
    return f"t{k}.pr.test"


def subscribe(s, expires, challenged, done):
    k, i = divmod(s.g, O.users)
    d = domain(k)
    ext = 1000 + i
    wk, wi = divmod(s.watched, O.users)
    wext = 1000 + wi
    s.cseq += 1
    branch = "z9hG4bK" + token()
    uri = s.target or f"sip:{wext}@{d}"
    event = "dialog" if s.dialog else "presence"
    hs = [
        ("Via", f"SIP/2.0/UDP 127.0.0.1:{ep.port};branch={branch};rport"),
        ("From", f"<sip:{ext}@{d}>;tag={s.ftag}"),
        ("To", s.to or f"<sip:{wext}@{d}>"),
        ("Call-ID", s.call_id),
        ("CSeq", f"{s.cseq} SUBSCRIBE"),
        ("Contact", f"<sip:s{s.idx}@127.0.0.1:{ep.port}>"),
        ("Event", event),
        ("Accept", "application/dialog-info+xml" if s.dialog else "application/pidf+xml"),
        ("Expires", str(expires)),
        ("Max-Forwards", "70"),
        ("User-Agent", "tsps-presence-load"),
    ]
    nonce = NONCES.get(d)
    if nonce and s.to is None:
        hs.append(("Proxy-Authorization", sipua.credentials(str(ext), f"loadpw{ext}", d, nonce, "SUBSCRIBE", uri)))

    def on_resp(m, rx):
        if m.code < 200:
            return
        if m.code in (401, 407) and challenged < 2:
            NONCES.learn(m)
            subscribe(s, expires, challenged + 1, done)
            return
        if m.code == 200:
            if s.to is None:
                s.to = m.h("to")
                c = m.h("contact")
                s.target = sipua.uri_of(c) if c else None
            if s.state == "pending":
                s.state = "active"
            done(s, True)
        else:
            if s.state == "pending":
                s.state = "failed"
            done(s, False, m.code)

    sipua.ClientTx(ep, table, branch, build(f"SUBSCRIBE {uri} SIP/2.0", hs), SERVER, False,
                   on_resp, lambda: done(s, False, 408))


async def run_many(items, expires, label):
    """Sends SUBSCRIBEs for `items` at --rate with at most --max-pending in flight."""
    pending = 0
    ok = failed = 0
    codes = {}
    finished = asyncio.Event()
    total = len(items)

    def done(s, success, code=200):
        nonlocal pending, ok, failed
        pending -= 1
        if success:
            ok += 1
        else:
            failed += 1
            codes[code] = codes.get(code, 0) + 1
        if ok + failed == total:
            finished.set()

    t0 = time.monotonic()
    cpu0 = sipua.cpu_seconds()
    for n, s in enumerate(items):
        while pending >= O.max_pending or n >= (time.monotonic() - t0) * O.rate + 1:
            await asyncio.sleep(0.005)
        pending += 1
        subscribe(s, expires, 0, done)
    if total:
        try:
            await asyncio.wait_for(finished.wait(), timeout=60)
        except asyncio.TimeoutError:
            pass
    emit({"event": label, "requests": total, "ok": ok, "failed": failed, "codes": codes,
          "seconds": round(time.monotonic() - t0, 2), "client_cpu_s": round(sipua.cpu_seconds() - cpu0, 2),
          "subscriptions_active": sum(1 for s in subs.values() if s.state == "active")})


async def level(m):
    m = max(0, min(5, m))
    items = []
    for d in range(1, m + 1):
        for g in range(N):
            idx = (d - 1) * N + g
            if idx not in subs or subs[idx].state in ("ended", "failed"):
                s = Sub(idx)  # a new dialog (new Call-ID) after an ended one
                s.state = "pending"
                subs[idx] = s
                items.append(s)
    await run_many(items, O.expires, "level")


async def unsubscribe():
    items = [s for s in subs.values() if s.state == "active"]
    for s in items:
        s.state = "ending"
    await run_many(items, 0, "unsubscribed")
    # the final NOTIFYs (terminated) follow each 200
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and any(s.state == "ending" for s in items):
        await asyncio.sleep(0.2)
    emit({"event": "unsubscribe-final", "ended": sum(1 for s in items if s.state == "ended"),
          "without_final_notify": sum(1 for s in items if s.state == "ending")})


def mark(label):
    global win
    w = win
    win = Window()
    w.f.close()
    os.replace(w.path, os.path.join(O.log_dir, f"notify-{label}.log"))
    active = [s for s in subs.values() if s.state == "active"]
    not_idle = [s for s in active if not s.idle]
    never = [s for s in active if s.notifies == 0]
    emit({
        "event": "mark", "label": label, "seconds": round(time.monotonic() - w.started, 1),
        "notifies": w.notifies, "dups": w.dups, "cseq_gaps": w.gaps, "missing_notifies": w.missing,
        "terminated": w.terminated, "unknown": w.unknown, "bad_body": w.bad_body,
        "subscriptions_active": len(active),
        "subscriptions_ended_by_server": sum(1 for s in subs.values() if s.state == "ended"),
        "last_not_idle": len(not_idle), "never_notified": len(never),
        "not_idle_sample": [[s.idx, s.last] for s in not_idle[:5]],
        "client_cpu_pct": round((sipua.cpu_seconds() - w.cpu) / max(0.001, time.monotonic() - w.started) * 100, 1),
        "udp_rx": ep.rx, "udp_tx": ep.tx, "send_errors": ep.send_errors,
    })


async def control():
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        parts = line.decode().split()
        if not parts:
            continue
        if parts[0] == "level":
            await level(int(parts[1]))
        elif parts[0] == "mark":
            mark(parts[1] if len(parts) > 1 else "window")
        elif parts[0] == "unsubscribe":
            await unsubscribe()
        elif parts[0] == "quit":
            return


async def main():
    global ep, win, loop
    loop = asyncio.get_running_loop()
    os.makedirs(O.log_dir, exist_ok=True)
    win = Window()
    ep = sipua.Endpoint(O.port, on_dgram)
    emit({"event": "ready", "port": ep.port})
    await control()
    mark("end")
    ep.close()


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), timeout=O.max_seconds))
    except asyncio.TimeoutError:
        emit({"event": "max-seconds reached"})
        sys.exit(2)
