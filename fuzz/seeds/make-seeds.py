#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/corpus/<Target>/) from the inputs below.

Real inputs of each kind: frames as they arrive on a port (incl. LISP over IPv4 and IPv6, with
valid checksums), flow lines from README.md and the unit tests, JSON-RPC requests as vswiftctl
sends them, a db file and a journal in the format vswiftd writes. Run it again after editing.
"""
import json, os, struct, sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus")


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def mac(text):
    return bytes(int(x, 16) for x in text.split(":"))


def eth(payload, etype, tags=()):
    head = mac("52:54:00:00:00:02") + mac("52:54:00:00:00:01")
    for tpid, tci in tags:
        head += struct.pack("!HH", tpid, tci)
    return head + struct.pack("!H", etype) + payload


def ip4(proto, payload, src="10.0.0.1", dst="10.0.0.2", options=b"", frag=0):
    ihl = 5 + len(options) // 4
    addr = lambda a: bytes(int(x) for x in a.split("."))
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(payload), 1, frag, 64, proto, 0,
                    addr(src), addr(dst)) + options
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def ip6(nh, payload, src=b"\xfd" + b"\0" * 14 + b"\x01", dst=b"\xfd" + b"\0" * 14 + b"\x02"):
    return struct.pack("!IHBB", 0x60000000, len(payload), nh, 64) + src + dst + payload


def udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(sport, dport, flags=0x02):
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0)


def icmp_echo():
    h = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"ping" * 8
    return h[:2] + struct.pack("!H", csum(h)) + h[4:]


def arp(op=1):
    return struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + mac("52:54:00:00:00:01") + bytes([10, 0, 0, 1]) \
        + b"\0" * 6 + bytes([10, 0, 0, 2])


def lisp(inner, iid=5, flags=0x88):
    # N and I flags (RFC 9300 §5.3): nonce, then the instance ID in the top 24 bits of the second word.
    return struct.pack("!B3sI", flags, b"\x12\x34\x56", iid << 8 | 1) + inner


def frames():
    inner4 = ip4(1, icmp_echo(), "192.168.5.1", "192.168.5.2")
    inner6 = ip6(58, struct.pack("!BBHHH", 128, 0, 0, 1, 1))
    return {
        "ipv4-tcp": eth(ip4(6, tcp(40000, 80)), 0x0800),
        "ipv4-udp": eth(ip4(17, udp(5353, 53, b"query")), 0x0800),
        "ipv4-icmp": eth(ip4(1, icmp_echo()), 0x0800),
        "ipv4-options": eth(ip4(6, tcp(1, 2), options=b"\x01\x01\x01\x00"), 0x0800),
        "ipv4-fragment": eth(ip4(17, udp(1, 2, b"x" * 16), frag=0x2000), 0x0800),
        "arp-request": eth(arp(1), 0x0806),
        "arp-reply": eth(arp(2), 0x0806),
        "ipv6-tcp": eth(ip6(6, tcp(40000, 443)), 0x86DD),
        "ipv6-udp": eth(ip6(17, udp(546, 547, b"dhcp")), 0x86DD),
        "ipv6-icmp-ns": eth(ip6(58, struct.pack("!BBHI", 135, 0, 0, 0) + b"\xfd" + b"\0" * 14 + b"\x02"), 0x86DD),
        "ipv6-hop-by-hop": eth(ip6(0, struct.pack("!BB6s", 6, 0, b"\x01\x04\0\0\0\0") + tcp(1, 2)), 0x86DD),
        "vlan-ipv4": eth(ip4(6, tcp(1, 22)), 0x0800, tags=[(0x8100, 0x2064)]),
        "qinq-ipv4": eth(ip4(17, udp(1, 2, b"")), 0x0800, tags=[(0x88A8, 10), (0x8100, 20)]),
        "lisp4-inner4": eth(ip4(17, udp(61000, 4341, lisp(inner4)), "172.16.0.2", "172.16.0.1"), 0x0800),
        "lisp4-inner6": eth(ip4(17, udp(61000, 4341, lisp(inner6, iid=0, flags=0x80)), "172.16.0.2", "172.16.0.1"), 0x0800),
        "lisp6-inner4": eth(ip6(17, udp(61000, 4341, lisp(inner4))), 0x86DD),
        "lisp4-vlan": eth(ip4(17, udp(61000, 4341, lisp(inner4)), "172.16.0.2", "172.16.0.1"), 0x0800,
                          tags=[(0x8100, 7)]),
        "short": eth(b"", 0x0800)[:13],
    }


FLOWS = [
    # README.md
    "priority=1,in_port=1,dl_type=0x0800,vlan_tci=0,nw_src=10.1.1.0/24,action=output:2",
    "priority=0,actions=NORMAL",
    # unit and integration tests
    " priority=3,dl_dst=02:00:00:00:00:00 actions=mod_dl_dst:52:54:00:b8:27:75,output:1",
    "priority=2,arp,in_port=1 actions=NORMAL",
    "\tpriority=5 , in_port=2\n actions=output:1",
    "arp,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/8,arp_sha=52:54:00:00:00:01,arp_tha=00:00:00:00:00:00/ff:ff:ff:00:00:00,actions=drop",
    "arp,actions=set_field:10.0.0.1->arp_spa,set_field:52:54:00:00:00:01->arp_sha,set_field:2->arp_op",
    "cookie=0x1234, idle_timeout=10, hard_timeout=20, priority=65535,ip actions=drop",
    "cookie=18,hard_timeout=0x10,table=0,actions=NORMAL",
    "dl_src=01:00:00:00:00:00/01:00:00:00:00:00,actions=drop",
    "dl_type=0x0800,nw_proto=6,actions=drop",
    "tcp,tp_src=80,tp_dst=0x1000/0xf000,actions=mod_tp_dst:8080,output:2",
    "udp6,ipv6_src=fd00::1/64,ipv6_dst=fd00::2,actions=output:1",
    "icmp,icmp_type=8,icmp_code=0,actions=mod_nw_src:10.0.0.9,output:LOCAL",
    "ip,nw_tos=16,nw_ecn=1,nw_ttl=3,actions=dec_ttl,mod_nw_tos:32,output:IN_PORT",
    "dl_vlan=100,dl_vlan_pcp=3,actions=strip_vlan,output:p1",
    "in_port=vm2,actions=push_vlan:0x8100,set_field:4196->vlan_vid,output:1",
    "tun_id=5,in_port=lisp0,actions=output:vm2",
    "ip,nw_dst=192.168.5.0/24,actions=set_field:5->tun_id,set_field:172.16.0.2->tun_dst,output:lisp0",
    "table=0,priority=100,ipv6,actions=mod_vlan_vid:10,mod_vlan_pcp:2,output:1,output:2",
    "dl_type=0x0800,dl_type=0x86dd,actions=drop",
    "tcp,udp,actions=drop",
    "actions=,output:1",
    "in_port=0xffffffff,actions=drop",
    "cookie=0x15/0xf0,cookie=0x7,in_port=1,actions=drop",
    "actions=resubmit(,1)",
    "actions=set_tunnel:0x1ffffffffffffffff",
]

REQUESTS = [
    {"jsonrpc": "2.0", "id": 1, "method": "add-br", "params": {"bridge": "br0"}},
    {"jsonrpc": "2.0", "id": 2, "method": "add-port", "params": {"bridge": "br0", "port": "veth0"}},
    {"jsonrpc": "2.0", "id": 3, "method": "add-port", "params": {"bridge": "br0", "port": "lisp0", "type": "lisp",
                                                                 "options": {"remote_ip": "172.16.0.2", "key": "5"}}},
    {"jsonrpc": "2.0", "id": "x", "method": "add-flow", "params": {"bridge": "br0", "flow": FLOWS[0]}},
    {"jsonrpc": "2.0", "id": 5, "method": "add-flows", "params": {"bridge": "br0", "flows": FLOWS[:4]}},
    {"jsonrpc": "2.0", "id": 6, "method": "dump-flows", "params": {"bridge": "br0", "match": "ip"}},
    {"jsonrpc": "2.0", "id": None, "method": "show"},
    {"jsonrpc": "2.0", "method": "show", "params": []},
    {"jsonrpc": "2.0", "id": 18446744073709551615, "method": "del-flows", "params": {"bridge": "br0", "strict": True}},
    {"jsonrpc": "2.0", "id": 1.5e300, "method": "version", "params": {"nested": [1, -2, 3.25, "\u00e9\U0001F600\n", False, None]}},
    {"jsonrpc": "2.0", "id": 9, "result": {"flows": ["priority=0 actions=NORMAL"]}},
    {"jsonrpc": "2.0", "id": 10, "error": {"code": -32602, "message": "invalid params", "data": {"line": 3}}},
]

DB = {
    "bridges": [{
        "flows": ["priority=0,actions=NORMAL", "cookie=0x5,priority=10,ip,nw_dst=192.168.5.0/24 actions=output:2"],
        "name": "br0", "nextOfport": 3,
        "ports": [{"name": "veth0", "ofport": 1, "options": {}, "type": ""},
                  {"name": "lisp0", "ofport": 2, "options": {"key": "5", "remote_ip": "172.16.0.2"}, "type": "lisp"}],
    }, {"flows": [], "name": "br1", "nextOfport": 1, "ports": []}],
    "generation": 4, "systemID": "6f1c2a9e-4b5d-4c1e-9a3f-0d2b7e8c9f10", "underlays": ["eth1"], "version": 1,
}

JOURNAL = "\n".join([
    json.dumps({"generation": 4}),
    json.dumps({"method": "add-flow", "params": {"bridge": "br0", "flow": "priority=5,arp,actions=NORMAL"}}),
    json.dumps({"method": "del-flows", "params": {"bridge": "br0", "match": "ip", "strict": False}}),
    json.dumps({"method": "add-port", "params": {"bridge": "br1", "port": "veth9"}}),
]) + "\n"


def control_messages():
    """LISP control messages (RFC 9301 §5) as UDP payloads of port 4342, for FuzzLISPControl."""
    v4 = lambda a: struct.pack("!H4s", 1, bytes(int(x) for x in a.split(".")))
    v6 = lambda last: struct.pack("!H", 2) + b"\x20\x01\x0d\xb8" + b"\0" * 11 + bytes([last])
    iid = lambda inner, n=1000: struct.pack("!HBBBBHI", 16387, 0, 0, 2, 0, 4 + len(inner), n) + inner
    loc = lambda addr, flags=1: struct.pack("!BBBBH", 1, 100, 255, 0, flags) + addr
    def record(eid, mask, locs, act=0, ttl=1440):
        return struct.pack("!IBBHH", ttl, len(locs), mask, act << 13 | 0x1000, 0) + eid + b"".join(locs)
    nonce = struct.pack("!Q", 0x0102030405060708)
    request = struct.pack("!I", 1 << 28 | 1 << 22 | 1) + nonce + v4("10.1.0.1") + v4("192.0.2.1") \
        + b"\0\x18" + v4("10.2.0.0")
    probe = struct.pack("!I", 1 << 28 | 1 << 26 | 1 << 25 | 1 << 8 | 1) + nonce + b"\0\0" + v4("192.0.2.1") \
        + v6(1) + b"\0\x40" + iid(v6(0)) + record(iid(v6(0)), 64, [loc(v4("192.0.2.1"), 5)])
    reply = struct.pack("!I", 2 << 28 | 1) + nonce + record(iid(v4("10.2.0.0")), 24,
                                                          [loc(v4("192.0.2.2")), loc(v6(2), 0)])
    negative = struct.pack("!I", 2 << 28 | 1) + nonce + record(v4("10.3.0.0"), 16, [], act=3, ttl=15)
    elp = struct.pack("!HBBBBH", 16387, 0, 0, 10, 0, 3) + b"\xaa\xbb\xcc"
    unknown_lcaf = struct.pack("!I", 2 << 28 | 1) + nonce + record(v4("10.2.0.0"), 24, [loc(elp), loc(v4("192.0.2.7"))])
    body = nonce + struct.pack("!HH", 1, 20) + b"\x5a" * 20 + record(iid(v4("10.1.0.0")), 16, [loc(v4("192.0.2.1"))])
    xtr = bytes(range(16, 32)) + struct.pack("!Q", 7)
    register = struct.pack("!I", 3 << 28 | 1 << 25 | 1 << 8 | 1) + body + xtr
    notify = struct.pack("!I", 4 << 28 | 1 << 27 | 1) + body + xtr
    ack = struct.pack("!I", 5 << 28 | 1) + body
    out = {"map-request": request, "map-request-probe": probe, "map-reply": reply, "map-reply-negative": negative,
           "map-reply-unknown-lcaf": unknown_lcaf, "map-register": register, "map-notify": notify,
           "map-notify-ack": ack}
    # Encapsulated Control Messages around the Map-Request, over IPv4 and IPv6 (checksums valid).
    inner_udp = struct.pack("!HHHH", 49152, 4342, 8 + len(request), 0) + request
    src4, dst4 = bytes([10, 1, 0, 1]), bytes([10, 2, 0, 5])
    c = csum(src4 + dst4 + struct.pack("!BBH", 0, 17, len(inner_udp)) + inner_udp) or 0xFFFF
    udp4 = inner_udp[:6] + struct.pack("!H", c) + inner_udp[8:]
    out["ecm-ipv4"] = struct.pack("!I", 8 << 28) + ip4(17, udp4, "10.1.0.1", "10.2.0.5")
    src6, dst6 = v6(1)[2:], v6(5)[2:]
    c = csum(src6 + dst6 + struct.pack("!IxxxB", len(inner_udp), 17) + inner_udp) or 0xFFFF
    udp6 = inner_udp[:6] + struct.pack("!H", c) + inner_udp[8:]
    out["ecm-ipv6"] = struct.pack("!I", 8 << 28) + ip6(17, udp6, src6, dst6)
    return out


def write(target, name, data):
    directory = os.path.join(ROOT, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def main():
    for name, frame in frames().items():
        write("FuzzFrame", name, frame)
        if name.startswith("lisp") or name.startswith("ipv4-udp"):
            write("FuzzLISP", name, frame)
    for name, message in control_messages().items():
        write("FuzzLISPControl", name, message)
    for i, flow in enumerate(FLOWS):
        write("FuzzFlowSyntax", "flow-%02d" % i, flow.encode())
    for i, request in enumerate(REQUESTS):
        write("FuzzJSONRPC", "request-%02d" % i, json.dumps(request, ensure_ascii=i % 2 == 0).encode())
    write("FuzzConfig", "db.json", json.dumps(DB, indent=2, sort_keys=True).encode() + b"\n")
    write("FuzzConfig", "db-minimal.json", json.dumps({"version": 1, "systemID": "x", "bridges": []}).encode())
    write("FuzzConfig", "db.json.journal", JOURNAL.encode())
    write("FuzzConfig", "journal-cut-short", JOURNAL.encode()[:-20])


if __name__ == "__main__":
    sys.exit(main())
