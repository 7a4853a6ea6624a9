#!/usr/bin/env python3
"""fedgate's benchmarks, each next to its peer or limit in the same run. Loopback only, bounded in time, every
process we start is stopped by PID. Prints one table at the end (and writes bench/results/last.md)."""
import json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time, urllib.request, urllib.error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEDGATE = os.path.join(ROOT, "target", "release", "fedgate")
BROKER_BENCH = os.path.join(ROOT, "target", "release", "broker-bench")
# BENCH_BASELINE=/path/to/an/older/fedgate: the proxy benchmarks also measure that binary in the same run, so a
# change can be compared with what it replaces on the same machine at the same time.
BASELINE = os.environ.get("BENCH_BASELINE")  # not FEDGATE_*: the gateway reads those as configuration
ROWS = []  # (measurement, fedgate, peer/limit, ratio, note)
STARTED = []  # Popen objects to stop


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def wait_http(url, timeout=15.0, want=200):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == want:
                    return True
        except Exception:
            pass
        time.sleep(0.002)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """User + system CPU time of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill(); p.wait()


def row(name, ours, peer, ratio, note=""):
    ROWS.append((name, ours, peer, ratio, note))
    print(f"  {name}: {ours} | {peer} | {ratio} {note}", flush=True)


def wrk(url, secs=8, conns=32, threads=2, script=None, headers=()):
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--latency", "--timeout", "5s"]
    for h in headers:
        cmd += ["-H", h]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=secs + 30).stdout
    rps = p50 = p99 = None; errors = 0
    def ms(x):
        for suf, mul in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
            if x.endswith(suf):
                return round(float(x[: -len(suf)]) * mul, 3)
        return round(float(x), 3)
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            rps = float(parts[1])
        elif line.strip().startswith("50%"):
            p50 = ms(parts[1])
        elif line.strip().startswith("99%"):
            p99 = ms(parts[1])
        elif "Non-2xx or 3xx" in line:
            errors = int(parts[-1])
    return {"rps": rps or 0.0, "p50": p50, "p99": p99, "errors": errors, "raw": out}


def argon2_cheap(password):
    """A valid argon2id hash with minimal cost, so load tests measure the gateway, not argon2."""
    from argon2 import PasswordHasher
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(password)


class Gateway:
    def __init__(self, toml, env=None, binary=None):
        self.binary = binary or FEDGATE
        self.dir = tempfile.mkdtemp(prefix="fedgate-bench.")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.cfg = os.path.join(self.dir, "config.toml")
        if "[store]" not in toml:
            # The in-process store, as these figures were measured before [store] existed (and several gateways
            # run at once here, which one embedded file in the working directory would not allow).
            toml += '\n[store]\nkind = "memory"\n'
        with open(self.cfg, "w") as f:
            f.write(f'[server]\nlisten = "127.0.0.1:{self.port}"\npublic_url = "{self.base}/"\n[log]\nlevel = "warn"\n' + toml)
        self.env = dict(os.environ, **(env or {}))
        self.p = None

    def start(self):
        t0 = time.monotonic()
        self.p = subprocess.Popen([self.binary, "serve", "--config", self.cfg], env=self.env,
                                  stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "log"), "w"))
        STARTED.append(self.p)
        try:
            wait_http(self.base + "/readyz")
        except RuntimeError:
            with open(os.path.join(self.dir, "log")) as log:
                sys.stderr.write(f"{self.binary} did not get ready; its log:\n{log.read()[-3000:]}")
            raise
        return time.monotonic() - t0

    def stop(self):
        if self.p:
            stop(self.p)
        shutil.rmtree(self.dir, ignore_errors=True)


def static_dir_toml(users):
    out = '[roles]\nadmin = ["admins"]\n[directory]\nkind = "static"\n'
    for u, pw in users:
        out += f'[[directory.users]]\nusername = "{u}"\npassword_hash = "{argon2_cheap(pw)}"\ngroups = ["admins"]\n'
    return out


LOGIN_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Cookie"] = "fedgate_csrf=benchcsrf"
wrk.body = "username=bench&password=bench-pw&csrf=benchcsrf&rd=%2F"
"""


def bench_startup():
    print("startup: exec → /readyz = 200, RSS idle", flush=True)
    times, rss = [], []
    for _ in range(7):
        gw = Gateway(static_dir_toml([("bench", "bench-pw")]))
        try:
            times.append(gw.start() * 1000)
            time.sleep(0.3)
            rss.append(rss_kb(gw.p.pid) / 1024)
        finally:
            gw.stop()
    row("start → ready", f"{statistics.median(times):.1f} ms", "goal 50 ms", f"{statistics.median(times) / 50:.2f}× goal",
        f"median of 7 (min {min(times):.1f})")
    row("RSS idle", f"{statistics.median(rss):.1f} MB", "goal 20 MB", f"{statistics.median(rss) / 20:.2f}× goal", "")


def bench_sessions():
    print("sessions: 100k live sessions, lookups/s", flush=True)
    gw = Gateway(static_dir_toml([("bench", "bench-pw")]) + '[login]\nthrottle = false\n')
    script = os.path.join(gw.dir, "login.lua")
    with open(script, "w") as f:
        f.write(LOGIN_LUA)
    try:
        gw.start()
        idle = rss_kb(gw.p.pid) / 1024
        logins = wrk(gw.base + "/login", secs=2, conns=16, script=script)
        row("logins/s (static dir, cheap hash)", f"{logins['rps']:.0f}/s", "—", "—",
            f"p99 {logins['p99']} ms; form POST → session; errors {logins['errors']}")
        def sessions():
            with urllib.request.urlopen(gw.base + "/metrics") as r:
                for line in r.read().decode().splitlines():
                    if line.startswith("fedgate_sessions "):
                        return int(line.split()[1])
            return 0
        # Top up to exactly 100k: each wrk thread stops after its share of the missing logins.
        capped = os.path.join(gw.dir, "login-capped.lua")
        missing = max(0, 100_000 - sessions())
        with open(capped, "w") as f:
            f.write(LOGIN_LUA + f"local n = 0\nfunction response(status)\n  n = n + 1\n  if n >= {missing // 2} then wrk.thread:stop() end\nend\n")
        if missing:
            wrk(gw.base + "/login", secs=60, conns=2, threads=2, script=capped)
        n = sessions()
        rss100k = rss_kb(gw.p.pid) / 1024
        row(f"RSS with {n // 1000}k sessions", f"{rss100k:.1f} MB", "goal 150 MB", f"{rss100k / 150:.2f}× goal",
            f"idle before: {idle:.1f} MB")
        # one session cookie for lookups
        req = urllib.request.Request(gw.base + "/login", method="POST",
                                     data=b"username=bench&password=bench-pw&csrf=c&rd=%2F",
                                     headers={"Cookie": "fedgate_csrf=c", "Content-Type": "application/x-www-form-urlencoded"})
        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a, **k):
                return None
        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(req)
        except urllib.error.HTTPError as e:
            cookie = [v for k, v in e.headers.items() if k.lower() == "set-cookie" and v.startswith("fedgate_session=")][0].split(";")[0]
        look = wrk(gw.base + "/", secs=6, conns=32, headers=[f"Cookie: {cookie}"])
        base = wrk(gw.base + "/healthz", secs=6, conns=32)
        row("session lookups/s (GET / account page)", f"{look['rps']:.0f}/s", f"/healthz {base['rps']:.0f}/s",
            f"{look['rps'] / base['rps']:.2f}", f"p50 {look['p50']} ms, p99 {look['p99']} ms, {n // 1000}k sessions live")
    finally:
        gw.stop()


