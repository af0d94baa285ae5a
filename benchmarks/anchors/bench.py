#!/usr/bin/env python3
# ruff: noqa
# fmt: off
# (vendored: see README.md; kept as upstream wrote it, not linted or formatted here)
"""Loopback one-file transfer anchors: wall time, MB/s, peak RSS and CPU per side, sha256 check.

usage: /tmp/anchors/venv/bin/python bench.py [--sizes 1g,256m] [--runs 3] [--methods m1,m2|all]
                                             [--out /tmp/anchors/results/bench.json]
Needs the private sshd on 127.0.0.1:2222 (sshd_ctl.sh start) for ssh-based methods.

Per run: dst removed + `sync` (untimed); timer starts when the client process is spawned and
stops when the completion process exits (so ssh handshake / libtorrent session start count).
Source file is hot in page cache; dst written to page cache (no fsync).
RSS: psutil-tree sampling every 50 ms, peak of the SUM of VmRSS (and RssAnon) over each side's
process tree.  CPU: exact per-process rusage (os.wait4) minus CPU already used before t0;
for the sshd side: delta of the sshd listener's cutime+cstime (its reaped session tree).
"""
import argparse, hashlib, json, os, signal, statistics, subprocess, sys, threading, time
import psutil

A = "/tmp/anchors"
HERE = os.path.dirname(os.path.abspath(__file__))
PY = f"{A}/venv/bin/python"
KEY = f"{A}/ssh/client_ed25519"
SSH_O = ["-F", "/dev/null", "-i", KEY, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "Compression=no"]
CIPH = {"chacha": "chacha20-poly1305@openssh.com", "aesgcm": "aes128-gcm@openssh.com"}
SIZES = {"1g": "file1g", "256m": "file256m"}
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid, children=False):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        i = 13 if not children else 15  # utime,stime  | cutime,cstime (0-based after ')')
        return (int(fields[i - 2]) + int(fields[i - 1])) / TICK
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0


def proc_mem(pid):
    rss = anon = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return rss, anon  # KiB


def sshd_pid():
    with open(f"{A}/ssh/sshd.bgpid") as f:
        return int(f.read())


class Sampler(threading.Thread):
    """sides: name -> list of (root_pid, include_root). Peak of summed RSS per side."""

    def __init__(self, sides, interval=0.05):
        super().__init__(daemon=True)
        self.sides, self.interval = sides, interval
        self.peak = {k: [0, 0] for k in sides}
        self.names = {k: set() for k in sides}
        self.stop_ev = threading.Event()

    def sample(self):
        for side, roots in self.sides.items():
            tot_rss = tot_anon = 0
            for root, inc in list(roots):
                try:
                    p = psutil.Process(root)
                    procs = ([p] if inc else []) + p.children(recursive=True)
                except psutil.Error:
                    continue
                for q in procs:
                    r, an = proc_mem(q.pid)
                    tot_rss += r; tot_anon += an
                    try:
                        self.names[side].add(q.name())
                    except psutil.Error:
                        pass
            pk = self.peak[side]
            pk[0] = max(pk[0], tot_rss); pk[1] = max(pk[1], tot_anon)

    def run(self):
        while not self.stop_ev.is_set():
            self.sample()
            self.stop_ev.wait(self.interval)


class Proc:
    """Popen + reaper thread collecting exact rusage via os.wait4."""

    def __init__(self, cmd, side, stdout=subprocess.PIPE, **kw):
        self.cmd, self.side = cmd, side
        self.p = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, **kw)
        self.pid = self.p.pid
        self.t_exit = self.ru = self.status = None
        self.cpu_at_t0 = 0.0
        self.out_lines = []

    def readline(self):
        line = self.p.stdout.readline()
        self.out_lines.append(line)
        return line

    def start_reaper(self):
        def reap():
            _, st, ru = os.wait4(self.pid, 0)
            self.t_exit, self.status, self.ru = time.perf_counter(), st, ru
            self.p.returncode = os.waitstatus_to_exitcode(st)
        self.th = threading.Thread(target=reap, daemon=True); self.th.start()

    def join(self, timeout=None):
        self.th.join(timeout)
        return self.t_exit is not None

    def mark_t0(self):
        self.cpu_at_t0 = proc_cpu(self.pid)

    def cpu(self):
        return self.ru.ru_utime + self.ru.ru_stime - self.cpu_at_t0

    def rest_output(self):
        out = "".join(self.out_lines) + (self.p.stdout.read() if self.p.stdout else "")
        err = self.p.stderr.read() if self.p.stderr else ""
        return out, err


def wait_listen(port, timeout=20):
    t = time.time()
    while time.time() - t < timeout:
        for c in psutil.net_connections("tcp4"):
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port:
                return True
        time.sleep(0.02)
    raise RuntimeError(f"port {port} never listened")


# ---------------------------------------------------------------- methods
# each returns dict(server=[cmd or None], server_side, client=cmd, client_side, ready=fn, sshd_side=...)

