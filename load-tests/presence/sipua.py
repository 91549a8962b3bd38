"""Minimal SIP user-agent pieces for the presence load test (load-tests/presence/).

Just enough SIP over UDP on 127.0.0.1 for tsps: parse and build messages, RFC 7616
MD5 digest with qop=auth, client transactions with RFC 3261 retransmission timers,
and sockets that return the KERNEL receive time of each datagram (SO_TIMESTAMPNS,
CLOCK_REALTIME). Delays are computed from kernel receive times and from the time
taken right before each send, so a busy Python event loop delays answers but does
not inflate the measured delays.

Nonces: tsps's nonces are stateless (HMAC, valid nonce_ttl_secs): like a phone that
keeps its nonce, a UA here answers a 401/407 once per realm and sends credentials
with every later request until it is challenged again (stale).
"""

import asyncio
import hashlib
import math
import os
import socket
import struct
import time

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
T1 = 0.5
T2 = 4.0
TIMER_B = 32.0

COMPACT = {
    "i": "call-id",
    "f": "from",
    "t": "to",
    "v": "via",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "o": "event",
}


def now_ns():
    return time.time_ns()


class Msg:
    """A parsed SIP message: first line, headers (lower-case names, values in order)."""

    __slots__ = ("first", "headers", "body", "method", "code", "uri")

    def __init__(self, data):
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("utf-8", "replace").split("\r\n")
        self.first = lines[0]
        self.body = body
        self.headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                continue
            name = name.strip().lower()
            name = COMPACT.get(name, name)
            self.headers.setdefault(name, []).append(value.strip())
        parts = self.first.split(" ", 2)
        if parts[0] == "SIP/2.0":
            self.method = None
            self.code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            self.uri = None
        else:
            self.method = parts[0]
            self.code = 0
            self.uri = parts[1] if len(parts) > 1 else ""

    def h(self, name):
        v = self.headers.get(name)
        return v[0] if v else ""

    def all(self, name):
        return self.headers.get(name, [])

    def cseq(self):
        n, _, m = self.h("cseq").partition(" ")
        try:
            return int(n), m.strip()
        except ValueError:
            return 0, m.strip()

    def branch(self):
        return param(self.h("via"), "branch")

    def to_tag(self):
        return param(self.h("to"), "tag")

    def from_tag(self):
        return param(self.h("from"), "tag")


def param(header, name):
    """A ;name=value parameter of a header (first match outside <...>)."""
    s = header[header.rindex(">") + 1 :] if ">" in header else header
    for p in s.split(";")[1:]:
        k, _, v = p.strip().partition("=")
        if k.lower() == name:
            return v.strip().strip('"')
    return None


def uri_of(header):
    """The URI of a name-addr (<sip:...>) or addr-spec header value."""
    if "<" in header:
        return header[header.index("<") + 1 : header.index(">")]
    return header.split(";")[0].strip()


def token(n=8):
    return os.urandom(n).hex()


def build(first, headers, body=b""):
    """A message from a first line and (name, value) pairs; Content-Length added."""
    out = [first]
    for k, v in headers:
        out.append(f"{k}: {v}")
    out.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(out) + "\r\n\r\n").encode() + body


def response(req, code, reason, to_tag=None, extra=(), body=b""):
    """A response to `req` (Via, From, To, Call-ID, CSeq copied; To tag added)."""
    to = req.h("to")
    if to_tag and "tag=" not in to:
        to = f"{to};tag={to_tag}"
    hs = [("Via", v) for v in req.all("via")]
    hs += [("From", req.h("from")), ("To", to), ("Call-ID", req.h("call-id")), ("CSeq", req.h("cseq"))]
    hs += list(extra)
    return build(f"SIP/2.0 {code} {reason}", hs, body)


# ---------- digest (RFC 7616, MD5, qop=auth) ----------


def _md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def parse_challenge(value):
    """Parameters of one `Digest ...` challenge value."""
    v = value.strip()
    if not v.lower().startswith("digest"):
        return None
    out = {}
    rest = v[6:]
    i = 0
    while i < len(rest):
        while i < len(rest) and rest[i] in " ,":
            i += 1
        j = rest.find("=", i)
        if j < 0:
            break
        k = rest[i:j].strip().lower()
        j += 1
        if j < len(rest) and rest[j] == '"':
            e = rest.find('"', j + 1)
            out[k] = rest[j + 1 : e]
            i = e + 1
        else:
            e = rest.find(",", j)
            e = len(rest) if e < 0 else e
            out[k] = rest[j:e].strip()
            i = e
    return out


def md5_challenge(msg):
    """The MD5 challenge of a 401/407 (tsps offers SHA-256 first, then MD5)."""
    for name in ("www-authenticate", "proxy-authenticate"):
        for v in msg.all(name):
            c = parse_challenge(v)
            if c and c.get("algorithm", "MD5").upper() == "MD5":
                return c
    return None


