#!/usr/bin/env python3
"""Phones of the presence load test (load-tests/presence/phase.sh): registration, and
calls between the watched users with the time of every step that changes a hook state.

  caller.py register --server 127.0.0.1:5200 --tenants 10 --users 1000 --phone-port 5290
  caller.py calls    --server 127.0.0.1:5200 --tenants 10 --users 1000 --phone-port 5290 \
                     --uac-port 5270 --rate 50 --seconds 30 --hold-ms 2000 --ring-ms 1000 \
                     --start-row 0 --timeline out.csv [--max-seconds 600]

Users: tenants t<k>.pr.test (k < tenants), extensions 1000.. (users per tenant),
password loadpw<ext>, one device each; global index g = k * users + i. Every user
registers with the Contact sip:u<g>@127.0.0.1:<phone-port>, so each INVITE tsps sends
to a callee names the callee in its Request-URI.

Calls: row r is tenant r % tenants, caller i = (r // tenants) % (users / 2), callee
i + users / 2 (the pairing of the ws phase); a user is in one call at a time (a pair
comes back every tenants * users / 2 rows). The caller sends INVITE (credentials from
the cached nonce; one 407 round when there is none or it went stale); the callee's
phone answers 180 at once and 200 after --ring-ms; the caller ACKs, holds --hold-ms and
sends BYE; tsps BYEs the callee.

Timeline (one CSV row per call, wall-clock ns, kernel receive times for rx):
  row,tenant,caller,callee,inv_tx,inv_rx,r180_tx,r180_rx,r200_tx,r200_rx,bye_tx,bye_rx,
  bye_ok_rx,status
inv_tx: the INVITE tsps accepted (with credentials); inv_rx: it reached the callee;
r180/r200: the callee's 180/200 sent and relayed to the caller; bye_tx: the caller's
BYE; bye_rx: tsps's BYE reached the callee. Every step is bounded (Timer B/F 32 s, the
whole run --max-seconds).
"""

import argparse
import asyncio
import json
import sys
import time

import sipua
from sipua import Msg, build, now_ns, response, token


def opts():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["register", "calls"])
    p.add_argument("--server", default="127.0.0.1:5200")
    p.add_argument("--tenants", type=int, default=10)
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--phone-port", type=int, default=5290)
    p.add_argument("--uac-port", type=int, default=5270)
    p.add_argument("--rate", type=float, default=500)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--hold-ms", type=int, default=2000)
    p.add_argument("--ring-ms", type=int, default=1000)
    p.add_argument("--start-row", type=int, default=0)
    p.add_argument("--timeline", default="")
    p.add_argument("--expires", type=int, default=3600)
    p.add_argument("--max-pending", type=int, default=400)
    p.add_argument("--max-seconds", type=float, default=600)
    return p.parse_args()


O = opts()
HOST, PORT = O.server.split(":")
SERVER = (HOST, int(PORT))
NONCES = sipua.Nonces()


def domain(k):
    return f"t{k}.pr.test"


def user_of(g):
    """(tenant, extension) of global user index g."""
    return g // O.users, 1000 + g % O.users


# ---------------- registration ----------------


async def register_all():
    ep_box = {}
    table = {}

    def on_dgram(data, addr, rx):
        m = Msg(data)
        tx = table.get(m.branch())
        if tx:
            tx.response(m, rx)

    ep = sipua.Endpoint(O.uac_port, on_dgram)
    ep_box["ep"] = ep
    total = O.tenants * O.users
    ok = failed = 0
    pending = 0
    done_ev = asyncio.Event()
    t0 = time.monotonic()

    def finish(success):
        nonlocal ok, failed, pending
        pending -= 1
        if success:
            ok += 1
        else:
            failed += 1
        if ok + failed == total:
            done_ev.set()

    def send_register(g, cseq, call_id, ftag, challenged):
        k, ext = user_of(g)
        d = domain(k)
        branch = "z9hG4bK" + token()
        hs = [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:{ep.port};branch={branch};rport"),
            ("From", f"<sip:{ext}@{d}>;tag={ftag}"),
            ("To", f"<sip:{ext}@{d}>"),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} REGISTER"),
            ("Contact", f"<sip:u{g}@127.0.0.1:{O.phone_port}>"),
            ("Expires", str(O.expires)),
            ("Max-Forwards", "70"),
            ("User-Agent", "tsps-presence-load"),
        ]
        nonce = NONCES.get(d)
        if nonce:
            hs.append(("Authorization", sipua.credentials(str(ext), f"loadpw{ext}", d, nonce, "REGISTER", f"sip:{d}")))

        def on_resp(m, rx):
            if m.code < 200:
                return
            if m.code in (401, 407) and challenged < 2:
                NONCES.learn(m)
                send_register(g, cseq + 1, call_id, ftag, challenged + 1)
            else:
                finish(m.code == 200)

        sipua.ClientTx(ep, table, branch, build(f"REGISTER sip:{d} SIP/2.0", hs), SERVER, False,
                       on_resp, lambda: finish(False))

    cpu0 = sipua.cpu_seconds()
    for g in range(total):
        while pending >= O.max_pending or g >= (time.monotonic() - t0) * O.rate + 1:
            await asyncio.sleep(0.005)
        pending += 1
        send_register(g, 1, f"r{g}.{token(4)}@load", token(4), 0)
    try:
        await asyncio.wait_for(done_ev.wait(), timeout=60)
    except asyncio.TimeoutError:
        pass
    secs = time.monotonic() - t0
    print(json.dumps({"event": "registered", "ok": ok, "failed": failed, "of": total,
                      "seconds": round(secs, 2), "client_cpu_s": round(sipua.cpu_seconds() - cpu0, 2)}),
          flush=True)
    ep.close()
    return 0 if ok == total else 1