def m_tcp_py(src, dst, size):
    return dict(server=[PY, f"{HERE}/tcp_recv.py", "5001", dst], server_side="recv", ready="READY",
                client=[PY, f"{HERE}/tcp_send.py", "5001", src], client_side="send", done="server")


def m_tcp_socat(src, dst, size):
    return dict(server=["socat", "-u", "-b", "1048576", "TCP4-LISTEN:5002,bind=127.0.0.1,reuseaddr",
                        f"CREATE:{dst}"], server_side="recv", ready=5002,
                client=["socat", "-u", "-b", "1048576", f"OPEN:{src},rdonly", "TCP4:127.0.0.1:5002"],
                client_side="send", done="server")


def _ssh(cipher):
    return ["-c", CIPH[cipher]] + SSH_O


def m_scp(cipher, legacy=False):
    def f(src, dst, size):
        cmd = ["scp", "-q"] + (["-O"] if legacy else []) + ["-P", "2222"] + _ssh(cipher) + [src, f"root@127.0.0.1:{dst}"]
        return dict(client=cmd, client_side="send", sshd_side="recv", done="client")
    return f


def m_sftp(cipher):
    def f(src, dst, size):
        batch = f"{A}/ssh/put_{size}.batch"
        with open(batch, "w") as fh:
            fh.write(f"put {src} {dst}\n")
        cmd = ["sftp", "-q", "-b", batch, "-P", "2222"] + _ssh(cipher) + ["root@127.0.0.1"]
        return dict(client=cmd, client_side="send", sshd_side="recv", done="client")
    return f


def m_rsync(cipher):
    def f(src, dst, size):
        e = " ".join(["ssh", "-p", "2222"] + _ssh(cipher))
        cmd = ["rsync", "-e", e, src, f"root@127.0.0.1:{dst}"]
        return dict(client=cmd, client_side="send", sshd_side="recv", done="client")
    return f


def m_lt(kind, enc, tune="default"):
    def f(src, dst, size):
        tor = f"{A}/torrents/{SIZES[size]}.{kind}.torrent"
        return dict(server=[PY, f"{HERE}/lt_xfer.py", "seed", tor, os.path.dirname(src), "--port", "6881", "--enc", enc, "--tune", tune],
                    server_side="send", ready="READY", server_stop=True,
                    client=[PY, f"{HERE}/lt_xfer.py", "get", tor, os.path.dirname(dst), "--port", "6882",
                            "--peer", "6881", "--enc", enc, "--tune", tune], client_side="recv", done="client")
    return f


def m_http(src, dst, size):
    return dict(server=[PY, "-m", "http.server", "8000", "--bind", "127.0.0.1", "--directory", os.path.dirname(src)],
                server_side="send", ready=8000, server_stop=True,
                client=["curl", "-sS", "-o", dst, f"http://127.0.0.1:8000/{os.path.basename(src)}"],
                client_side="recv", done="client")


