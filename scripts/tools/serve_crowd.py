#!/usr/bin/env python3
"""Measures `vcpclip serve` under held connections (README "Serving", the figures of issue 29).

  serve_crowd.py --binary build/vcpclip -k runs/demo/train/last.pth --image IMG.png
                 [--idle 600 --stalled 300 --clients 8 --predictions 240] [--hold 10000 --hold-seconds 30]
                 [--json out.json] [-- extra serve flags, e.g. --calibration F --class bottle]

Starts the server on a free loopback port with connection timeouts of 600 s (so that no held
connection is cut: the worst case for the server; its defaults would end stalled clients after
10 s), then:
  1. baseline: `clients` keep-alive clients make `predictions` POST /v1/predict in all, idle server;
  2. crowd: `idle` keep-alive clients (one answered request each, then silence) and `stalled`
     clients (half stop mid-head, half mid-body) hold connections while the same clients make the
     same predictions; a probe asks GET /v2/health/live every 0.25 s (own connection, 2 s limit);
  3. after the held connections close: predictions and live again;
  4. hold: `hold` fresh connections (no byte sent) held for `hold-seconds`, probed every 0.25 s;
  5. SIGTERM: the exit status.
Prints one JSON object (errors, p50/p99 latency, probe max, RSS before/peak) and writes it to --json.
Loopback only.
"""
import argparse
import http.client
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def percentile(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q / 100.0 * (len(v) - 1))))]


class Prober(threading.Thread):
    """GET /v2/health/live every 0.25 s on a fresh connection; records (status, seconds)."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.results, self.stop = port, [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            t0 = time.perf_counter()
            status = 0
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/v2/health/live", headers={"Connection": "close"})
                r = c.getresponse()
                r.read()
                status = r.status
                c.close()
            except Exception:
                status = 0
            self.results.append((status, time.perf_counter() - t0))
            self.stop.wait(0.25)

    def summary(self):
        times = [t for _, t in self.results]
        bad = sum(1 for s, t in self.results if s != 200 or t > 0.2)
        return {"probes": len(self.results), "over_0.2s_or_failed": bad, "max_s": max(times) if times else None}


def predictions(port, body, clients, total):
    """`clients` keep-alive threads make `total` predictions; (errors, latencies in s)."""
    lock, latencies, errors, counter = threading.Lock(), [], [0], [0]

    def client():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if counter[0] >= total:
                    return
                counter[0] += 1
            t0 = time.perf_counter()
            ok = False
            try:
                c.request("POST", "/v1/predict", body=body, headers={"Content-Type": "image/png"})
                r = c.getresponse()
                ok = r.status == 200 and "score" in json.loads(r.read())
            except Exception:
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            with lock:
                latencies.append(time.perf_counter() - t0)
                errors[0] += 0 if ok else 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors[0], latencies


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    return s


def open_crowd(port, idle, stalled, body):
    held = []
    for _ in range(idle):
        s = connect(port)
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"}"):
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("an idle client's connection closed")
            data += chunk
        held.append(s)
    for i in range(stalled):
        s = connect(port)
        if i % 2:
            s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Ty")
        else:
            s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body[: len(body) // 2])
        held.append(s)
    return held


def stats(errors, latencies):
    return {"requests": len(latencies), "errors": errors, "p50_s": percentile(latencies, 50),
            "p99_s": percentile(latencies, 99)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("-k", "--checkpoint", required=True)
    ap.add_argument("-c", "--config", default="")
    ap.add_argument("--image", required=True)
    ap.add_argument("--idle", type=int, default=600)
    ap.add_argument("--stalled", type=int, default=300)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--predictions", type=int, default=240)
    ap.add_argument("--hold", type=int, default=10000)
    ap.add_argument("--hold-seconds", type=float, default=30)
    ap.add_argument("--json", default="")
    ap.add_argument("extra", nargs="*")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    body = open(a.image, "rb").read()
    log = tempfile.NamedTemporaryFile(prefix="serve_crowd_", suffix=".log", delete=False)
    cmd = [a.binary, "serve", "-k", a.checkpoint, "--port", "0"] + (["-c", a.config] if a.config else [])
    for k in ("header_timeout_s", "body_timeout_s", "keep_alive_timeout_s", "timeout_s"):
        cmd += ["--set", f"serve.{k}=600"]
    cmd += ["--set", "serve.max_connections=%d" % (max(a.hold, a.idle + a.stalled) + 100)] + a.extra
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    out = {"command": cmd, "client_fd_limit": hard}
    try:
        port = None
        for _ in range(3000):
            m = re.search(r"listening on http://[^:]+:([0-9]+)/", open(log.name).read())
            if m:
                port = int(m.group(1))
                break
            time.sleep(0.1)
        while "model ready" not in open(log.name).read():
            if server.poll() is not None:
                raise RuntimeError(open(log.name).read())
            time.sleep(0.2)
        m = re.search(r"file descriptors: limit (\S+)", open(log.name).read())
        out["server_fd_limit"] = m.group(1) if m else None
        predictions(port, body, 2, 16)  # warm-up
        out["baseline"] = stats(*predictions(port, body, a.clients, a.predictions))
        rss0 = rss_mb(server.pid)
        held = open_crowd(port, a.idle, a.stalled, body)
        prober = Prober(port)
        prober.start()
        crowd = stats(*predictions(port, body, a.clients, a.predictions))
        time.sleep(1)
        prober.stop.set()
        prober.join()
        crowd.update(prober.summary())
        crowd.update({"idle": a.idle, "stalled": a.stalled, "rss_before_mb": rss0, "rss_with_crowd_mb": rss_mb(server.pid)})
        crowd["p99_target_s"] = max(1.0, 3 * out["baseline"]["p99_s"])
        out["crowd"] = crowd
        for s in held:
            s.close()
        time.sleep(1)
        out["after_crowd"] = stats(*predictions(port, body, a.clients, 32))
        rss1 = rss_mb(server.pid)
        prober = Prober(port)
        prober.start()
        held, t0 = [], time.perf_counter()
        for _ in range(a.hold):
            held.append(connect(port))
        opened_s = time.perf_counter() - t0
        peak = rss_mb(server.pid)
        end = time.time() + a.hold_seconds
        while time.time() < end:
            time.sleep(1)
            peak = max(peak, rss_mb(server.pid))
        prober.stop.set()
        prober.join()
        hold = {"connections": len(held), "opened_in_s": opened_s, "held_s": a.hold_seconds, "rss_before_mb": rss1,
                "rss_peak_mb": peak}
        hold.update(prober.summary())
        for s in held:
            s.close()
        time.sleep(1)
        hold["predictions_after"] = stats(*predictions(port, body, 2, 8))
        out["hold"] = hold
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            out["exit_status"] = server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
            out["exit_status"] = "killed after 120 s"
    text = json.dumps(out, indent=1)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")
    os.unlink(log.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