def credentials(user, password, realm, nonce, method, uri):
    cnonce = token(4)
    nc = "00000001"
    ha1 = _md5(f"{user}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    resp = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{resp}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"'
    )


class Nonces:
    """The last nonce per realm (tsps's nonces are stateless and reusable until stale)."""

    def __init__(self):
        self.by_realm = {}

    def get(self, realm):
        return self.by_realm.get(realm)

    def learn(self, msg):
        c = md5_challenge(msg)
        if c and "realm" in c and "nonce" in c:
            self.by_realm[c["realm"]] = c["nonce"]
            return c
        return None


# ---------- UDP with kernel timestamps ----------


class Endpoint:
    """A UDP socket on 127.0.0.1. `on_datagram(data, addr, rx_ns)` gets the kernel
    receive time (CLOCK_REALTIME ns) of each datagram."""

    def __init__(self, port, on_datagram, rcvbuf=8 << 20):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # SO_RCVBUFFORCE (root) passes net.core.rmem_max: a burst of NOTIFYs while the
        # event loop is busy must wait in the socket, not be dropped
        try:
            s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), rcvbuf)
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, rcvbuf)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.bind(("127.0.0.1", port))
        s.setblocking(False)
        self.sock = s
        self.port = s.getsockname()[1]
        self.on_datagram = on_datagram
        self.rx = 0
        self.tx = 0
        self.send_errors = 0
        asyncio.get_running_loop().add_reader(s.fileno(), self._readable)

    def _readable(self):
        # bounded per wake-up so that timers and other sockets get their turn
        for _ in range(512):
            try:
                data, anc, _flags, addr = self.sock.recvmsg(65535, 256)
            except (BlockingIOError, InterruptedError):
                return
            rx = 0
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(cdata) >= 16:
                    sec, nsec = struct.unpack("qq", cdata[:16])
                    rx = sec * 1_000_000_000 + nsec
            if not rx:
                rx = now_ns()
            self.rx += 1
            try:
                self.on_datagram(data, addr, rx)
            except Exception as e:  # a malformed datagram must not stop the load
                print(f"handler error: {e!r}", flush=True)

    def send(self, data, addr):
        """Sends; returns the wall-clock time (ns) taken right before the send."""
        t = now_ns()
        try:
            self.sock.sendto(data, addr)
            self.tx += 1
        except OSError:
            self.send_errors += 1
        return t

    def close(self):
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()


class ClientTx:
    """A client transaction over UDP (RFC 3261 §17.1): retransmits until a response
    (INVITE: until a provisional or final; non-INVITE: until a final, T2 cap) or
    Timer B/F. `on_response(msg, rx_ns)` gets every response; `on_timeout()` once."""

    __slots__ = ("ep", "data", "addr", "invite", "interval", "handle", "done", "got_provisional",
                 "on_response", "on_timeout", "deadline", "branch", "table", "sent_ns")

    def __init__(self, ep, table, branch, data, addr, invite, on_response, on_timeout):
        self.ep, self.table, self.branch = ep, table, branch
        self.data, self.addr, self.invite = data, addr, invite
        self.on_response, self.on_timeout = on_response, on_timeout
        self.interval = T1
        self.done = False
        self.got_provisional = False
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + TIMER_B
        table[branch] = self
        self.sent_ns = ep.send(data, addr)
        self.handle = loop.call_later(self.interval, self._retransmit)

    def _retransmit(self):
        if self.done:
            return
        loop = asyncio.get_running_loop()
        if loop.time() >= self.deadline:
            self.finish()
            self.on_timeout()
            return
        if not (self.invite and self.got_provisional):
            self.ep.send(self.data, self.addr)
        if self.invite:
            self.interval *= 2
        else:
            self.interval = min(self.interval * 2, T2)
        self.handle = loop.call_later(min(self.interval, max(0.0, self.deadline - loop.time())), self._retransmit)

    def response(self, msg, rx):
        if self.done:
            return
        if msg.code < 200:
            self.got_provisional = True
            if self.invite:
                self.deadline = asyncio.get_running_loop().time() + 180.0
        else:
            self.finish()
        self.on_response(msg, rx)

    def finish(self):
        self.done = True
        if self.handle:
            self.handle.cancel()
        self.table.pop(self.branch, None)


def sdp(port):
    return (
        "v=0\r\no=load 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    ).encode()


def cpu_seconds():
    t = os.times()
    return t.user + t.system


def percentiles(values, ps=(0.5, 0.9, 0.99, 0.999)):
    """Nearest-rank percentiles of a list (sorted here) and the max, or Nones."""
    if not values:
        return [None] * (len(ps) + 1)
    v = sorted(values)
    out = []
    for p in ps:
        i = min(len(v) - 1, max(0, math.ceil(len(v) * p) - 1))
        out.append(v[i])
    out.append(v[-1])
    return out