# ---------------- calls ----------------


class Call:
    __slots__ = ("row", "tenant", "caller", "callee", "call_id", "ftag", "cseq", "t",
                 "status", "ack", "remote_target", "to")

    def __init__(self, row, tenant, caller, callee):
        self.row, self.tenant, self.caller, self.callee = row, tenant, caller, callee
        self.call_id = f"c{row}.{token(4)}@load"
        self.ftag = token(4)
        self.cseq = 1
        self.t = dict.fromkeys(("inv_tx", "inv_rx", "r180_tx", "r180_rx", "r200_tx", "r200_rx",
                                "bye_tx", "bye_rx", "bye_ok_rx"), 0)
        self.status = "pending"
        self.ack = None
        self.remote_target = None
        self.to = None


class Callee:
    """The callee phone's side of one INVITE from tsps."""

    __slots__ = ("invite", "addr", "tag", "last", "handle", "interval", "acked", "call", "answer_at")

    def __init__(self, invite, addr, call):
        self.invite, self.addr, self.call = invite, addr, call
        self.tag = token(4)
        self.last = None
        self.handle = None
        self.interval = sipua.T1
        self.acked = False


async def run_calls():
    loop = asyncio.get_running_loop()
    table = {}
    calls = []
    by_callee = {}        # callee g -> the call now ringing/answered there
    callee_tx = {}        # INVITE Call-ID (tsps's) -> Callee
    done = 0
    total = int(round(O.rate * O.seconds))
    all_done = asyncio.Event()

    def end(c, status):
        nonlocal done
        if c.status in ("pending", "up"):
            c.status = status
            done += 1
            if by_callee.get(c.callee) is c:
                del by_callee[c.callee]
            if done == total:
                all_done.set()

    # ----- callee phones -----
    def phone(data, addr, rx):
        m = Msg(data)
        if m.method is None:
            return  # responses to our 200 retransmissions do not exist; ignore strays
        cid = m.h("call-id")
        if m.method == "INVITE":
            st = callee_tx.get(cid)
            if st:  # retransmission: repeat the last response
                if st.last:
                    phones.send(st.last, addr)
                return
            g = int(m.uri.split("@")[0].split(":")[1][1:]) if m.uri.startswith("sip:u") else -1
            c = by_callee.get(g)
            st = Callee(m, addr, c)
            callee_tx[cid] = st
            if c is None:
                st.last = response(m, 480, "Unknown Call", st.tag)
                phones.send(st.last, addr)
                return
            c.t["inv_rx"] = rx
            st.last = response(m, 180, "Ringing", st.tag, [("Contact", f"<sip:u{g}@127.0.0.1:{O.phone_port}>")])
            c.t["r180_tx"] = phones.send(st.last, addr)
            loop.call_later(O.ring_ms / 1000, answer, st, g)
        elif m.method == "ACK":
            st = callee_tx.get(cid)
            if st:
                st.acked = True
                if st.handle:
                    st.handle.cancel()
        elif m.method == "BYE":
            st = callee_tx.pop(cid, None)
            if st and st.call:
                st.call.t["bye_rx"] = rx
                if st.handle:
                    st.handle.cancel()
            phones.send(response(m, 200, "OK"), addr)
        elif m.method == "CANCEL":
            phones.send(response(m, 200, "OK"), addr)
            st = callee_tx.get(cid)
            if st and st.last and b" 180 " in st.last[:20]:
                st.last = response(st.invite, 487, "Request Terminated", st.tag)
                phones.send(st.last, st.addr)
        else:
            phones.send(response(m, 200, "OK"), addr)

    def answer(st, g):
        if st.last is None or b" 180 " not in st.last[:20]:
            return
        st.last = response(st.invite, 200, "OK", st.tag,
                           [("Contact", f"<sip:u{g}@127.0.0.1:{O.phone_port}>"),
                            ("Content-Type", "application/sdp")], sipua.sdp(40000))
        st.call.t["r200_tx"] = phones.send(st.last, st.addr)
        st.handle = loop.call_later(st.interval, resend_200, st)

    def resend_200(st):
        if st.acked or st.interval > 16:
            return
        phones.send(st.last, st.addr)
        st.interval = min(st.interval * 2, sipua.T2)
        st.handle = loop.call_later(st.interval, resend_200, st)

    # ----- caller (UAC) -----
    def uac_dgram(data, addr, rx):
        m = Msg(data)
        if m.method is not None:
            uac.send(response(m, 200, "OK"), addr)
            return
        tx = table.get(m.branch())
        if tx:
            tx.response(m, rx)
            return
        # a 200 to our INVITE retransmitted after we ACKed: ACK again
        if m.code == 200 and m.cseq()[1] == "INVITE":
            c = acks.get(m.h("call-id"))
            if c is not None and c.ack:
                uac.send(c.ack, SERVER)

    acks = {}

    def send_invite(c, challenged):
        k, ce = c.tenant, c.callee
        d = domain(k)
        _, ext = user_of(c.caller)
        _, cext = user_of(ce)
        branch = "z9hG4bK" + token()
        uri = f"sip:{cext}@{d}"
        body = sipua.sdp(30000)
        hs = [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:{uac.port};branch={branch};rport"),
            ("From", f"<sip:{ext}@{d}>;tag={c.ftag}"),
            ("To", f"<{uri}>"),
            ("Call-ID", c.call_id),
            ("CSeq", f"{c.cseq} INVITE"),
            ("Contact", f"<sip:c{c.caller}@127.0.0.1:{uac.port}>"),
            ("Max-Forwards", "70"),
            ("User-Agent", "tsps-presence-load"),
            ("Content-Type", "application/sdp"),
        ]
        nonce = NONCES.get(d)
        if nonce:
            hs.append(("Proxy-Authorization", sipua.credentials(str(ext), f"loadpw{ext}", d, nonce, "INVITE", uri)))
        data = build(f"INVITE {uri} SIP/2.0", hs, body)

        def on_resp(m, rx):
            if m.code == 180 and not c.t["r180_rx"]:
                c.t["r180_rx"] = rx
            if m.code < 200:
                return
            if m.code in (401, 407) and challenged < 2:
                # ACK of a non-2xx final: same branch (RFC 3261 §17.1.1.3)
                ack = build(f"ACK {uri} SIP/2.0", [
                    ("Via", f"SIP/2.0/UDP 127.0.0.1:{uac.port};branch={branch};rport"),
                    ("From", f"<sip:{ext}@{d}>;tag={c.ftag}"), ("To", m.h("to")),
                    ("Call-ID", c.call_id), ("CSeq", f"{c.cseq} ACK"), ("Max-Forwards", "70")])
                uac.send(ack, SERVER)
                NONCES.learn(m)
                c.cseq += 1
                send_invite(c, challenged + 1)
                return
            if m.code >= 300:
                end(c, f"failed-{m.code}")
                return
            c.t["r200_rx"] = rx
            c.to = m.h("to")
            c.remote_target = sipua.uri_of(m.h("contact")) or uri
            c.ack = build(f"ACK {c.remote_target} SIP/2.0", [
                ("Via", f"SIP/2.0/UDP 127.0.0.1:{uac.port};branch=z9hG4bK{token()};rport"),
                ("From", f"<sip:{ext}@{d}>;tag={c.ftag}"), ("To", c.to),
                ("Call-ID", c.call_id), ("CSeq", f"{c.cseq} ACK"), ("Max-Forwards", "70")])
            acks[c.call_id] = c
            uac.send(c.ack, SERVER)
            c.status = "up"
            loop.call_later(O.hold_ms / 1000, send_bye, c)

        tx = sipua.ClientTx(uac, table, branch, data, SERVER, True, on_resp, lambda: end(c, "timeout-invite"))
        c.t["inv_tx"] = tx.sent_ns

    def send_bye(c):
        k = c.tenant
        d = domain(k)
        _, ext = user_of(c.caller)
        branch = "z9hG4bK" + token()
        c.cseq += 1
        data = build(f"BYE {c.remote_target} SIP/2.0", [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:{uac.port};branch={branch};rport"),
            ("From", f"<sip:{ext}@{d}>;tag={c.ftag}"), ("To", c.to),
            ("Call-ID", c.call_id), ("CSeq", f"{c.cseq} BYE"), ("Max-Forwards", "70")])

        def on_resp(m, rx):
            if m.code >= 200:
                c.t["bye_ok_rx"] = rx
                end(c, "ok" if m.code == 200 else f"bye-{m.code}")

        tx = sipua.ClientTx(uac, table, branch, data, SERVER, False, on_resp, lambda: end(c, "timeout-bye"))
        c.t["bye_tx"] = tx.sent_ns

    phones = sipua.Endpoint(O.phone_port, phone)
    uac = sipua.Endpoint(O.uac_port, uac_dgram)
    half = O.users // 2
    cpu0 = sipua.cpu_seconds()
    t0 = time.monotonic()
    w0 = now_ns()
    # pacing: call n starts at t0 + n / rate (10-ms ticks)
    for n in range(total):
        while n >= (time.monotonic() - t0) * O.rate:
            await asyncio.sleep(0.002)
        r = O.start_row + n
        k = r % O.tenants
        i = (r // O.tenants) % half
        c = Call(r, k, k * O.users + i, k * O.users + i + half)
        if c.callee in by_callee:
            end_now = c  # the pair is still busy (rate too high for the pair cycle)
            calls.append(end_now)
            end(end_now, "skipped-busy")
            continue
        by_callee[c.callee] = c
        calls.append(c)
        send_invite(c, 0)
    placing_s = time.monotonic() - t0
    try:
        await asyncio.wait_for(all_done.wait(), timeout=O.hold_ms / 1000 + O.ring_ms / 1000 + 40)
    except asyncio.TimeoutError:
        for c in calls:
            end(c, "unfinished")
    # tsps's BYE to the callee follows the caller's BYE: give it a moment
    await asyncio.sleep(0.5)
    cpu = sipua.cpu_seconds() - cpu0
    if O.timeline:
        cols = ["inv_tx", "inv_rx", "r180_tx", "r180_rx", "r200_tx", "r200_rx", "bye_tx", "bye_rx", "bye_ok_rx"]
        with open(O.timeline, "w") as f:
            f.write("row,tenant,caller,callee," + ",".join(cols) + ",status\n")
            for c in calls:
                f.write(f"{c.row},{c.tenant},{c.caller},{c.callee}," + ",".join(str(c.t[x]) for x in cols) + f",{c.status}\n")
    ok = [c for c in calls if c.status == "ok"]

    def ms(a, b):
        return [(c.t[b] - c.t[a]) / 1e6 for c in ok if c.t[a] and c.t[b]]

    def stat(v):
        p = sipua.percentiles(v)
        return {"n": len(v), "p50": r3(p[0]), "p90": r3(p[1]), "p99": r3(p[2]), "p999": r3(p[3]), "max": r3(p[4])}

    statuses = {}
    for c in calls:
        statuses[c.status] = statuses.get(c.status, 0) + 1
    print(json.dumps({
        "event": "calls", "calls": total, "ok": len(ok), "statuses": statuses,
        "placing_s": round(placing_s, 2), "wall_start_ns": w0, "wall_end_ns": now_ns(),
        "next_row": O.start_row + total,
        # tsps relaying a SIP message: the same path as 'event in -> NOTIFY out'
        "relay_invite_ms": stat(ms("inv_tx", "inv_rx")),
        "relay_180_ms": stat(ms("r180_tx", "r180_rx")),
        "relay_200_ms": stat(ms("r200_tx", "r200_rx")),
        "relay_bye_ms": stat(ms("bye_tx", "bye_rx")),
        "invite_to_180_ms": stat(ms("inv_tx", "r180_rx")),
        "client_cpu_s": round(cpu, 2),
        "udp": {"phones_rx": phones.rx, "phones_tx": phones.tx, "uac_rx": uac.rx, "uac_tx": uac.tx,
                "send_errors": phones.send_errors + uac.send_errors},
    }), flush=True)
    phones.close()
    uac.close()
    return 0


def r3(x):
    return None if x is None else round(x, 3)


async def main():
    if O.mode == "register":
        return await register_all()
    return await run_calls()


if __name__ == "__main__":
    try:
        rc = asyncio.run(asyncio.wait_for(main(), timeout=O.max_seconds))
    except asyncio.TimeoutError:
        print(json.dumps({"event": "max-seconds reached"}), flush=True)
        rc = 2
    sys.exit(rc)
