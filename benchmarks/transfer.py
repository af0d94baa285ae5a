"""Transfer benchmark: `bcai serve` -> `bcai get` over loopback, in the same run as the anchors.

Runs the anchors harness (vendored in benchmarks/anchors, see its README; another copy with
``--anchors DIR`` or ``BCAI_ANCHORS``; set up once with ``./setup.sh && ./sshd_ctl.sh start``)
in-process: its ``one_run`` measures every method the same way (timer from client spawn to
client exit, peak summed RSS of each side's process tree, CPU from wait4, sha256 of the
received file). This script adds two methods (Noise XX ChaChaPoly, every chunk verified
against its Merkle chunk root, receipts signed and stored):

- ``bcai``: the timed client is ``bcai get`` doing the transfer in its own process;
- ``bcai_daemon``: a receiver ``bcai serve`` (its own --listen port) is started untimed before
  the clock, and the timed client is the same ``bcai get``, which goes through that daemon's
  local API (no engine start-up in the client). The daemon's pid is on the recv side: its RSS
  is in the sampled recv tree and its CPU over the timed window in ``recv_cpu_s``; its own
  peak (``VmHWM``, start-up included) is ``recv_daemon_hwm_MiB``;
- ``bcai_link`` / ``bcai_daemon_link``: the same with ``get --link``: each received byte is
  written once, into the ``-o`` file, and the receiver's store links to it instead of keeping
  a second copy (docs/store.md "Linked chunks"; scp and libtorrent write one copy too).

It prints throughput, RSS and the ratios against scp (chacha20-poly1305) and libtorrent v2.

    .venv/bin/python benchmarks/transfer.py [--sizes 1g,256m] [--runs 3]
        [--methods bcai,bcai_daemon,scp_chacha,scp_aesgcm,lt_v2_plain] [--chunk-size auto]
        [--fsync] [--anchors DIR]

The source files are the anchors' /tmp/anchors/src/file{1g,256m}; the provider's store gets
them with ``bcai add`` (untimed). Each ``bcai get`` runs against a fresh receiver data dir and
writes ``-o`` the anchors' destination file. By default the receiver skips per-chunk fsync
(``--no-fsync``; ``serve --no-fsync`` for the receiver daemon), as scp, libtorrent and curl
do; ``--fsync`` measures the durable store.
The JSON ``elapsed`` of ``bcai get`` (transfer only, without interpreter start-up) is
reported next to the harness's wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: The anchors harness (scp, sftp, libtorrent on loopback): the vendored copy, or the folder
#: given with --anchors / BCAI_ANCHORS; never a machine path baked in here.
ANCHORS = Path(os.environ.get("BCAI_ANCHORS", REPO / "benchmarks" / "anchors"))
A = Path("/tmp/anchors")  # the harness's scratch dir (it creates it)
WORK = A / "bcai"
PORT = 47400  #: the provider's peer port (--port); the receiver daemon's is the next one
REFS = ("scp_chacha", "lt_v2_plain")
os.environ.setdefault("BCAI_INSECURE_FAST_KDF", "1")
os.environ.setdefault("BCAI_PASSPHRASE", "bench")
os.environ.setdefault("BCAI_LOG_LEVEL", "warning")
sys.path.insert(0, str(REPO))

from benchmarks._util import precompile  # noqa: E402
from node.cli import main as bcai_main  # noqa: E402


def _load_harness(anchors: Path) -> Any:
    spec = importlib.util.spec_from_file_location("anchors_bench", anchors / "bench.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _cli(data: Path, *args: str) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    status = bcai_main(["-d", str(data), "--json", *args], stdout=out, stderr=err)
    if status != 0:
        raise SystemExit(f"bcai {args} failed: {out.getvalue()} {err.getvalue()}")
    return json.loads(out.getvalue().splitlines()[-1])


def _ports_free(*ports: int) -> None:
    """The harness only waits for *a* listener on the port: a leftover ``bcai serve`` there
    would be measured instead of this run's. Refuse to start then."""
    import socket

    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                raise SystemExit(
                    f"127.0.0.1:{port} is in use (a leftover `bcai serve` of an earlier run? "
                    f"`ss -ltnp | grep {port}`); stop it first"
                ) from None