def openssl_ceiling():
    """Single-core signatures/s from `openssl speed` for RS256, ES256 and EdDSA."""
    out = subprocess.run(["openssl", "speed", "-seconds", "2", "-mr", "rsa2048", "ecdsap256", "ed25519"],
                         capture_output=True, text=True, timeout=120).stdout
    res = {}
    for line in out.splitlines():
        f = line.split(":")
        if line.startswith("+F2:"):
            res["RS256"] = float(f[3])
        elif line.startswith("+F4:"):
            res["ES256"] = float(f[3])
        elif line.startswith("+F6:"):
            res["EdDSA"] = float(f[4])
    return res


CC_LUA = """
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&scope=%s"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic %s"
"""


def bench_oidc():
    import base64
    print("oidc: client_credentials tokens/s vs node oidc-provider vs openssl speed (1 core)", flush=True)
    ceiling = openssl_ceiling()
    secret = "svc-secret-0123456789"
    basic = base64.b64encode(f"svc:{secret}".encode()).decode()
    for alg in ("RS256", "ES256", "EdDSA"):
        keys = tempfile.mkdtemp(prefix="fedgate-bench-keys.")
        gw = Gateway(static_dir_toml([("bench", "bench-pw")]) + f"""
[oidc]
keys_dir = "{keys}"
signing_algorithm = "{alg}"
[[oidc.clients]]
client_id = "svc"
client_secret = "{secret}"
grant_types = ["client_credentials"]
scopes = ["roles"]
""")
        peer = None
        try:
            gw.start()
            script = os.path.join(gw.dir, "cc.lua")
            with open(script, "w") as f:
                f.write(CC_LUA % ("roles", basic))
            wrk(gw.base + "/oauth2/token", secs=3, conns=32, script=script)  # warm-up
            ours = wrk(gw.base + "/oauth2/token", secs=8, conns=32, script=script)
            port = free_port()
            peer = subprocess.Popen(["node", os.path.join(ROOT, "bench", "node", "oidc-peer.mjs")],
                                    env=dict(os.environ, PORT=str(port), ALG=alg, NODE_ENV="production"),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            STARTED.append(peer)
            wait_http(f"http://127.0.0.1:{port}/.well-known/openid-configuration")
            pscript = os.path.join(gw.dir, "cc-peer.lua")
            with open(pscript, "w") as f:
                f.write(CC_LUA.replace("/oauth2/token", "/token") % ("api%3Aread", basic))
            wrk(f"http://127.0.0.1:{port}/token", secs=3, conns=32, script=pscript)
            theirs = wrk(f"http://127.0.0.1:{port}/token", secs=8, conns=32, script=pscript)
            row(f"client_credentials {alg} tokens/s", f"{ours['rps']:.0f}/s (p99 {ours['p99']} ms)",
                f"oidc-provider {theirs['rps']:.0f}/s (p99 {theirs['p99']} ms)",
                f"{ours['rps'] / max(theirs['rps'], 1):.1f}× peer",
                f"signing ceiling (openssl speed, 1 core × {os.cpu_count()}) {ceiling.get(alg, 0) * os.cpu_count():.0f}/s → "
                f"{ours['rps'] / max(ceiling.get(alg, 1) * os.cpu_count(), 1):.0%} (wrk shares the cores); non-2xx {ours['errors']}/{theirs['errors']}")
        finally:
            if peer:
                stop(peer)
            gw.stop()
            shutil.rmtree(keys, ignore_errors=True)


LDAP_BENCH = os.path.join(ROOT, "target", "release", "ldap-bench")
BARE_PROXY = os.path.join(ROOT, "target", "release", "bare-proxy")

LOGIN_RANDOM_LUA = """
math.randomseed(os.time())
request = function()
  local i = math.random(1, %d)
  local body = "username=user" .. i .. "&password=pw-" .. i .. "&csrf=c&rd=%%2F"
  return wrk.format("POST", "/login", {["Content-Type"] = "application/x-www-form-urlencoded", ["Cookie"] = "fedgate_csrf=c"}, body)
end
"""


def bench_ldap():
    print("ldap: password logins/s through fedgate vs the raw LDAP ceiling for the same operations", flush=True)
    users, conc = 1000, 16
    slapd = subprocess.Popen([LDAP_BENCH, "serve", str(users)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    STARTED.append(slapd)
    try:
        info = json.loads(slapd.stdout.readline())
        def slapd_cpu():
            with open(f"/proc/{info['pid']}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
            return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
        c0 = slapd_cpu()
        out = subprocess.run([LDAP_BENCH, "ceiling", info["url"], info["base"], info["service_dn"], info["service_pw"],
                              str(users), str(conc), "8"], capture_output=True, text=True, timeout=60)
        ceiling_res = json.loads(out.stdout)
        ceiling = ceiling_res["rate"]
        raw_us = (slapd_cpu() - c0) / max(ceiling_res["logins"], 1) * 1e6
        toml = '[roles]\nadmin = ["staff"]\n[login]\nthrottle = false\n' + info["toml"] + 'group_strategy = "search"\nnested_groups = false\n'
        gw = Gateway(toml)
        try:
            gw.start()
            script = os.path.join(gw.dir, "login.lua")
            with open(script, "w") as f:
                f.write(LOGIN_RANDOM_LUA % users)
            wrk(gw.base + "/login", secs=3, conns=conc, script=script)
            c1 = slapd_cpu()
            ours = wrk(gw.base + "/login", secs=8, conns=conc, script=script)
            our_us = (slapd_cpu() - c1) / max(ours["rps"] * 8, 1) * 1e6
            row("password logins/s (LDAP search+bind+groups → session)", f"{ours['rps']:.0f}/s (p99 {ours['p99']} ms)",
                f"raw ldap3 client, same ops: {ceiling:.0f}/s", f"{ours['rps'] / max(ceiling, 1):.0%} of ceiling",
                f"{conc} concurrent, {users} users, real slapd; slapd CPU per login {our_us:.0f} µs (fedgate run) vs {raw_us:.0f} µs (raw run); non-2xx/3xx {ours['errors']}")
        finally:
            gw.stop()
    finally:
        slapd.stdin.close()
        slapd.wait(20)


def login_cookie(gw, user, pw):
    req = urllib.request.Request(gw.base + "/login", method="POST",
                                 data=f"username={user}&password={pw}&csrf=c&rd=%2F".encode(),
                                 headers={"Cookie": "fedgate_csrf=c", "Content-Type": "application/x-www-form-urlencoded"})
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None
    try:
        urllib.request.build_opener(NoRedirect).open(req)
    except urllib.error.HTTPError as e:
        for k, v in e.headers.items():
            if k.lower() == "set-cookie" and v.startswith("fedgate_session="):
                return v.split(";")[0]
    raise RuntimeError("login failed")


def bench_codeflow():
    print("oidc: full code + PKCE logins/s (authorize → login form → token)", flush=True)
    keys = tempfile.mkdtemp(prefix="fedgate-bench-keys.")
    secret = "web-secret-0123456789abcdef"
    gw = Gateway(static_dir_toml([("bench", "bench-pw")]) + f"""[login]
throttle = false
[oidc]
keys_dir = "{keys}"
[[oidc.clients]]
client_id = "web"
client_secret = "{secret}"
redirect_uris = ["http://127.0.0.1:9/cb"]
""")
    try:
        gw.start()
        out = subprocess.run([os.path.join(ROOT, "target", "release", "codeflow-bench"), gw.base, "web", secret,
                              "http://127.0.0.1:9/cb", "bench", "bench-pw", "8", "8"], capture_output=True, text=True, timeout=60)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        port = free_port()
        peer = subprocess.Popen(["node", os.path.join(ROOT, "bench", "node", "oidc-peer.mjs")],
                                env=dict(os.environ, PORT=str(port), ALG="RS256", NODE_ENV="production"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        STARTED.append(peer)
        try:
            wait_http(f"http://127.0.0.1:{port}/.well-known/openid-configuration")
            pout = subprocess.run(["node", os.path.join(ROOT, "bench", "node", "codeflow-peer.mjs"), f"http://127.0.0.1:{port}", "8", "8"],
                                  capture_output=True, text=True, timeout=60)
            pres = json.loads(pout.stdout.strip().splitlines()[-1])
        finally:
            stop(peer)
        row("full code + PKCE logins/s (authorize → login → token, RS256 ID token)", f"{res['rate']:.0f}/s",
            f"oidc-provider {pres['rate']:.0f}/s", f"{res['rate'] / max(pres['rate'], 1):.1f}× peer",
            f"8 concurrent fresh browsers each (Rust client for fedgate, node fetch for the peer); failed {res['failed']}/{pres['failed']}")
    finally:
        gw.stop()
        shutil.rmtree(keys, ignore_errors=True)


def bench_broker():
    """Brokered logins ([[upstream.oidc]]) end to end against node oidc-provider, next to the same provider's own
    code-flow logins, both driven by the same Rust client (broker-bench) against the same provider process, in
    alternating rounds; and the CPU each process spends per login."""
    print("broker: brokered logins/s (fedgate → oidc-provider → callback → session) vs oidc-provider's own code flow", flush=True)
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    gw = Gateway(f"""[[upstream.oidc]]
name = "peer"
issuer = "{issuer}"
client_id = "fedgate"
client_secret = "fedgate-secret-0123456789"
scopes = ["openid"]
username_claim = "sub"
""")
    peer = subprocess.Popen(["node", os.path.join(ROOT, "bench", "node", "oidc-peer.mjs")],
                            env=dict(os.environ, PORT=str(port), ALG="RS256", NODE_ENV="production",
                                     BROKER_REDIRECT=f"{gw.base}/login/peer/callback"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    STARTED.append(peer)
    bb = BROKER_BENCH
    conc, secs = 8, 8

    def run(args, seconds):
        import resource
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run([bb] + args + [str(conc), str(seconds)], capture_output=True, text=True, timeout=seconds + 60)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        # The load generator's own CPU per login (it shares the 2 cores with what it measures).
        res["client_ms"] = ((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)) * 1000 / max(res["logins"], 1)
        if res["failed"]:
            print(f"    {args[0]}: {res['failed']} failed, first: {res['first_error']}", file=sys.stderr, flush=True)
        return res

    try:
        wait_http(issuer + "/.well-known/openid-configuration")
        gw.start()
        direct_args = ["direct", issuer, "web", "web-secret-0123456789", "http://127.0.0.1:9/cb"]
        broker_args = ["broker", gw.base, "peer"]
        run(direct_args, 2)
        run(broker_args, 2)  # warm-up: fedgate's discovery of the provider, node's JIT
        for i in range(3):
            p0 = cpu_seconds(peer.pid)
            d = run(direct_args, secs)
            p1, g1 = cpu_seconds(peer.pid), cpu_seconds(gw.p.pid)
            b = run(broker_args, secs)
            p2, g2 = cpu_seconds(peer.pid), cpu_seconds(gw.p.pid)
            op_direct = (p1 - p0) * 1000 / max(d["logins"], 1)
            op_broker = (p2 - p1) * 1000 / max(b["logins"], 1)
            fed = (g2 - g1) * 1000 / max(b["logins"], 1)
            wall_share = 100 * (1 - b["rate"] / max(d["rate"], 1e-9))
            row(f"brokered logins/s, round {i + 1} (fedgate → oidc-provider login → callback → session)",
                f"{b['rate']:.0f}/s", f"oidc-provider alone {d['rate']:.0f}/s", f"{b['rate'] / max(d['rate'], 1e-9):.2f}× peer",
                f"fedgate adds {wall_share:.0f} % of the time per login; CPU per login: fedgate {fed:.2f} ms "
                f"({100 * fed / max(fed + op_broker, 1e-9):.0f} % of fedgate + provider), oidc-provider {op_broker:.2f} ms "
                f"brokered vs {op_direct:.2f} ms alone; load generator {b['client_ms']:.2f} vs {d['client_ms']:.2f} ms; "
                f"{conc} concurrent fresh browsers, {secs} s; failed {b['failed']}/{d['failed']}")
    finally:
        gw.stop()
        stop(peer)


def bench_saml():
    print("saml: signed responses/s vs pysaml2 and the RSA-2048 signing ceiling", flush=True)
    ceiling = openssl_ceiling().get("RS256", 0)
    keys = tempfile.mkdtemp(prefix="fedgate-bench-saml.")
    gw = Gateway(static_dir_toml([("bench", "bench-pw")]) + f"""
[saml]
keys_dir = "{keys}"
[[saml.service_providers]]
name = "app"
entity_id = "https://sp.example.org/sp"
acs_urls = ["https://sp.example.org/acs"]
attributes = {{ mail = "{{username}}@example.org" }}
""")
    try:
        gw.start()
        cookie = login_cookie(gw, "bench", "bench-pw")
        wrk(gw.base + "/saml/init/app", secs=3, conns=16, headers=[f"Cookie: {cookie}"])
        ours = wrk(gw.base + "/saml/init/app", secs=8, conns=16, headers=[f"Cookie: {cookie}"])
        import base64, zlib, urllib.parse
        req = ('<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_bench1" Version="2.0" '
               'IssueInstant="2026-01-01T00:00:00Z" AssertionConsumerServiceURL="https://sp.example.org/acs">'
               '<saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">https://sp.example.org/sp</saml:Issuer>'
               '</samlp:AuthnRequest>')
        deflated = zlib.compressobj(wbits=-15)
        raw = deflated.compress(req.encode()) + deflated.flush()
        q = urllib.parse.urlencode({"SAMLRequest": base64.b64encode(raw).decode(), "RelayState": "rs"})
        sp_init = wrk(gw.base + "/saml/sso?" + q, secs=8, conns=16, headers=[f"Cookie: {cookie}"])
        row("SP-initiated SAML round trips/s (AuthnRequest in → signed Response out, logged-in browser)",
            f"{sp_init['rps']:.0f}/s (p99 {sp_init['p99']} ms)", "—", "—",
            f"HTTP-Redirect binding, DEFLATE + parse + sign per request; non-2xx {sp_init['errors']}")
        out = subprocess.run([os.path.join(ROOT, "bench", ".venv", "bin", "python"), os.path.join(ROOT, "bench", "saml_peer.py"), "8"],
                             capture_output=True, text=True, timeout=120)
        peer = json.loads(out.stdout.strip().splitlines()[-1])["rate"] if out.returncode == 0 else 0.0
        cores = os.cpu_count()
        row("signed SAML responses/s (IdP-initiated, assertion signed)", f"{ours['rps']:.0f}/s (p99 {ours['p99']} ms)",
            f"pysaml2 {peer:.1f}/s", f"{ours['rps'] / max(peer, 0.1):.0f}× peer",
            f"RSA-2048 sign ceiling {ceiling * cores:.0f}/s ({cores} cores) → {ours['rps'] / max(ceiling * cores, 1):.0%}; non-2xx {ours['errors']}")
    finally:
        gw.stop()
        shutil.rmtree(keys, ignore_errors=True)


def nginx_conf(d, port, body):
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""{user}
worker_processes 1;
pid {d}/nginx-{port}.pid;
error_log {d}/error-{port}.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {d}/b; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f; uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;
  upstream app {{ server 127.0.0.1:{body['up']}; keepalive 64; }}
  server {{ listen 127.0.0.1:{port}; {body['loc']} }}
}}
"""


PROXY_ROUNDS, PROXY_SECS = 5, 6


def bench_proxy():
    print("proxy: authenticated proxied requests/s vs direct and vs plain nginx", flush=True)
    d = tempfile.mkdtemp(prefix="fedgate-bench-nginx.")
    up_port, px_port = free_port(), free_port()
    procs = []
    try:
        for port, loc, up in [(up_port, 'location / { return 200 "ok\\n"; }', up_port),
                              (px_port, 'location / { proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass http://app; }', up_port)]:
            conf = os.path.join(d, f"nginx-{port}.conf")
            with open(conf, "w") as f:
                f.write(nginx_conf(d, port, {"up": up, "loc": loc}))
            p = subprocess.Popen(["nginx", "-p", d, "-c", conf, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            STARTED.append(p)
        wait_http(f"http://127.0.0.1:{up_port}/")
        wait_http(f"http://127.0.0.1:{px_port}/")
        gw = Gateway(static_dir_toml([("bench", "bench-pw")]) + f'[proxy]\nupstream = "http://127.0.0.1:{up_port}"\n')
        base_gw = Gateway(static_dir_toml([("bench", "bench-pw")]) + f'[proxy]\nupstream = "http://127.0.0.1:{up_port}"\n',
                          binary=BASELINE) if BASELINE else None
        try:
            gw.start()
            cookie = login_cookie(gw, "bench", "bench-pw")
            if base_gw:
                base_gw.start()
                base_cookie = login_cookie(base_gw, "bench", "bench-pw")
            worker = int(subprocess.run(["pgrep", "-P", str(procs[1].pid)], capture_output=True, text=True).stdout.split()[0])
            bare_port = free_port()
            bare = subprocess.Popen([BARE_PROXY, str(bare_port), f"http://127.0.0.1:{up_port}"], stdout=subprocess.PIPE, text=True)
            STARTED.append(bare)
            bare.stdout.readline()
            # This machine's speed drifts by ±20 % over minutes, so the four targets take turns, PROXY_ROUNDS times,
            # and each figure is the median of its rounds (a ratio from one pass can be off by a fifth).
            targets = {
                "direct": (f"http://127.0.0.1:{up_port}/app", [], None),
                "nginx": (f"http://127.0.0.1:{px_port}/app", [], worker),
                "bare": (f"http://127.0.0.1:{bare_port}/app", [], bare.pid),
                "ours": (gw.base + "/app", [f"Cookie: {cookie}"], gw.p.pid),
            }
            if base_gw:
                targets["baseline"] = (base_gw.base + "/app", [f"Cookie: {base_cookie}"], base_gw.p.pid)
            runs = {k: [] for k in targets}
            for k, (url, hdrs, _) in targets.items():
                wrk(url, secs=2, conns=32, headers=hdrs)
            for _ in range(PROXY_ROUNDS):
                for k, (url, hdrs, pid) in targets.items():
                    c0 = cpu_seconds(pid) if pid else 0
                    r = wrk(url, secs=PROXY_SECS, conns=32, headers=hdrs)
                    r["us"] = (cpu_seconds(pid) - c0) / max(r["rps"] * PROXY_SECS, 1) * 1e6 if pid else 0
                    runs[k].append(r)
            stop(bare)
            med = lambda k, f: statistics.median(r[f] for r in runs[k])
            ratios = sorted(a["rps"] / max(b["rps"], 1) for a, b in zip(runs["ours"], runs["nginx"]))
            direct, nginx, floor, ours = ({f: med(k, f) for f in ("rps", "p50", "p99", "errors", "us")} for k in list(targets)[:4])
            nginx_us, floor_us, ours_us = nginx["us"], floor["us"], ours["us"]
            row("peak RSS under proxy load (32 connections, after ~300k requests)", f"{hwm_kb(gw.p.pid) / 1024:.1f} MB", "—", "—", "VmHWM of the gateway process")
            row("proxied requests/s (session → identity headers → upstream)", f"{ours['rps']:.0f}/s (p50 {ours['p50']} / p99 {ours['p99']} ms)",
                f"nginx proxy {nginx['rps']:.0f}/s (p99 {nginx['p99']} ms); direct {direct['rps']:.0f}/s (p99 {direct['p99']} ms)",
                f"{ours['rps'] / max(nginx['rps'], 1):.0%} of nginx",
                f"medians of {PROXY_ROUNDS} alternating {PROXY_SECS} s runs (per-round ratios {', '.join(f'{x:.0%}' for x in ratios)}); "
                f"added p99 vs direct: {ours['p99'] - direct['p99']:.2f} ms; non-2xx {ours['errors']:.0f}")
            row("CPU per proxied request (process CPU time / requests)", f"{ours_us:.1f} µs", f"nginx proxy worker {nginx_us:.1f} µs; bare hyper proxy {floor_us:.1f} µs",
                f"{ours_us / max(nginx_us, 0.1):.1f}× nginx, {ours_us / max(floor_us, 0.1):.2f}× bare hyper", "user + kernel time of the proxy process alone; the loopback TCP work is in all three")
            row("bare hyper server + hyper-util pooled client, no auth (tests/src/bin/bare-proxy.rs)", f"{floor['rps']:.0f}/s (p99 {floor['p99']} ms)",
                f"nginx proxy {nginx['rps']:.0f}/s", f"{floor['rps'] / max(nginx['rps'], 1):.0%} of nginx",
                f"fedgate = {ours['rps'] / max(floor['rps'], 1):.0%} of it, with session lookup, route rules, header hygiene, identity headers and metrics on top (its own HTTP/1.1 pool instead of hyper-util's client)")
            if base_gw:
                base = {f: med("baseline", f) for f in ("rps", "p99", "us")}
                row("same, baseline binary (BENCH_BASELINE) in the same rounds", f"{base['rps']:.0f}/s (p99 {base['p99']} ms), {base['us']:.1f} µs CPU",
                    f"this build {ours['rps']:.0f}/s, {ours_us:.1f} µs CPU", f"{ours['rps'] / max(base['rps'], 1):.0%} of baseline req/s",
                    "per-round ratios " + ", ".join(f"{a['rps'] / max(b['rps'], 1):.0%}" for a, b in zip(runs["ours"], runs["baseline"])))
        finally:
            gw.stop()
            if base_gw:
                base_gw.stop()
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(d, ignore_errors=True)


def callgrind_instructions(cmd, port, ready_path, headers, n=2000, env=None):
    """User-space instructions per proxied request of `cmd` under callgrind: 300 warm-up requests, counters zeroed,
    `n` requests on 4 kept-alive connections, counters dumped. Deterministic, unlike CPU time on a shared machine."""
    import glob, http.client
    d = tempfile.mkdtemp(prefix="fedgate-bench-cg.")
    out = os.path.join(d, "cg.out")
    p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *cmd], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    STARTED.append(p)
    try:
        wait_http(f"http://127.0.0.1:{port}{ready_path}", timeout=90)
        hdrs = headers() if callable(headers) else headers
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(4)]
        def load(k):
            for i in range(k):
                c = conns[i % 4]
                c.request("GET", "/app", headers=hdrs)
                r = c.getresponse()
                r.read()
                assert r.status == 200, r.status
        load(300)
        subprocess.run(["callgrind_control", "-z", str(p.pid)], capture_output=True, timeout=60)
        load(n)
        subprocess.run(["callgrind_control", "-d", str(p.pid)], capture_output=True, timeout=60)
        for c in conns:
            c.close()
    finally:
        stop(p)
    total = 0
    for f in glob.glob(out + ".*"):
        for line in open(f):
            if line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
    shutil.rmtree(d, ignore_errors=True)
    return total / n


def bench_proxy_instructions():
    print("proxyinstr: user-space instructions per proxied request under callgrind (fedgate vs bare hyper proxy)", flush=True)
    d = tempfile.mkdtemp(prefix="fedgate-bench-nginx.")
    up_port = free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(nginx_conf(d, up_port, {"up": up_port, "loc": 'location / { return 200 "ok\\n"; }'}))
    ng = subprocess.Popen(["nginx", "-p", d, "-c", conf, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    STARTED.append(ng)
    try:
        wait_http(f"http://127.0.0.1:{up_port}/")
        bare_port = free_port()
        bare = callgrind_instructions([BARE_PROXY, str(bare_port), f"http://127.0.0.1:{up_port}"], bare_port, "/app", {})
        gw = Gateway(static_dir_toml([("bench", "bench-pw")]) + f'[proxy]\nupstream = "http://127.0.0.1:{up_port}"\n')
        ours = callgrind_instructions([FEDGATE, "serve", "--config", gw.cfg], gw.port, "/readyz",
                                      lambda: {"Cookie": login_cookie(gw, "bench", "bench-pw")}, env=gw.env)
        gw.stop()
        if BASELINE:
            gw = Gateway(static_dir_toml([("bench", "bench-pw")]) + f'[proxy]\nupstream = "http://127.0.0.1:{up_port}"\n')
            base = callgrind_instructions([BASELINE, "serve", "--config", gw.cfg], gw.port, "/readyz",
                                          lambda: {"Cookie": login_cookie(gw, "bench", "bench-pw")}, env=gw.env)
            gw.stop()
            row("same, baseline binary (BENCH_BASELINE)", f"{base:,.0f}", f"this build {ours:,.0f}", f"{ours - base:+,.0f} instructions",
                "the same requests, same run")
        row("user-space instructions per proxied request (callgrind, 2000 requests on 4 kept-alive connections)",
            f"{ours:,.0f}", f"bare hyper + hyper-util proxy {bare:,.0f}", f"{ours / max(bare, 1):.2f}× bare",
            "deterministic (no drift between runs); kernel work not counted; includes session lookup, route rules, header hygiene, identity headers, metrics")
    finally:
        stop(ng)
        shutil.rmtree(d, ignore_errors=True)


SCIM_CEILING = r"""
import http.client, json, sys, threading, time
port, n, threads, token = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
done = [0]
lock = threading.Lock()
def worker(w):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for i in range(w, n, threads):
        body = json.dumps({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"raw{i}",
                           "externalId": f"raw-{i}", "displayName": f"Raw {i}", "active": True,
                           "emails": [{"value": f"raw{i}@example.org", "type": "work", "primary": True}]})
        c.request("POST", "/v2/Users", body, {"Content-Type": "application/scim+json", "Authorization": "Bearer " + token})
        r = c.getresponse(); r.read()
        assert r.status == 201, r.status
t0 = time.monotonic()
ts = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps({"rate": n / (time.monotonic() - t0)}))
"""


def bench_scim():
    print("scim: provisioning 10 000 LDAP users into a real SCIM server (scim2-server), full and incremental", flush=True)
    users, changes, token = 10000, 100, "bench-token"
    slapd = subprocess.Popen([LDAP_BENCH, "serve", str(users)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    STARTED.append(slapd)
    work = tempfile.mkdtemp(prefix="fedgate-bench-scim.")
    servers = []
    def scim_server():
        p = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "scim_server.py"), "--port", "0", "--token", token],
                             stdout=subprocess.PIPE, text=True)
        STARTED.append(p); servers.append(p)
        return p, int(p.stdout.readline().split()[1])
    try:
        info = json.loads(slapd.stdout.readline())
        # The ceiling: the same server taking the same number of POSTs from a minimal keep-alive client (4 threads).
        raw, raw_port = scim_server()
        out = subprocess.run([sys.executable, "-c", SCIM_CEILING, str(raw_port), str(users), "4", token],
                             capture_output=True, text=True, timeout=600)
        ceiling = json.loads(out.stdout)["rate"]
        stop(raw)
        target, port = scim_server()
        cfg = os.path.join(work, "config.toml")
        with open(cfg, "w") as f:
            f.write('[log]\nlevel = "warn"\n' + info["toml"] + f'\n[scim]\nstate_dir = "{work}/state"\n'
                    f'[[scim.targets]]\nname = "bench"\nbase_url = "http://127.0.0.1:{port}/v2"\nbearer_token = "{token}"\n'
                    'max_deprovision_ratio = 0.5\n')
        def sync(*args):
            t0 = time.monotonic()
            r = subprocess.run([FEDGATE, "scim", "sync", "--config", cfg, *args], capture_output=True, text=True, timeout=900)
            if r.returncode != 0:
                raise RuntimeError(f"fedgate scim sync failed: {r.stdout}{r.stderr}")
            return time.monotonic() - t0, r.stdout.strip().splitlines()[-1]
        full_s, full_line = sync()
        row(f"full sync, {users} new users (LDAP read + POST each)", f"{full_s:.1f} s = {users / full_s:.0f} users/s",
            f"same server, bare POST loop: {ceiling:.0f} users/s", f"{users / full_s / ceiling:.0%} of ceiling",
            f"4 requests in flight; {full_line.strip()}")
        again_s, again_line = sync("--full")
        row(f"full re-sync, {users} users, nothing changed (LDAP read + list target)", f"{again_s:.2f} s", "", "",
            again_line.strip())
        ldif = "".join(f"dn: uid=user{i},ou=people,{info['base']}\nchangetype: modify\nreplace: mail\nmail: changed{i}@example.org\n\n"
                       for i in range(1, changes + 1))
        subprocess.run(["ldapmodify", "-x", "-H", info["url"], "-D", f"cn=admin,{info['base']}", "-w", "admin-password"],
                       input=ldif, capture_output=True, text=True, check=True, timeout=60)
        inc_s, inc_line = sync()
        row(f"incremental sync, {changes} changed of {users}", f"{inc_s:.2f} s", f"full re-sync: {again_s:.2f} s",
            f"{again_s / inc_s:.1f}× faster", inc_line.strip())
    finally:
        for p in servers:
            stop(p)
        slapd.stdin.close()
        slapd.wait(20)
        shutil.rmtree(work, ignore_errors=True)


class RedisServer:
    """Debian's redis-server on a free loopback port in a temp dir, AOF on (fsync every second, its usual setting)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="fedgate-bench-redis.")
        self.port = free_port()
        self.p = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "yes", "--appendfsync", "everysec", "--dir", self.dir],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        STARTED.append(self.p)
        end = time.monotonic() + 10
        while self.cli("PING") != "PONG":
            if time.monotonic() > end:
                raise RuntimeError("redis-server did not answer PING")
            time.sleep(0.02)

    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True).stdout.strip()

    def commands(self):
        """Commands executed so far (INFO commandstats), INFO itself left out."""
        total = 0
        for line in self.cli("INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_") and not line.startswith("cmdstat_info:"):
                total += int(line.split("calls=")[1].split(",")[0])
        return total

    def cpu_with_children(self):
        """User + system CPU seconds of redis-server and of the children it forks (the AOF rewrite: it serialises
        the whole data set), reaped or still running."""
        with open(f"/proc/{self.p.pid}/stat") as f:
            ticks = sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:15])
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    parts = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(parts[1]) == self.p.pid:
                ticks += int(parts[11]) + int(parts[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def aof_rewrites(self):
        """AOF rewrites Redis has run (INFO persistence)."""
        for line in self.cli("INFO", "persistence").splitlines():
            if line.startswith("aof_rewrites:"):
                return int(line.split(":")[1])
        return 0

    def stop(self):
        stop(self.p)
        shutil.rmtree(self.dir, ignore_errors=True)


def wrk_requests(r):
    for line in r["raw"].splitlines():
        if " requests in " in line:
            return int(line.split()[0])
    return 0


def store_toml(kind, gw_dir, redis):
    if kind == "embedded":
        return f'\n[store]\nkind = "{kind}"\npath = "{gw_dir}/state"\n'
    if kind == "redis":
        return f'\n[store]\nkind = "redis"\nurl = "{redis.url()}"\n'
    return '\n[store]\nkind = "memory"\n'


STORE_LABEL = {"memory": "memory", "embedded": "embedded (fjall, fsync every 1s)", "redis": "redis"}


def store_bench(*args, timeout=300):
    """One run of the store-bench helper (target/release/store-bench): its JSON line."""
    out = subprocess.run([os.path.join(ROOT, "target", "release", "store-bench"), *args], capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"store-bench {' '.join(args)} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def store_size_mb(path):
    """Disk use as `du` counts it (allocated blocks): fjall sizes each new journal file to 64 MiB sparsely."""
    if os.path.isfile(path):
        return os.stat(path).st_blocks * 512 / 1e6
    return sum(os.stat(os.path.join(d, f)).st_blocks * 512 for d, _, fs in os.walk(path) for f in fs) / 1e6


# Rounds of each store measurement: an even number, so the ABBA order puts every backend as often early as late.
ROUNDS = 6


def bench_store():
    print("store: the same logins, code flows and proxied requests on memory, embedded (fjall) and redis", flush=True)
    redis = RedisServer()
    kinds = ["memory", "embedded", "redis"]
    up_dir = tempfile.mkdtemp(prefix="fedgate-bench-store-up.")
    up_port = free_port()
    conf = os.path.join(up_dir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(nginx_conf(up_dir, up_port, {"up": up_port, "loc": 'location / { return 200 "ok\\n"; }'}))
    up = subprocess.Popen(["nginx", "-p", up_dir, "-c", conf, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    STARTED.append(up)
    keys = tempfile.mkdtemp(prefix="fedgate-bench-store-keys.")
    secret = "web-secret-0123456789abcdef"
    gws = {}
    try:
        wait_http(f"http://127.0.0.1:{up_port}/")
        # kind, or kind + "+throttle": the same with [login] throttle = true (the default), whose reads a login adds.
        for k in kinds + ["memory+throttle", "redis+throttle"]:
            kind, throttle = k.split("+")[0], "+throttle" in k
            gw = Gateway("")
            # max_sessions above what the run creates (about 1.2 M logins on one gateway): at the default bound of 1 M
            # the memory store (and the embedded store's first level) would start evicting part-way through, and the
            # rounds after that would measure eviction, not the backend.
            gw_toml = static_dir_toml([("bench", "bench-pw")]) + f"""[login]
throttle = {str(throttle).lower()}
[session]
max_sessions = 4000000
[proxy]
upstream = "http://127.0.0.1:{up_port}"
[oidc]
keys_dir = "{keys}/{k}"
[[oidc.clients]]
client_id = "web"
client_secret = "{secret}"
redirect_uris = ["http://127.0.0.1:9/cb"]
""" + store_toml(kind, gw.dir, redis)
            with open(gw.cfg, "w") as f:
                f.write(f'[server]\nlisten = "127.0.0.1:{gw.port}"\npublic_url = "{gw.base}/"\n[log]\nlevel = "warn"\n' + gw_toml)
            gw.start()
            gws[k] = gw
        script = os.path.join(up_dir, "login.lua")
        with open(script, "w") as f:
            f.write(LOGIN_LUA)
        # Password logins: six rounds alternating between the backends, every other round in reverse order (ABBA: this
        # machine's speed drifts, and a drift then weighs on every backend alike), the median. 64 connections: the
        # server's capacity (at 16, memory itself leaves a core partly idle and Redis's round trip, waiting for a
        # core it shares with the gateway and wrk, limits throughput rather than CPU); 16 is measured too.
        # Memory sits between embedded and redis, and each other pair is side by side, in both directions of the ABBA
        # order: every backend's round is paired with a memory round just before or after it (a pair shares the
        # machine's speed of the moment, which drifts by a quarter between rounds), and its ratio is the median of
        # its six paired ratios. The ratio of the medians is printed beside it.
        login_kinds = ["embedded", "memory", "redis", "memory+throttle", "redis+throttle", "memory@16", "redis@16"]
        logins = {k: [] for k in login_kinds}
        redis_cmds_per_login = {"redis": [], "redis+throttle": [], "redis@16": []}
        redis_cpu_per_login = {k: [] for k in redis_cmds_per_login}
        gw_cpu_per_login = {k: [] for k in login_kinds}
        redis_all0, rewrites0, redis_logins = redis.cpu_with_children(), redis.aof_rewrites(), 0
        for i in range(ROUNDS):
            for k in login_kinds if i % 2 == 0 else login_kinds[::-1]:
                gk, _, conns = k.partition("@")
                c0, cpu0, g0 = redis.commands(), cpu_seconds(redis.p.pid), cpu_seconds(gws[gk].p.pid)
                r = wrk(gws[gk].base + "/login", secs=3, conns=int(conns or 64), script=script)
                gw_cpu_per_login[k].append((cpu_seconds(gws[gk].p.pid) - g0) / max(wrk_requests(r), 1) * 1e6)
                if k in redis_cmds_per_login:
                    n = max(wrk_requests(r), 1)
                    redis_cmds_per_login[k].append((redis.commands() - c0) / n)
                    redis_cpu_per_login[k].append((cpu_seconds(redis.p.pid) - cpu0) / n * 1e6)
                    redis_logins += n
                logins[k].append(r["rps"])
        # Redis's CPU over all its login rounds, the AOF rewrites it forked included (a rewrite started in one round
        # runs on into the next ones, so it is counted over the whole phase, not per round).
        redis_all = (redis.cpu_with_children() - redis_all0) / max(redis_logins, 1) * 1e6
        rewrites = redis.aof_rewrites() - rewrites0
        for k in login_kinds:
            base = "memory+throttle" if "+throttle" in k else "memory@16" if "@16" in k else "memory"
            mem = statistics.median(logins[base])
            med = statistics.median(logins[k])
            paired = statistics.median(x / max(m, 1) for x, m in zip(logins[k], logins[base]))
            note = (f"rounds {', '.join(f'{x:.0f}' for x in logins[k])}; ratio of the medians {med / max(mem, 1):.0%}; "
                    f"gateway CPU {statistics.median(gw_cpu_per_login[k]):.1f} µs per login")
            if k in redis_cmds_per_login:
                note += (f"; {statistics.median(redis_cmds_per_login[k]):.1f} Redis commands per login (INFO commandstats); "
                         f"Redis CPU {statistics.median(redis_cpu_per_login[k]):.1f} µs per login (redis-server alone, median round)")
                if k == "redis":
                    note += (f"; Redis CPU over every Redis login round, its AOF rewrites included: {redis_all:.1f} µs per login "
                             f"({rewrites} rewrites)")
            if k == "embedded":
                note += "; one journal write(2) per login, fsync once a second"
            name = k.replace("+throttle", ", throttle = true").replace("@16", ", 16 connections")
            label = base.replace("+throttle", ", throttle = true").replace("@16", "")
            row(f"password logins/s, store = {name}", f"{med:.0f}/s", f"{label} {mem:.0f}/s",
                f"{paired:.0%} of memory (paired rounds)", note)
        # Code + PKCE logins (authorize → login form → token), 32 concurrent browsers (the server's capacity: at 8,
        # memory is not saturated either), and 8 as before. Six rounds, alternating between the backends, every other
        # one in reverse order (ABBA, as the logins); the median of each.
        flow_kinds = ["embedded", "memory", "redis", "memory@8", "redis@8"]
        flow_rounds = {k: [] for k in flow_kinds}
        redis_cmds_per_flow = {"redis": [], "redis@8": []}
        redis_cpu_per_flow = {k: [] for k in redis_cmds_per_flow}
        failed = {k: 0 for k in flow_kinds}
        for i in range(ROUNDS):
            for k in flow_kinds if i % 2 == 0 else flow_kinds[::-1]:
                gk, _, browsers = k.partition("@")
                c0, cpu0 = redis.commands(), cpu_seconds(redis.p.pid)
                out = subprocess.run([os.path.join(ROOT, "target", "release", "codeflow-bench"), gws[gk].base, "web", secret,
                                      "http://127.0.0.1:9/cb", "bench", "bench-pw", browsers or "32", "6"], capture_output=True,
                                     text=True, timeout=120)
                res = json.loads(out.stdout.strip().splitlines()[-1])
                flow_rounds[k].append(res["rate"])
                failed[k] += res["failed"]
                if k in redis_cmds_per_flow:
                    n = max(res["logins"], 1)
                    redis_cmds_per_flow[k].append((redis.commands() - c0) / n)
                    redis_cpu_per_flow[k].append((cpu_seconds(redis.p.pid) - cpu0) / n * 1e6)
        for k in flow_kinds:
            base = "memory@8" if "@8" in k else "memory"
            fmem = statistics.median(flow_rounds[base])
            med = statistics.median(flow_rounds[k])
            paired = statistics.median(x / max(m, 1) for x, m in zip(flow_rounds[k], flow_rounds[base]))
            note = (f"rounds {', '.join(f'{x:.0f}' for x in flow_rounds[k])}; ratio of the medians {med / max(fmem, 1):.0%}; "
                    f"failed {failed[k]}")
            if k in redis_cmds_per_flow:
                note += (f"; {statistics.median(redis_cmds_per_flow[k]):.1f} Redis commands per flow (authorize, login page, login, "
                         f"resume, token; INFO commandstats counts a script's and a MULTI's inner commands too); "
                         f"Redis CPU {statistics.median(redis_cpu_per_flow[k]):.0f} µs per flow")
            name = k.replace("@8", ", 8 browsers")
            row(f"code + PKCE logins/s, store = {name}", f"{med:.0f}/s", f"memory {fmem:.0f}/s", f"{paired:.0%} of memory (paired rounds)", note)
        # Proxied requests with a live session: answered from the first level (moka), so Redis sees ~nothing.
        cookies = {k: login_cookie(gws[k], "bench", "bench-pw") for k in ("memory", "redis")}
        proxied = {k: [] for k in cookies}
        redis_cmds = 0
        redis_reqs = 0
        for k in cookies:
            wrk(gws[k].base + "/app", secs=2, conns=32, headers=[f"Cookie: {cookies[k]}"])
        for _ in range(3):
            for k in cookies:
                c0 = redis.commands()
                r = wrk(gws[k].base + "/app", secs=4, conns=32, headers=[f"Cookie: {cookies[k]}"])
                if k == "redis":
                    redis_cmds += redis.commands() - c0
                    redis_reqs += wrk_requests(r)
                proxied[k].append(r["rps"])
        pm, pr = statistics.median(proxied["memory"]), statistics.median(proxied["redis"])
        row("proxied requests/s, store = redis (first-level hits)", f"{pr:.0f}/s", f"memory {pm:.0f}/s", f"{pr / max(pm, 1):.0%} of memory",
            f"{redis_cmds} Redis commands for {redis_reqs} proxied requests = {redis_cmds / max(redis_reqs, 1):.5f} per request "
            f"(one read per session per cache_ttl); rounds redis {', '.join(f'{x:.0f}' for x in proxied['redis'])} / "
            f"memory {', '.join(f'{x:.0f}' for x in proxied['memory'])}")
        # Start → ready with 100k sessions persisted: the gateway is stopped, store-bench writes 100k sessions into
        # its store through the session store and exits without closing it (as after kill -9), then the gateway is
        # started (the first "after SIGKILL" start), killed and started again.
        for k, engine in (("embedded", "fjall"),):
            gw = gws[k]
            stop(gw.p)
            fill = store_bench("fill", engine, os.path.join(gw.dir, "state"), "100000")
            size_mb = store_size_mb(os.path.join(gw.dir, "state"))
            after = {"KILL": [gw.start() * 1000], "TERM": []}
            # The gateway must read a filled session: log in once more and count nothing lost below.
            for how in ("KILL", "TERM"):
                for _ in range(5 if how == "TERM" else 4):
                    if how == "KILL":
                        gw.p.kill(); gw.p.wait()
                    else:
                        stop(gw.p)
                    after[how].append(gw.start() * 1000)
            for how in ("KILL", "TERM"):
                t = after[how]
                row(f"start → ready, 100k sessions, store = {STORE_LABEL[k]}, after SIG{how}", f"{statistics.median(t):.1f} ms",
                    "goal 50 ms", f"{statistics.median(t) / 50:.2f}× goal",
                    f"median of {len(t)}: {', '.join(f'{x:.0f}' for x in t)} ms; {size_mb:.0f} MB on disk; filled by "
                    f"store-bench at {fill['per_sec']}/s ({fill['secs']} s for {fill['sessions']} sessions)")
        for gw in gws.values():
            stop(gw.p)
    finally:
        for gw in gws.values():
            gw.stop()
        stop(up)
        redis.stop()
        shutil.rmtree(up_dir, ignore_errors=True)
        shutil.rmtree(keys, ignore_errors=True)
    bench_store_crates()


def bench_store_crates():
    """The embedded store measured directly (store-bench, no HTTP): write latency, writes/s, disk under TTL churn."""
    print("store crates: fjall with fsync every 1s and with fsync always — per write, under TTL churn", flush=True)
    engines = ["fjall", "fjall-always"]
    lat = {e: [] for e in engines}
    churn = {e: [] for e in engines}
    for _ in range(3):
        for e in engines:
            d = tempfile.mkdtemp(prefix="fedgate-bench-crate.")
            try:
                lat[e].append(store_bench("latency", e, os.path.join(d, "state")))
            finally:
                shutil.rmtree(d, ignore_errors=True)
    for e in engines:
        r = lat[e]
        row(f"one write (700 B, one writer), {e}", f"{statistics.median(x['write_us_p50'] for x in r):.0f} µs p50",
            "—", "—", "rounds p50/p99/mean µs: " + "; ".join(f"{x['write_us_p50']}/{x['write_us_p99']}/{x['write_us_mean']}" for x in r))
        row(f"writes/s, 16 concurrent writers, {e}", f"{statistics.median(x['writes_per_sec_16'] for x in r):.0f}/s", "—", "—",
            f"rounds {', '.join(str(x['writes_per_sec_16']) for x in r)}")
    for e in engines:
        d = tempfile.mkdtemp(prefix="fedgate-bench-churn.")
        try:
            churn[e] = store_bench("churn", e, os.path.join(d, "state"), "40", "2000")
        finally:
            shutil.rmtree(d, ignore_errors=True)
        c = churn[e]
        row(f"disk under TTL churn (2,000 sessions/s with a 2 s TTL, 40 s), {e}", f"{c['mb_last']} MB at the end",
            "—", "—", f"{c['written']} sessions written ({c['per_sec']}/s, ~{c['live_at_end']} live); "
            f"{c['mb_quarter']} MB at 10 s, {c['mb_half']} MB at 20 s, max {c['mb_max']} MB")


def resp_command(port, *args):
    """One command to Redis over RESP (binary-safe, unlike redis-cli's text output); its reply's payload."""
    out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in (x if isinstance(x, bytes) else str(x).encode() for x in args))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(out)
        f = s.makefile("rb")
        line = f.readline()
        if line.startswith(b"$"):
            n = int(line[1:])
            return None if n < 0 else f.read(n + 2)[:-2]
        if line.startswith(b"*"):
            items = []
            for _ in range(int(line[1:])):
                n = int(f.readline()[1:])
                items.append(f.read(n + 2)[:-2])
            return items
        return line.strip()


STORE_RSS_SESSIONS = 1_000_000


def bench_store_rss():
    """1M sessions in Redis, requests with cookies spread over all of them: the gateway's memory stays at the first
    level's bound (entries read in the last one or two cache_ttl), not at the number of sessions."""
    import base64, hashlib
    print(f"storerss: {STORE_RSS_SESSIONS:,} sessions in Redis, requests spread over all of them", flush=True)
    redis = RedisServer()
    up_dir = tempfile.mkdtemp(prefix="fedgate-bench-storerss.")
    up_port = free_port()
    conf = os.path.join(up_dir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(nginx_conf(up_dir, up_port, {"up": up_port, "loc": 'location / { return 200 "ok\\n"; }'}))
    up = subprocess.Popen(["nginx", "-p", up_dir, "-c", conf, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    STARTED.append(up)
    gw = Gateway(static_dir_toml([("bench", "bench-pw")]) + f"""[login]
throttle = false
[proxy]
upstream = "http://127.0.0.1:{up_port}"
""" + store_toml("redis", None, redis))
    try:
        wait_http(f"http://127.0.0.1:{up_port}/")
        gw.start()
        idle_kb = rss_kb(gw.p.pid)
        # The exact bytes the gateway writes for a session: one real login's record, read back from Redis.
        login_cookie(gw, "bench", "bench-pw")
        keys = resp_command(redis.port, "KEYS", "fedgate:{s:*")
        assert len(keys) == 1, keys
        value = resp_command(redis.port, "GET", keys[0])
        ttl_ms = int(resp_command(redis.port, "PTTL", keys[0])[1:])
        # 1M more under ids s000…001 … (43 characters, like the gateway's), keyed as the gateway keys them:
        # key_prefix + {s: + base64url(first 16 bytes of SHA-256(id))}.
        t0 = time.monotonic()
        pipe = subprocess.Popen(["redis-cli", "-p", str(redis.port), "--pipe"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        head = b"*5\r\n$3\r\nSET\r\n"
        tail = b"$%d\r\n%s\r\n$2\r\nPX\r\n$%d\r\n%d\r\n" % (len(value), value, len(str(ttl_ms)), ttl_ms)
        chunk = []
        for i in range(1, STORE_RSS_SESSIONS + 1):
            sid = b"s%042d" % i
            key = b"fedgate:{s:" + base64.urlsafe_b64encode(hashlib.sha256(sid).digest()[:16]).rstrip(b"=") + b"}"
            chunk.append(head + b"$%d\r\n%s\r\n" % (len(key), key) + tail)
            if len(chunk) == 10000:
                pipe.stdin.write(b"".join(chunk)); chunk = []
        pipe.stdin.write(b"".join(chunk)); pipe.stdin.close()
        fill_out = pipe.stdout.read().decode(errors="replace").strip().splitlines()
        pipe.wait(120)
        fill_s = time.monotonic() - t0
        n = int(resp_command(redis.port, "DBSIZE")[1:])
        redis_mb = int([l for l in redis.cli("INFO", "memory").splitlines() if l.startswith("used_memory:")][0].split(":")[1]) / 1e6
        script = os.path.join(up_dir, "spread.lua")
        with open(script, "w") as f:
            f.write(f"""math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/app", {{["Cookie"] = string.format("fedgate_session=s%042d", math.random(1, {STORE_RSS_SESSIONS}))}})
end
""")
        before_kb = rss_kb(gw.p.pid)
        c0 = redis.commands()
        rounds = []
        for _ in range(3):
            r = wrk(gw.base + "/app", secs=8, conns=32, script=script)
            rounds.append((r["rps"], wrk_requests(r), r["errors"], rss_kb(gw.p.pid)))
        cmds = redis.commands() - c0
        hwm = hwm_kb(gw.p.pid)
        total = sum(x[1] for x in rounds)
        peak_rate = max(x[0] for x in rounds)
        bound = int(peak_rate * 1.0)  # entries read within two cache_ttl (2 × 500 ms: two generations) at the measured rate
        row(f"peak RSS, {n - 1:,} sessions in Redis, requests over all of them", f"{hwm / 1024:.1f} MB",
            f"idle {idle_kb / 1024:.1f} MB (0 sessions); Redis holds them in {redis_mb:.0f} MB",
            f"{hwm / max(idle_kb, 1):.2f}× idle",
            f"{total:,} requests in 3 rounds of 8 s ({', '.join(f'{x[0]:.0f}/s' for x in rounds)}; non-2xx {sum(x[2] for x in rounds)}); "
            f"RSS after each {', '.join(f'{x[3] / 1024:.1f}' for x in rounds)} MB (before {before_kb / 1024:.1f}); "
            f"first level bound: entries read in the last two cache_ttl (2 × 500 ms, two generations) ≈ {bound:,} at this rate, capped by session.max_sessions; "
            f"{cmds / max(total, 1):.2f} Redis commands per request; filled in {fill_s:.1f} s ({fill_out[-1] if fill_out else ''})")
    finally:
        gw.stop()
        stop(up)
        redis.stop()
        shutil.rmtree(up_dir, ignore_errors=True)


def main(argv):
    wanted = set(argv) or {"startup", "sessions", "ldap", "oidc", "broker", "saml", "proxy", "proxyinstr", "scim", "store"}
    print(f"fedgate benchmarks — {time.strftime('%Y-%m-%d %H:%M')} — {os.cpu_count()} cores — load generator: wrk", flush=True)
    try:
        if "startup" in wanted:
            bench_startup()
        if "sessions" in wanted:
            bench_sessions()
        if "ldap" in wanted:
            bench_ldap()
        if "oidc" in wanted:
            bench_oidc()
        if "oidc" in wanted or "codeflow" in wanted:
            bench_codeflow()
        if "broker" in wanted:
            bench_broker()
        if "saml" in wanted:
            bench_saml()
        if "proxy" in wanted:
            bench_proxy()
        if "scim" in wanted:
            bench_scim()
        if "proxyinstr" in wanted:
            bench_proxy_instructions()
        if "store" in wanted:
            bench_store()
        if "storerss" in wanted:
            bench_store_rss()
        if "storecrates" in wanted:
            bench_store_crates()
    finally:
        for p in STARTED:
            stop(p)
    lines = ["| measurement | fedgate | peer / limit | ratio | notes |", "|---|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in ROWS]
    table = "\n".join(lines)
    print("\n" + table)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "last.md"), "w") as f:
        f.write(table + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
