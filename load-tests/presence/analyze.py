#!/usr/bin/env python3
"""Delays and losses of one window of the presence load test (load-tests/presence/).

  analyze.py --dir DIR --label LABEL --tenants 10 --users 1000 --level 5 \
             [--targets targets.json] [--drain-end-ns NS]

Reads DIR/timeline-LABEL.csv (caller.py), DIR/notify-LABEL.log (subscriber.py) and,
when present, DIR/portal-LABEL.log (watch.mjs); prints one JSON summary.

The hook changes of a call and their reference times (the moment the watched phone
causes or sees the change, on this machine's wall clock):

  watched user   dialog package (RFC 4235)           presence package (PIDF)     portal hook
  caller         trying     INVITE sent (inv_tx)       on the phone  inv_tx        busy   inv_tx
                 early      callee's 180 sent          available     BYE sent      idle   BYE sent
                 confirmed  callee's 200 sent
                 terminated BYE sent (bye_tx)
  callee         early      INVITE received (inv_rx)   ringing       inv_rx        ringing inv_rx
                 confirmed  its 200 sent (r200_tx)     on the phone  r200_tx       busy    r200_tx
                 terminated caller's BYE sent          available     bye_tx        idle    bye_tx

Each notification is mapped to the furthest stage of the watched user's current call
it shows (full state: a dialog no longer listed, after it was listed or after the BYE,
is the terminated stage). For every stage, the delay is the receive time of the first
notification showing that stage OR A LATER ONE minus the stage's reference time: tsps
keeps one NOTIFY in flight per subscription and folds changes meanwhile into the next
full state, so a short stage (trying lasts the ~1 ms until the callee rings) may never
be shown by itself ('folded'): the watcher then learns a newer state, and the delay
counts until then. A stage is LOST when no notification of the subscription shows it
or a later one before the watched user's next call (or the end of the window's drain):
the watcher's view would stay wrong. The notification window of a call is
[inv_tx, the inv_tx of the user's next call).
"""

import argparse
import gzip
import json
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sipua import percentiles  # noqa: E402

P = argparse.ArgumentParser()
P.add_argument("--dir", required=True)
P.add_argument("--label", required=True)
P.add_argument("--tenants", type=int, default=10)
P.add_argument("--users", type=int, default=1000)
P.add_argument("--level", type=int, default=5)
P.add_argument("--targets", default="")
P.add_argument("--transitions-out", default="")
O = P.parse_args()
N = O.tenants * O.users
# Nothing of a call can reach a watcher before the caller's INVITE left: its window
# starts there and ends where the user's next call starts (the load's pairs come back
# only after tenants * users / 2 calls, far more than a call's length).
EARLY_NS = 0

STAGES = {
    ("dialog", "caller"): [("trying", "inv_tx"), ("early", "r180_tx"), ("confirmed", "r200_tx"), ("terminated", "bye_tx")],
    ("dialog", "callee"): [("early", "inv_rx"), ("confirmed", "r200_tx"), ("terminated", "bye_tx")],
    ("presence", "caller"): [("on-the-phone", "inv_tx"), ("available", "bye_tx")],
    ("presence", "callee"): [("ringing", "inv_rx"), ("on-the-phone", "r200_tx"), ("available", "bye_tx")],
    ("portal", "caller"): [("busy", "inv_tx"), ("idle", "bye_tx")],
    ("portal", "callee"): [("ringing", "inv_rx"), ("busy", "r200_tx"), ("idle", "bye_tx")],
}
COLS = ["inv_tx", "inv_rx", "r180_tx", "r180_rx", "r200_tx", "r200_rx", "bye_tx", "bye_rx", "bye_ok_rx"]


def opener(path):
    """The file or its .gz (phase.sh compresses the raw files after each window)."""
    if os.path.exists(path):
        return open(path)
    if os.path.exists(path + ".gz"):
        return gzip.open(path + ".gz", "rt")
    return None


def ext_of(g):
    return str(1000 + g % O.users)


def load_calls(path):
    calls = []
    with opener(path) as f:
        head = f.readline().strip().split(",")
        for line in f:
            v = line.strip().split(",")
            c = dict(zip(head, v))
            for k in COLS:
                c[k] = int(c[k])
            for k in ("row", "tenant", "caller", "callee"):
                c[k] = int(c[k])
            calls.append(c)
    return calls