def prepare(
    sizes: list[str], chunk_size: str, work: Path = WORK
) -> tuple[Path, str, dict[str, str]]:
    """Provider data dir with the anchors' source files added; returns (dir, address, roots)."""
    provider = work / f"provider-{chunk_size}"
    if not (provider / "config.toml").exists():
        _cli(provider, "init")
    roots = {}
    for size in sizes:
        src = A / "src" / {"1g": "file1g", "256m": "file256m"}[size]
        flag = [] if chunk_size == "auto" else ["--chunk-size", chunk_size]
        roots[size] = _cli(provider, "add", str(src), *flag)["root"]
    address = json.loads((provider / "keystore" / "noise.json").read_text())["address"]
    return provider, address, roots


def bcai_method(
    provider: Path,
    address: str,
    roots: dict[str, str],
    fsync: bool,
    port: int = PORT,
    link: bool = False,
) -> Any:
    counter = {"n": 0}

    def spec(src: str, dst: str, size: str) -> dict[str, Any]:
        # One receiver directory, emptied before each run (untimed), as the harness unlinks
        # the previous destination file before each run of every method: each run then
        # writes into page cache freed by the run before, not into memory the VM never
        # touched (which costs up to ~15x more kernel time per written MiB here).
        counter["n"] += 1
        receiver = provider.parent / "receiver"
        shutil.rmtree(receiver, ignore_errors=True)
        _cli(receiver, "init")  # untimed: the harness starts its clock after building the spec
        py = sys.executable
        client = [
            py,
            "-m",
            "node.cli",
            "-d",
            str(receiver),
            "--json",
            "get",
            roots[size],
            "--peer",
            f"127.0.0.1:{port}/{address}",
            "-o",
            dst,
        ]
        if not fsync:
            client.append("--no-fsync")
        if link:
            client.append("--link")
        return dict(
            server=[py, "-m", "node.cli", "-d", str(provider), "serve", "--listen",
                    f"127.0.0.1:{port}"],
            server_side="send", ready=port, server_stop=True,
            client=client, client_side="recv", done="client",
        )  # fmt: skip

    return spec


