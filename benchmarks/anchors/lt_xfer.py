#!/usr/bin/env python3
# ruff: noqa
# fmt: off
# (vendored: see README.md; kept as upstream wrote it, not linted or formatted here)
"""libtorrent loopback transfer helper (libtorrent 2.x Python bindings).

  lt_xfer.py make FILE OUT.torrent [--kind hybrid|v2|v1]
  lt_xfer.py seed TORRENT SAVE_DIR --port 6881 [--enc plain|rc4]
  lt_xfer.py get  TORRENT SAVE_DIR --port 6882 --peer 6881 [--enc plain|rc4]
  (seed/get also take --tune default|hp ; hp = lt.high_performance_seed() preset on both ends)

Only loopback: listen on 127.0.0.1, DHT/LSD/UPnP/NAT-PMP off, no trackers, uTP off
(TCP only), downloader connects straight to the seeder with connect_peer().
--enc plain : in/out_enc_policy=pe_disabled, allowed_enc_level=pe_plaintext
--enc rc4   : in/out_enc_policy=pe_forced,   allowed_enc_level=pe_rc4, prefer_rc4
               (BitTorrent MSE/PE = RC4 obfuscation; the strongest libtorrent offers)
"""
import argparse, json, os, resource, signal, sys, time
import libtorrent as lt


def settings(port, enc, tune="default"):
    s = dict(lt.high_performance_seed()) if tune == "hp" else {}
    s.update({
        "listen_interfaces": f"127.0.0.1:{port}",
        "enable_dht": False, "enable_lsd": False,
        "enable_upnp": False, "enable_natpmp": False,
        "enable_incoming_utp": False, "enable_outgoing_utp": False,
        "enable_incoming_tcp": True, "enable_outgoing_tcp": True,
        "announce_to_all_trackers": False, "announce_to_all_tiers": False,
        "alert_mask": lt.alert_category.error | lt.alert_category.status
        | lt.alert_category.storage | lt.alert_category.peer,
        "user_agent": "anchor-bench",
    })
    if enc == "plain":
        s.update(in_enc_policy=int(lt.enc_policy.pe_disabled),
                 out_enc_policy=int(lt.enc_policy.pe_disabled),
                 allowed_enc_level=int(lt.enc_level.pe_plaintext), prefer_rc4=False)
    elif enc == "rc4":
        s.update(in_enc_policy=int(lt.enc_policy.pe_forced),
                 out_enc_policy=int(lt.enc_policy.pe_forced),
                 allowed_enc_level=int(lt.enc_level.pe_rc4), prefer_rc4=True)
    else:
        raise SystemExit("enc must be plain|rc4")
    return s


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def make(a):
    fs = lt.file_storage()
    lt.add_files(fs, a.file)
    flags = {"hybrid": 0, "v2": lt.create_torrent.v2_only, "v1": lt.create_torrent.v1_only}[a.kind]
    ct = lt.create_torrent(fs, 0, flags)  # piece_size 0 = libtorrent default
    t = time.perf_counter()
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(a.file)))
    with open(a.out, "wb") as f:
        f.write(lt.bencode(ct.generate()))
    print(json.dumps({"torrent": a.out, "kind": a.kind, "piece_size": ct.piece_length(),
                      "num_pieces": ct.num_pieces(), "hash_s": round(time.perf_counter() - t, 3)}))


def seed(a):
    ses = lt.session(settings(a.port, a.enc, a.tune))
    p = lt.add_torrent_params()
    p.ti = lt.torrent_info(a.torrent)
    p.save_path = a.save_dir
    t0 = time.perf_counter()
    h = ses.add_torrent(p)  # full hash check before READY (not part of the timed transfer)
    while not h.status().is_seeding:
        for al in ses.pop_alerts():
            if isinstance(al, (lt.torrent_error_alert, lt.file_error_alert)):
                print("ERR", al.message(), file=sys.stderr, flush=True)
        time.sleep(0.05)
    check_s = time.perf_counter() - t0
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    cpu_ready = cpu()
    print("READY", json.dumps({"check_s": round(check_s, 3), "port": ses.listen_port()}), flush=True)
    while not stop:
        ses.pop_alerts()
        time.sleep(0.1)
    st = h.status()
    print(json.dumps({"role": "seed", "uploaded": st.all_time_upload,
                      "cpu_after_ready_s": round(cpu() - cpu_ready, 3)}), flush=True)
    ses.pause()
    del ses


def get(a):
    tstart = time.perf_counter()
    ses = lt.session(settings(a.port, a.enc, a.tune))
    p = lt.add_torrent_params()
    p.ti = lt.torrent_info(a.torrent)
    p.save_path = a.save_dir
    t_add = time.perf_counter()
    h = ses.add_torrent(p)
    h.connect_peer(("127.0.0.1", a.peer))
    enc_seen, errors, last_peer = set(), [], 0.0
    done = False
    while not done:
        for al in ses.pop_alerts():
            if isinstance(al, lt.torrent_finished_alert):
                done = True
            elif isinstance(al, (lt.torrent_error_alert, lt.file_error_alert, lt.peer_error_alert)):
                errors.append(al.message())
        now = time.perf_counter()
        if now - last_peer > 0.25:
            last_peer = now
            for pi in h.get_peer_info():
                if pi.flags & lt.peer_info.rc4_encrypted:
                    enc_seen.add("rc4")
                elif pi.flags & lt.peer_info.plaintext_encrypted:
                    enc_seen.add("plaintext_handshake_only")
                else:
                    enc_seen.add("none")
            if now - t_add > a.timeout:
                errors.append("timeout")
                break
        if not done:
            ses.wait_for_alert(50)
    t_done = time.perf_counter()
    st = h.status()
    ses.pause()
    del h, ses  # session destructor waits for disk threads to finish
    t_end = time.perf_counter()
    print(json.dumps({"role": "get", "ok": done and not errors, "errors": errors[:5],
                      "bytes": st.total_wanted_done, "add_to_finished_s": round(t_done - t_add, 3),
                      "session_start_s": round(t_add - tstart, 3), "teardown_s": round(t_end - t_done, 3),
                      "peer_encryption": sorted(enc_seen)}), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make"); m.add_argument("file"); m.add_argument("out")
    m.add_argument("--kind", default="hybrid", choices=["hybrid", "v2", "v1"])
    for name in ("seed", "get"):
        x = sub.add_parser(name); x.add_argument("torrent"); x.add_argument("save_dir")
        x.add_argument("--port", type=int, required=True); x.add_argument("--enc", default="plain")
        x.add_argument("--tune", default="default", choices=["default", "hp"])
        if name == "get":
            x.add_argument("--peer", type=int, required=True); x.add_argument("--timeout", type=float, default=300)
    a = ap.parse_args()
    {"make": make, "seed": seed, "get": get}[a.cmd](a)