def by_user(calls):
    """user g -> [(call, role)] by INVITE time, with each call's notification window."""
    out = defaultdict(list)
    for c in calls:
        if c["status"] != "ok":
            continue
        out[c["caller"]].append((c, "caller"))
        out[c["callee"]].append((c, "callee"))
    for g, lst in out.items():
        lst.sort(key=lambda x: x[0]["inv_tx"])
    return out


def stage_dialog(payload, call, role, seen):
    """Stage of one dialog-info payload for this call (0: not yet)."""
    partner = ext_of(call["callee"] if role == "caller" else call["caller"])
    want_dir = "i" if role == "caller" else "r"
    names = {"tr": 1, "ea": 2, "co": 3, "te": 4} if role == "caller" else {"ea": 1, "co": 2, "te": 3}
    final = len(names)
    for part in payload.split("|")[1:]:
        _id, st, d, remote = part.split(":", 3)
        if remote == partner and d == want_dir:
            return names.get(st, 0), True
    return (final if seen else 0), False


def stage_presence(note, role, seen, after_bye):
    if role == "caller":
        if note == "On_the_phone":
            return 1
        if note == "Available" and (seen or after_bye):
            return 2
        return 0
    if note == "Ringing":
        return 1
    if note == "On_the_phone":
        return 2
    if note == "Available" and (seen or after_bye):
        return 3
    return 0


def stage_portal(hook, role, seen, after_bye):
    if role == "caller":
        if hook in ("busy", "ringing"):
            return 1
        if hook == "idle" and (seen or after_bye):
            return 2
        return 0
    if hook == "ringing":
        return 1
    if hook == "busy":
        return 2
    if hook == "idle" and (seen or after_bye):
        return 3
    return 0


class Acc:
    def __init__(self):
        self.delays = defaultdict(list)     # (channel, role, stage) -> [ms]
        self.folded = defaultdict(int)
        self.lost = defaultdict(int)
        self.expected = defaultdict(int)
        self.lost_samples = []
        self.rows = []

    def walk(self, channel, key, watched, events, ucalls, stage_fn):
        """events: [(rx_ns, payload)] of one subscription/session, in receive order."""
        if not ucalls:
            return
        j = 0
        for p, (call, role) in enumerate(ucalls):
            start = call["inv_tx"] - EARLY_NS
            end = ucalls[p + 1][0]["inv_tx"] - EARLY_NS if p + 1 < len(ucalls) else float("inf")
            while j < len(events) and events[j][0] < start:
                j += 1
            stages = STAGES[("portal" if channel == "portal" else channel, role)]
            best_rx = [None] * len(stages)
            best_st = [0] * len(stages)
            seen = False
            q = j
            while q < len(events) and events[q][0] < end:
                rx, payload = events[q]
                st, seen = stage_fn(payload, call, role, seen, rx >= call["bye_tx"])
                for k in range(st):
                    if best_rx[k] is None:
                        best_rx[k] = rx
                        best_st[k] = st
                q += 1
            for k, (name, ref) in enumerate(stages):
                key3 = (channel, role, name)
                self.expected[key3] += 1
                if best_rx[k] is None:
                    self.lost[key3] += 1
                    if len(self.lost_samples) < 10:
                        self.lost_samples.append({"channel": channel, "key": key, "watched": watched,
                                                  "row": call["row"], "role": role, "stage": name})
                    continue
                d = (best_rx[k] - call[ref]) / 1e6
                self.delays[key3].append(d)
                if best_st[k] != k + 1:
                    self.folded[key3] += 1
                if O.transitions_out:
                    self.rows.append(f"{channel},{key},{watched},{call['row']},{role},{name},{call[ref]},{best_rx[k]},{d:.3f},{int(best_st[k] != k + 1)}")


def dialog_fn(payload, call, role, seen, after_bye):
    st, listed = stage_dialog(payload, call, role, seen)
    if not listed and after_bye:
        st = 4 if role == "caller" else 3
    return st, seen or listed


def presence_fn(payload, call, role, seen, after_bye):
    st = stage_presence(payload, role, seen, after_bye)
    return st, seen or st > 0


def portal_fn(payload, call, role, seen, after_bye):
    st = stage_portal(payload, role, seen, after_bye)
    return st, seen or st > 0


def stat(v):
    p = percentiles(v)
    r = lambda x: None if x is None else round(x, 3)  # noqa: E731
    return {"n": len(v), "p50": r(p[0]), "p90": r(p[1]), "p99": r(p[2]), "p999": r(p[3]), "max": r(p[4])}