def _vm_hwm_mib(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def bcai_daemon_method(
    provider: Path,
    address: str,
    roots: dict[str, str],
    fsync: bool,
    daemons: dict[str, Any],
    port: int = PORT,
    link: bool = False,
) -> Any:
    """The receiver is a running node: ``bcai serve`` on a fresh receiver data dir, started
    (untimed) while the harness builds the spec; the timed client's ``bcai get`` finds it
    (run/api.json) and the daemon does the transfer. ``daemons["hwm"]`` collects its peak."""
    plain = bcai_method(provider, address, roots, fsync, port, link)

    def spec(src: str, dst: str, size: str) -> dict[str, Any]:
        s = plain(src, dst, size)  # fresh receiver dir, provider server, client command
        receiver = provider.parent / "receiver"
        serve = [sys.executable, "-m", "node.cli", "-d", str(receiver), "--json", "serve",
                 "--listen", f"127.0.0.1:{port + 1}", "--no-chain"]  # fmt: skip
        if not fsync:
            serve.append("--no-fsync")
        proc = subprocess.Popen(serve, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        if not proc.stdout.readline():  # its ready line: the API is up, run/api.json written
            raise SystemExit(f"receiver daemon did not start (exit {proc.wait()})")

        def cleanup() -> None:
            daemons.setdefault("hwm", []).append(_vm_hwm_mib(proc.pid))
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

        daemons["live"] = proc  # stopped by main() too if the run fails before cleanup
        s["side_pids"] = [("recv", proc.pid)]
        s["cleanup"] = cleanup
        return s

    return spec


def _elapsed(rec: dict[str, Any]) -> float | None:
    for line in rec.get("logs", {}).get("recv", {}).get("out", "").splitlines():
        with contextlib.suppress(ValueError):
            return float(json.loads(line)["elapsed"])
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1g,256m")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--methods", default="bcai,bcai_daemon,scp_chacha,scp_aesgcm,lt_v2_plain")
    ap.add_argument(
        "--chunk-size",
        default="auto",
        help="the provider's add --chunk-size (default auto, the node's own: 4 MiB chunks for "
        "both sizes)",
    )
    ap.add_argument("--fsync", action="store_true", help="durable receiver store (per-chunk fsync)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "transfer.json")
    ap.add_argument(
        "--work", type=Path, default=WORK, help=f"provider/receiver data dirs (default {WORK})"
    )
    ap.add_argument(
        "--port", type=int, default=PORT, help=f"provider peer port, receiver +1 (default {PORT})"
    )
    ap.add_argument(
        "--anchors",
        type=Path,
        default=ANCHORS,
        help="the anchors harness folder, with bench.py (default: $BCAI_ANCHORS, else the "
        "vendored benchmarks/anchors)",
    )
    a = ap.parse_args()
    if not (a.anchors / "bench.py").exists():
        raise SystemExit(f"no bench.py in {a.anchors}: give --anchors DIR (the anchors harness)")
    if not (A / "src" / "SHA256SUMS").exists():
        raise SystemExit(f"run {a.anchors}/setup.sh && {a.anchors}/sshd_ctl.sh start first")
    sizes = a.sizes.split(",")
    h = _load_harness(a.anchors)
    _ports_free(a.port, a.port + 1)
    precompile()
    provider, address, roots = prepare(sizes, a.chunk_size, a.work)
    h.METHODS["bcai"] = bcai_method(provider, address, roots, a.fsync, a.port)
    daemons: dict[str, Any] = {}
    h.METHODS["bcai_daemon"] = bcai_daemon_method(
        provider, address, roots, a.fsync, daemons, a.port
    )
    h.METHODS["bcai_link"] = bcai_method(provider, address, roots, a.fsync, a.port, link=True)
    h.METHODS["bcai_daemon_link"] = bcai_daemon_method(
        provider, address, roots, a.fsync, daemons, a.port, link=True
    )
    refs = {}
    for line in (A / "src" / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        refs[name] = digest
    results: list[dict[str, Any]] = []
    for size in sizes:
        for method in a.methods.split(","):
            for run in range(a.runs):
                try:
                    rec = h.one_run(method, size, refs[h.SIZES[size]])
                finally:
                    live = daemons.pop("live", None)
                    if live is not None and live.poll() is None:
                        live.kill()
                        live.wait()
                rec["run"] = run
                if method.startswith("bcai"):
                    rec["transfer_s"] = _elapsed(rec)
                if method.startswith("bcai_daemon"):
                    rec["recv_daemon_hwm_MiB"] = daemons["hwm"][-1]
                results.append(rec)
                extra = f" transfer {rec['transfer_s']:.2f}s" if rec.get("transfer_s") else ""
                print(
                    f"{method:16s} {size:5s} run{run} {rec['wall_s']:7.2f}s {rec['MBps']:7.1f} MB/s"
                    f"{extra} RSS send {rec['send_peak_rss_MiB']:.0f} recv "
                    f"{rec['recv_peak_rss_MiB']:.0f} MiB ok={rec['sha256_ok']}",
                    flush=True,
                )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(results, indent=1))
    print(
        "\n| size | method | MB/s median (wall) | MB/s (transfer only) | peak RSS send/recv MiB |"
        " vs scp_chacha | vs lt_v2_plain |"
    )
    print("|---|---|---|---|---|---|---|")
    for size in sizes:
        med: dict[str, float] = {}
        rows = []
        for method in a.methods.split(","):
            recs = [r for r in results if r["method"] == method and r["size"] == size]
            med[method] = statistics.median(r["MBps"] for r in recs)
            t = [r["bytes"] / r["transfer_s"] / 1e6 for r in recs if r.get("transfer_s")]
            rss = (
                max(r["send_peak_rss_MiB"] for r in recs),
                max(r["recv_peak_rss_MiB"] for r in recs),
            )
            rows.append((method, med[method], statistics.median(t) if t else None, rss))
        for method, mbps, tmbps, rss in rows:
            vs = [f"{mbps / med[ref]:.2f}x" if ref in med else "-" for ref in REFS]
            shown = f"{tmbps:.0f}" if tmbps else "-"
            print(
                f"| {size} | {method} | {mbps:.0f} | {shown} | {rss[0]:.0f}/{rss[1]:.0f} | "
                f"{vs[0]} | {vs[1]} |"
            )
    print("wrote", a.out)


if __name__ == "__main__":
    main()
