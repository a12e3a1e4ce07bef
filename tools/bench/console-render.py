#!/usr/bin/env python3
"""Server time of the web console's pages with a long history.

Starts `coffer serve` (the binary named by COFFER_BIN) on a fresh SQLite data directory,
makes one customer with two wallets and N transfers between them (2N operations in the
history), signs in to the console, then times GET /app, /app/history and /app/money
(time to the first byte on loopback, which is the server's time) and prints the median
and the worst of each.

    COFFER_BIN=target/release/coffer tools/bench/console-render.py [transfers] [rounds]
"""
import http.cookiejar, json, threading, os, re, statistics, subprocess, sys, tempfile, time, urllib.parse, urllib.request, uuid

transfers = int(sys.argv[1]) if len(sys.argv) > 1 else 500
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 30
binary = os.environ["COFFER_BIN"]
data = tempfile.mkdtemp(prefix="coffer-render-")
env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_") and k != "DATABASE_URL"}
env.update(COFFER_LOG_FORMAT="json", COFFER_ARGON2_MEMORY_KIB="1024", COFFER_MONEY_REQUESTS_PER_MINUTE="1000000")
server = subprocess.Popen([binary, "serve", "--data-dir", data, "--listen", "127.0.0.1:0", "--grpc-listen", "none"],
                          env=env, stderr=subprocess.PIPE, text=True)
base = None
for line in server.stderr:
    try:
        entry = json.loads(line)
    except ValueError:
        continue
    if entry.get("message") == "listening":
        base = "http://" + entry["address"]
        break
assert base, "the server did not start"
# Keep reading the server's log so that it never blocks on a full pipe.
threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()


def api(method, path, body=None, token=None, key=None):
    request = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body else None)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", "Bearer " + token)
    if key:
        request.add_header("idempotency-key", key)
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"null")


email = f"render-{uuid.uuid4().hex[:8]}@example.com"
password = "correct horse battery staple"
api("POST", "/v1/auth/register", {"email": email, "password": password, "name": "Render Test"})
token = api("POST", "/v1/auth/login", {"email": email, "password": password})["access_token"]
a = api("POST", "/v1/wallets", {"currency": "USD"}, token, str(uuid.uuid4()))["id"]
b = api("POST", "/v1/wallets", {"currency": "USD", "type": "savings"}, token, str(uuid.uuid4()))["id"]
api("POST", f"/v1/wallets/{a}/top-ups", {"amount": 10_000_000, "payment_method": "tok_visa"}, token, str(uuid.uuid4()))
for i in range(transfers):
    api("POST", "/v1/transfers", {"from_wallet_id": a, "to_wallet_id": b, "amount": 1 + i % 97, "description": f"bench {i}"},
        token, str(uuid.uuid4()))

jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
form = opener.open(base + "/app/sign-in").read().decode()
csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form).group(1)
body = urllib.parse.urlencode({"csrf": csrf, "email": email, "password": password}).encode()
sign_in = urllib.request.Request(base + "/app/sign-in", data=body, headers={"origin": base})
opener.open(sign_in).read()

print(f"{2 * transfers + 1} operations in the history; {rounds} rounds per page")
for path in ["/app", "/app/history", "/app/money", f"/app/wallets/{a}"]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        response = opener.open(base + path)
        response.read(1)
        times.append((time.perf_counter() - start) * 1000)
        response.read()
        assert response.status == 200
    print(f"{path:40} median {statistics.median(times):6.1f} ms   worst {max(times):6.1f} ms")
server.terminate()
server.wait()