def main():
    d = O.dir
    calls = load_calls(os.path.join(d, f"timeline-{O.label}.csv"))
    ucalls = by_user(calls)
    acc = Acc()
    out = {"label": O.label, "calls": len(calls), "calls_ok": sum(1 for c in calls if c["status"] == "ok")}

    npath = os.path.join(d, f"notify-{O.label}.log")
    nfile = opener(npath)
    if nfile:
        per_sub = defaultdict(list)
        for line in nfile:
            rx, idx, _cseq, dup, _st, payload = line.rstrip("\n").split(" ", 5)
            if dup == "1":
                continue
            per_sub[int(idx)].append((int(rx), payload))
        for idx, ev in per_sub.items():
            ev.sort()
        subs_n = O.level * N
        for idx in range(subs_n):
            dd = idx // N + 1
            g = idx % N
            k, i = divmod(g, O.users)
            watched = k * O.users + (i + dd) % O.users
            channel = "dialog" if dd % 2 == 1 else "presence"
            acc.walk(channel, idx, watched, per_sub.get(idx, []), ucalls.get(watched, []),
                     dialog_fn if channel == "dialog" else presence_fn)
        out["notifies"] = sum(len(v) for v in per_sub.values())

    ppath = os.path.join(d, f"portal-{O.label}.log")
    pfile = opener(ppath)
    if pfile and O.targets:
        gid = {}
        for t in json.load(open(O.targets)):
            k = int(t["domain"].split(".")[0][1:])
            gid[t["user"]] = k * O.users + int(t["extension"]) - 1000
        per_key = defaultdict(list)
        at_delay = []
        server = []
        for line in pfile:
            rx, at, user, hook, _presence, sess = line.split()
            g = gid.get(user)
            if g is None:
                continue
            rx_ns = int(float(rx) * 1e6)
            per_key[(int(sess), g)].append((rx_ns, hook, int(float(at) * 1e6)))
            at_delay.append(float(rx) - float(at))
        for (sess, g), ev in per_key.items():
            ev.sort()
            acc.walk("portal", sess, g, [(rx, hook) for rx, hook, _ in ev], ucalls.get(g, []), portal_fn)
        # the server's own time of each change (`at`) against the SIP reference:
        # how long tsps took to publish the change, before any push
        for (sess, g), ev in per_key.items():
            for c, role in ucalls.get(g, []):
                for name, ref in STAGES[("portal", role)]:
                    hook = {"busy": ("busy", "ringing"), "idle": ("idle",), "ringing": ("ringing",)}[name]
                    cand = [at for _rx, h, at in ev if h in hook and at >= c["inv_tx"] - EARLY_NS
                            and (name != "idle" or at >= c["r200_tx"])]
                    if cand:
                        server.append((min(cand) - c[ref]) / 1e6)
        out["portal_messages"] = sum(len(v) for v in per_key.values())
        out["portal_rx_minus_at_ms"] = stat(at_delay)
        out["portal_at_minus_sip_ms"] = stat(server)

    channels = {}
    for key3 in sorted(acc.expected):
        ch, role, name = key3
        s = stat(acc.delays[key3])
        s.update({"expected": acc.expected[key3], "folded": acc.folded[key3], "lost": acc.lost[key3]})
        channels.setdefault(ch, {})[f"{role}:{name}"] = s
    out["transitions"] = channels
    for ch in ("dialog", "presence", "portal"):
        allv = [x for k3, v in acc.delays.items() if k3[0] == ch for x in v]
        if not allv and not any(k3[0] == ch for k3 in acc.expected):
            continue
        s = stat(allv)
        s.update({
            "expected": sum(v for k3, v in acc.expected.items() if k3[0] == ch),
            "folded": sum(v for k3, v in acc.folded.items() if k3[0] == ch),
            "lost": sum(v for k3, v in acc.lost.items() if k3[0] == ch),
        })
        out[f"{ch}_all"] = s
    sipv = [x for k3, v in acc.delays.items() if k3[0] in ("dialog", "presence") for x in v]
    out["notify_all"] = stat(sipv)
    out["notify_all"]["lost"] = sum(v for k3, v in acc.lost.items() if k3[0] in ("dialog", "presence"))
    out["notify_all"]["expected"] = sum(v for k3, v in acc.expected.items() if k3[0] in ("dialog", "presence"))
    out["lost_samples"] = acc.lost_samples
    if O.transitions_out:
        with open(O.transitions_out, "w") as f:
            f.write("channel,sub_or_session,watched,call_row,role,stage,ref_ns,rx_ns,delay_ms,folded\n")
            f.write("\n".join(acc.rows) + "\n")
    print(json.dumps(out))


main()