METHODS = {
    "tcp_py_sendfile": m_tcp_py,
    "tcp_socat": m_tcp_socat,
    "scp_chacha": m_scp("chacha"), "scp_aesgcm": m_scp("aesgcm"),
    "scpO_chacha": m_scp("chacha", True), "scpO_aesgcm": m_scp("aesgcm", True),
    "sftp_chacha": m_sftp("chacha"), "sftp_aesgcm": m_sftp("aesgcm"),
    "rsync_chacha": m_rsync("chacha"), "rsync_aesgcm": m_rsync("aesgcm"),
    "lt_hybrid_plain": m_lt("hybrid", "plain"), "lt_hybrid_rc4": m_lt("hybrid", "rc4"),
    "lt_v2_plain": m_lt("v2", "plain"), "lt_v2_rc4": m_lt("v2", "rc4"),
    "lt_hybrid_plain_hp": m_lt("hybrid", "plain", "hp"), "lt_hybrid_rc4_hp": m_lt("hybrid", "rc4", "hp"),
    "lt_v2_plain_hp": m_lt("v2", "plain", "hp"),
    "http_server_curl": m_http,
}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def one_run(name, size, ref):
    src = f"{A}/src/{SIZES[size]}"
    dst = f"{A}/dst/{SIZES[size]}"
    if os.path.exists(dst):
        os.unlink(dst)
    subprocess.run(["sync"], check=True)
    spec = METHODS[name](src, dst, size)
    nbytes = os.path.getsize(src)
    server = None
    if spec.get("server"):
        server = Proc(spec["server"], spec["server_side"])
        if spec["ready"] == "READY":
            line = server.readline()
            if not line.startswith("READY"):
                raise RuntimeError(f"server not ready: {line!r} {server.rest_output()}")
        else:
            wait_listen(spec["ready"])
        server.start_reaper()
    sides = {"send": [], "recv": []}
    if server:
        sides[server.side].append((server.pid, True))
    # bcai-transfer: processes that run already (a daemon the client drives) count on their side
    side_pids = spec.get("side_pids", [])
    for side, pid in side_pids:
        sides[side].append((pid, True))
    side_cpu0 = {pid: proc_cpu(pid) for _, pid in side_pids}
    sshd_cut0 = None
    if spec.get("sshd_side"):
        sp = sshd_pid()
        sides[spec["sshd_side"]].append((sp, False))
        sshd_cut0 = proc_cpu(sp, children=True)
    if server:
        server.mark_t0()
    sampler = Sampler(sides)
    t0 = time.perf_counter()
    client = Proc(spec["client"], spec["client_side"])
    client.start_reaper()
    sides[client.side].append((client.pid, True))
    sampler.start()
    timeout = 600
    if spec["done"] == "server":
        server.join(timeout); client.join(timeout)
        t1 = server.t_exit
    else:
        client.join(timeout)
        t1 = client.t_exit
    if spec.get("server_stop") and server:
        server.p.send_signal(signal.SIGTERM)
        if not server.join(15):
            server.p.kill(); server.join(5)
    sshd_cpu = None
    if sshd_cut0 is not None:
        sp = sshd_pid()
        for _ in range(200):  # wait until the session tree is reaped by the listener
            if not psutil.Process(sp).children():
                break
            time.sleep(0.025)
        sshd_cpu = proc_cpu(sp, children=True) - sshd_cut0
    sampler.stop_ev.set(); sampler.join()
    wall = t1 - t0
    cpu = {"send": 0.0, "recv": 0.0}
    maxrss_single = {"send": 0, "recv": 0}
    logs = {}
    for pr in (server, client):
        if pr is None:
            continue
        cpu[pr.side] += pr.cpu()
        maxrss_single[pr.side] = max(maxrss_single[pr.side], pr.ru.ru_maxrss)
        out, err = pr.rest_output()
        logs[pr.side] = {"rc": pr.p.returncode, "out": out[-600:], "err": err[-600:]}
    if sshd_cpu is not None:
        cpu[spec["sshd_side"]] += sshd_cpu
    for side, pid in side_pids:  # bcai-transfer: their CPU over the timed window
        cpu[side] += proc_cpu(pid) - side_cpu0[pid]
    if spec.get("cleanup"):  # bcai-transfer: stop what the spec started (untimed)
        spec["cleanup"]()
    got = sha256(dst) if os.path.exists(dst) else None
    ok = got == ref and os.path.getsize(dst) == nbytes
    rec = dict(method=name, size=size, bytes=nbytes, wall_s=round(wall, 4), MBps=round(nbytes / 1e6 / wall, 1),
               send_peak_rss_MiB=round(sampler.peak["send"][0] / 1024, 1),
               recv_peak_rss_MiB=round(sampler.peak["recv"][0] / 1024, 1),
               send_peak_anon_MiB=round(sampler.peak["send"][1] / 1024, 1),
               recv_peak_anon_MiB=round(sampler.peak["recv"][1] / 1024, 1),
               send_wait4_maxrss_MiB=round(maxrss_single["send"] / 1024, 1) if maxrss_single["send"] else None,
               recv_wait4_maxrss_MiB=round(maxrss_single["recv"] / 1024, 1) if maxrss_single["recv"] else None,
               send_cpu_s=round(cpu["send"], 3), recv_cpu_s=round(cpu["recv"], 3),
               send_procs=sorted(sampler.names["send"]), recv_procs=sorted(sampler.names["recv"]),
               sha256_ok=ok, logs=logs)
    if not ok:
        rec["sha256_got"] = got
    return rec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1g,256m")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--methods", default="all")
    ap.add_argument("--out", default=f"{A}/results/bench.json")
    a = ap.parse_args()
    refs = {}
    with open(f"{A}/src/SHA256SUMS") as f:
        for line in f:
            h, n = line.split()
            refs[n] = h
    methods = [m for m in METHODS if not m.endswith("_hp")] if a.methods == "all" else a.methods.split(",")
    results = []
    if os.path.exists(a.out):
        with open(a.out) as f:
            results = json.load(f)
    for size in a.sizes.split(","):
        for m in methods:
            for r in range(a.runs):
                rec = one_run(m, size, refs[SIZES[size]])
                rec["run"] = r
                results.append(rec)
                print(f"{m:18s} {size:5s} run{r} {rec['wall_s']:7.3f}s {rec['MBps']:8.1f} MB/s "
                      f"sendRSS {rec['send_peak_rss_MiB']:7.1f} recvRSS {rec['recv_peak_rss_MiB']:7.1f} MiB "
                      f"cpu s/r {rec['send_cpu_s']:.2f}/{rec['recv_cpu_s']:.2f} ok={rec['sha256_ok']}", flush=True)
                with open(a.out, "w") as f:
                    json.dump(results, f, indent=1)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
