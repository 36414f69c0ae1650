#!/usr/bin/env python3
"""Soak test: traffic through a vswift bridge while its flow table churns, for N minutes.

Two namespace hosts (h1, h2) on bridge br0 of a vswiftd in a third namespace. Both hosts flood-ping
each other (ping -f) the whole time, and every `--churn` seconds the table changes: add-flows of a
few thousand rules, a replace-flows, a del-flows, mod-flows, and a port-level rule that sends the
ping traffic through a different rule than NORMAL (so the datapath really switches tables under
traffic). Every `--sample` seconds it records vswiftd's RSS, each worker's frame accounting, the
ports' packet counters and the flow count, and it fails (exit 1) on:

- a leak: RSS after the warm-up grows by more than --rss-slack MiB over its first sample;
- a stall: the ports forwarded nothing between two samples;
- an inconsistency: a worker's frames not all accounted for (free + in kernel == total, none
  orphaned, no owner violations);
- a dead daemon, a failed control request, or pings that stop getting answers.

Usage (root): bench/soak.py [--minutes 10] [--bin .build/release] [--csv FILE]
Prints one line per sample and a summary; --csv writes the samples.
"""
import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time


def sh(*args, check=True, **kw):
    return subprocess.run(args, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


class Control:
    """One JSON-RPC connection to vswiftd (one request per line)."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.settimeout(60)
        self.buffer = b""
        self.next_id = 1

    def call(self, method, params=None):
        request = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            request["params"] = params
        self.next_id += 1
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError(f"vswiftd closed the connection during {method}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--bin", default=".build/release")
    parser.add_argument("--sample", type=float, default=7, help="seconds between samples (not a multiple of the 5-step churn cycle)")
    parser.add_argument("--churn", type=float, default=1, help="seconds between flow-table changes")
    parser.add_argument("--warmup", type=float, default=30, help="seconds before the RSS reference sample")
    parser.add_argument("--rss-slack", type=float, default=32, help="MiB of RSS growth tolerated after the warm-up")
    parser.add_argument("--csv")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("soak: needs root (network namespaces, XDP)")
    vswiftd, vswiftctl = f"{args.bin}/vswiftd", f"{args.bin}/vswiftctl"
    for path in (vswiftd, vswiftctl):
        if not os.access(path, os.X_OK):
            sys.exit(f"soak: {path} not found: scripts/build.sh release (or pass --bin)")

    tag = f"vssoak{os.getpid()}"
    sw, h1, h2 = f"{tag}-sw", f"{tag}-h1", f"{tag}-h2"
    work = tempfile.mkdtemp(prefix=f"{tag}-")
    os.chmod(work, 0o700)
    sock, db = f"{work}/vswiftd.sock", f"{work}/vswiftd.db.json"
    daemon, pings = None, []

    def cleanup():
        for p in pings:
            p.kill()
        if daemon and daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(10)
            except subprocess.TimeoutExpired:
                daemon.kill()
        for ns in (sw, h1, h2):
            sh("ip", "netns", "del", ns, check=False)
        sh("rm", "-rf", work, check=False)

    failures = []
    samples = []
    try:
        for ns in (sw, h1, h2):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for i, host in ((1, h1), (2, h2)):
            sh("ip", "link", "add", "eth0", "netns", host, "type", "veth", "peer", f"vnet{i}", "netns", sw)
            sh("ip", "-n", host, "link", "set", "eth0", "up")
            sh("ip", "netns", "exec", host, "ethtool", "-K", "eth0", "tx", "off")
            sh("ip", "-n", host, "addr", "add", f"10.1.1.{i}/24", "dev", "eth0")
            sh("ip", "-n", sw, "link", "set", f"vnet{i}", "up")
        daemon = subprocess.Popen(["ip", "netns", "exec", sw, vswiftd, "--socket", sock, "--db", db,
                                   "--bpf-dir", args.bin, "--log-level", "warning"])
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        ctl = Control(sock)
        env = dict(os.environ, VSWIFT_SOCKET=sock)
        for argv in (["add-br", "br0"], ["add-port", "br0", "vnet1"], ["add-port", "br0", "vnet2"]):
            sh(vswiftctl, *argv, env=env)
        # Static neighbours: the flood pings need no ARP while tables change.
        macs = {}
        for i, host in ((1, h1), (2, h2)):
            macs[i] = json.loads(sh("ip", "-n", host, "-j", "link", "show", "eth0").stdout)[0]["address"]
        sh("ip", "-n", h1, "neigh", "replace", "10.1.1.2", "lladdr", macs[2], "dev", "eth0", "nud", "permanent")
        sh("ip", "-n", h2, "neigh", "replace", "10.1.1.1", "lladdr", macs[1], "dev", "eth0", "nud", "permanent")
        pings = [subprocess.Popen(["ip", "netns", "exec", a, "ping", "-f", "-q", "-w", str(int(args.minutes * 60 + 60)), b],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for a, b in ((h1, "10.1.1.2"), (h2, "10.1.1.1"))]

        rng = random.Random(1)
        flows_file = f"{work}/flows.txt"

        def churn(step):
            kind = step % 5
            if kind == 0:
                lines = [f"priority={rng.randint(1, 100)},udp,nw_src=10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.0/24,tp_dst={rng.randint(1, 65535)},actions=drop"
                         for _ in range(2000)]
                with open(flows_file, "w") as f:
                    f.write("\n".join(lines) + "\n")
                sh(vswiftctl, "add-flows", "br0", flows_file, env=env)
            elif kind == 1:
                # The ping traffic through explicit rules, above NORMAL.
                sh(vswiftctl, "add-flow", "br0", "priority=200,in_port=1,ip,actions=output:2", env=env)
                sh(vswiftctl, "add-flow", "br0", "priority=200,in_port=2,ip,actions=output:1", env=env)
            elif kind == 2:
                sh(vswiftctl, "mod-flows", "br0", "udp,actions=drop", env=env)
            elif kind == 3:
                sh(vswiftctl, "--strict", "del-flows", "br0", "priority=200,in_port=1,ip", env=env)
                sh(vswiftctl, "--strict", "del-flows", "br0", "priority=200,in_port=2,ip", env=env)
            else:
                lines = ["priority=0,actions=NORMAL"] + [f"priority=5,udp,tp_src={rng.randint(1, 65535)},actions=drop" for _ in range(1000)]
                with open(flows_file, "w") as f:
                    f.write("\n".join(lines) + "\n")
                sh(vswiftctl, "replace-flows", "br0", flows_file, env=env)

        start = time.monotonic()
        end = start + args.minutes * 60
        next_sample, next_churn, step = start + args.sample, start + args.churn, 0
        reference_rss, last_forwarded = None, None
        print(f"soak: {args.minutes} min, vswiftd pid {daemon.pid}, sample every {args.sample} s, churn every {args.churn} s", flush=True)
        while time.monotonic() < end and not failures:
            now = time.monotonic()
            if daemon.poll() is not None:
                failures.append(f"vswiftd exited with {daemon.returncode}")
                break
            if now >= next_churn:
                try:
                    churn(step)
                except subprocess.CalledProcessError as e:
                    failures.append(f"churn step {step} failed: {' '.join(e.cmd)}: {e.stderr.strip()}")
                step += 1
                next_churn += args.churn
            if now >= next_sample:
                next_sample += args.sample
                pid = int(sh("pgrep", "-f", f"{vswiftd} --socket {sock}").stdout.split()[0])
                rss = rss_kib(pid) / 1024
                accounting = ctl.call("frame-accounting")
                ports = json.loads(sh(vswiftctl, "--format", "json", "dump-ports", "br0", env=env).stdout)
                flows = len(json.loads(sh(vswiftctl, "--format", "json", "dump-flows", "br0", env=env).stdout)["flows"])
                forwarded = sum(p["statistics"]["txPackets"] for p in ports["ports"] if p["name"] in ("vnet1", "vnet2"))
                elapsed = now - start
                bad = [a for a in accounting if not a.get("consistent", False)]
                sample = dict(seconds=round(elapsed, 1), rss_mib=round(rss, 1), flows=flows, tx_packets=forwarded,
                              accounting_ok=not bad, steps=step)
                samples.append(sample)
                rate = "" if last_forwarded is None else f", {(forwarded - last_forwarded) / args.sample:,.0f} pps"
                print(f"  {elapsed:6.0f} s  RSS {rss:7.1f} MiB  flows {flows:5d}  tx {forwarded:,}{rate}  accounting {'ok' if not bad else bad}", flush=True)
                if bad:
                    failures.append(f"frame accounting inconsistent at {elapsed:.0f} s: {bad}")
                if last_forwarded is not None and forwarded <= last_forwarded:
                    failures.append(f"stall: nothing forwarded between {elapsed - args.sample:.0f} s and {elapsed:.0f} s")
                last_forwarded = forwarded
                if elapsed >= args.warmup:
                    if reference_rss is None:
                        reference_rss = rss
                    elif rss > reference_rss + args.rss_slack:
                        failures.append(f"RSS grew from {reference_rss:.1f} to {rss:.1f} MiB (> {args.rss_slack} MiB slack)")
            time.sleep(0.05)
        for p in pings:
            p.send_signal(signal.SIGINT)
        for p in pings:
            out = p.communicate(timeout=10)[0]
            summary = [l for l in out.splitlines() if "packets transmitted" in l]
            print(f"ping: {summary[0] if summary else out.strip()[-200:]}")
            if summary and " 0 received" in summary[0]:
                failures.append(f"pings unanswered: {summary[0]}")
        pings = []
    except Exception as e:  # any failed setup or control request is a failure of the soak
        failures.append(f"{type(e).__name__}: {e}")
    finally:
        cleanup()

    if args.csv and samples:
        with open(args.csv, "w") as f:
            f.write(",".join(samples[0].keys()) + "\n")
            for s in samples:
                f.write(",".join(str(v) for v in s.values()) + "\n")
    if samples:
        rss = [s["rss_mib"] for s in samples]
        print(f"summary: {len(samples)} samples over {samples[-1]['seconds']:.0f} s, {samples[-1]['steps']} table changes, "
              f"RSS {min(rss):.1f}-{max(rss):.1f} MiB (first {rss[0]:.1f}, last {rss[-1]:.1f}), "
              f"{samples[-1]['tx_packets']:,} packets forwarded")
    if failures:
        for f in failures:
            print(f"FAIL: {f}")
        sys.exit(1)
    print("soak: ok")


if __name__ == "__main__":
    main()
