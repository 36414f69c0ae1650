#!/usr/bin/env python3
"""A LISP Map-Server and Map-Resolver for tests (RFC 9301, RFC 8060), standard library only.

Written from the RFCs' figures, independently of vswift's Swift codec (VSwiftLISPControl): the
integration tests send what our codec builds to this reading of the RFC, and decode what it sends
with our codec, so a misreading shared by both is the only one that can pass unseen.

What it does (UDP 4342 on IPv4 and IPv6):
- Map-Register (RFC 9301 section 5.6): authenticated with the site's key (key id 1 HMAC-SHA-1-96,
  2 HMAC-SHA-256-128; the MAC over the whole message with the Authentication Data zeroed, of the
  length the Authentication Data Length field gives: 12/20 or 16/32 bytes). Registrations (instance
  id, EID prefix -> locators) expire after the registration timeout (RFC 9301 section 8.2: an ETR
  registers every 60 s, a Map-Server drops a registration not refreshed for three minutes) or the
  record TTL, whichever ends first; a record TTL of 0 withdraws the prefix. With M set, a Map-Notify
  (section 5.7) with the same nonce, records, xTR-ID, key id and MAC length goes back to the sender.
- Encapsulated Control Message (section 5.8) carrying a Map-Request (section 5.3), inner IPv4/IPv6
  and UDP headers checked (lengths, checksums, port 4342). For a registered EID (longest match in
  the instance id), section 8.2: if the registration asked for proxy replies (P), the Map-Server
  answers with a Map-Reply (A bit clear: not the ETR itself); otherwise it forwards the ECM to the
  ETR's first usable RLOC, port 4342, unchanged. In a site's configured prefix that no ETR has
  registered (section 8.2): a negative Map-Reply, natively-forward, for that prefix, TTL 1 minute.
  For an EID nobody registered, section 8.3: a
  negative Map-Reply (ACT natively-forward unless configured otherwise, TTL 15 minutes) for the
  shortest prefix covering the EID and no registered prefix.
  Map-Replies go to the Map-Request's first ITR-RLOC of a family we have a socket for, to the inner
  UDP source port (RFC 9301 section 5.4/5.8: the reply goes where the request came from).
- Everything else is counted and ignored. Every message received or sent is one JSON line in the
  log (`--log`), with a verdict and, when refused, the reason. Bounded: registrations capped,
  datagrams read into one buffer, log lines capped; a malformed message never stops the loop.
  SIGTERM ends it (last line: the counters).

Sites: `--site NAME,KEYID,PASSWORD[,IID:PREFIX]...` (repeatable; no prefix: the site may register
any EID) or `--config FILE` (JSON: {"sites": [{"name", "key-id", "key", "eid-prefixes": ["IID:PREFIX"]}],
"negative-action": "...", "registration-timeout": seconds}).
"""

import argparse
import hashlib
import hmac
import ipaddress
import json
import select
import signal
import socket
import struct
import sys
import time

CONTROL_PORT = 4342
T_REQUEST, T_REPLY, T_REGISTER, T_NOTIFY, T_NOTIFY_ACK, T_ECM = 1, 2, 3, 4, 5, 8
AFI_NONE, AFI_IPV4, AFI_IPV6, AFI_LCAF = 0, 1, 2, 16387
LCAF_INSTANCE_ID = 2
ACTIONS = {"no-action": 0, "natively-forward": 1, "send-map-request": 2, "drop": 3}
HASHES = {1: (hashlib.sha1, (12, 20)), 2: (hashlib.sha256, (16, 32))}
TYPE_NAMES = {1: "map-request", 2: "map-reply", 3: "map-register", 4: "map-notify", 5: "map-notify-ack",
              6: "map-referral", 7: "info", 8: "ecm"}


class Malformed(Exception):
    """A message refused: the text is the reason logged and counted."""


class Reader:
    """Reads network-order fields, refusing to read past `end`."""

    def __init__(self, data, start=0, end=None):
        self.data, self.pos, self.end = data, start, len(data) if end is None else end

    def take(self, n):
        if n < 0 or self.pos + n > self.end:
            raise Malformed("truncated")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack("!H", self.take(2))[0]

    def u32(self):
        return struct.unpack("!I", self.take(4))[0]

    def u64(self):
        return struct.unpack("!Q", self.take(8))[0]

    def left(self):
        return self.end - self.pos


# Addresses (RFC 9301 section 5; RFC 8060 section 3 LCAF, section 4.1 Instance ID).
# An address is (iid or None, family 0/4/6/None for an unknown LCAF, int value, raw bytes with AFI).

def read_address(r, nested=False):
    start = r.pos
    afi = r.u16()
    if afi == AFI_NONE:
        return (None, 0, 0, r.data[start:r.pos])
    if afi == AFI_IPV4:
        return (None, 4, int.from_bytes(r.take(4), "big"), r.data[start:r.pos])
    if afi == AFI_IPV6:
        return (None, 6, int.from_bytes(r.take(16), "big"), r.data[start:r.pos])
    if afi != AFI_LCAF:
        raise Malformed("unknown-afi")
    r.u8()  # Rsvd1
    r.u8()  # Flags
    lcaf_type = r.u8()
    r.u8()  # Rsvd2 (the IID mask-len for type 2)
    length = r.u16()
    body_end = r.pos + length
    if body_end > r.end:
        raise Malformed("lcaf-length")
    if lcaf_type != LCAF_INSTANCE_ID:
        r.take(length)  # a type we do not read: skipped by its length (RFC 8060 section 3)
        return (None, None, 0, r.data[start:r.pos])
    if nested:
        raise Malformed("nested-lcaf")
    if length < 6:
        raise Malformed("lcaf-length")
    iid = r.u32()
    inner = Reader(r.data, r.pos, body_end)
    _, family, value, _ = read_address(inner, nested=True)
    if inner.pos != body_end:
        raise Malformed("lcaf-length")
    r.pos = body_end
    return (iid & 0xffffff, family, value, r.data[start:r.pos])


def encode_address(iid, family, value):
    plain = (struct.pack("!H", AFI_IPV4) + value.to_bytes(4, "big")) if family == 4 else \
            (struct.pack("!H", AFI_IPV6) + value.to_bytes(16, "big"))
    if iid is None:
        return plain
    body = struct.pack("!I", iid) + plain
    return struct.pack("!HBBBBH", AFI_LCAF, 0, 0, LCAF_INSTANCE_ID, 0, len(body)) + body


def bits(family):
    return 32 if family == 4 else 128


def text(iid, family, value, length=None):
    if family not in (4, 6):
        return "none" if family == 0 else "lcaf"
    address = str(ipaddress.IPv4Address(value) if family == 4 else ipaddress.IPv6Address(value))
    prefix = f"[{iid}]" if iid is not None else ""
    return prefix + address + (f"/{length}" if length is not None else "")


def masked(value, family, length):
    width = bits(family)
    return value >> (width - length) << (width - length) if length else 0


# Mapping records (RFC 9301 section 5.4).

def read_record(r):
    start = r.pos
    ttl = r.u32()
    locator_count = r.u8()
    mask_length = r.u8()
    act_word = r.u16()
    version_word = r.u16()
    iid, family, value, eid_raw = read_address(r)
    if family not in (4, 6):
        raise Malformed("eid-afi")
    if mask_length > bits(family):
        raise Malformed("mask-length")
    if r.left() < locator_count * 8:
        raise Malformed("truncated")
    locators = []
    for _ in range(locator_count):
        priority, weight, m_priority, m_weight, flags = struct.unpack("!BBBBH", r.take(6))
        l_iid, l_family, l_value, l_raw = read_address(r)
        locators.append({"priority": priority, "weight": weight, "m-priority": m_priority, "m-weight": m_weight,
                         "flags": flags, "family": l_family, "value": l_value, "raw": l_raw})
    return {"ttl": ttl, "mask": mask_length, "act": act_word >> 13, "a": bool(act_word & 0x1000),
            "version": version_word & 0x0fff, "iid": iid, "family": family, "value": value, "eid-raw": eid_raw,
            "locators": locators, "raw": r.data[start:r.pos]}


def encode_record(ttl, mask, eid_raw, locators, act=0, authoritative=False, version=0):
    out = struct.pack("!IBBHH", ttl, len(locators), mask, act << 13 | (0x1000 if authoritative else 0),
                      version) + eid_raw
    for l in locators:
        out += struct.pack("!BBBBH", l["priority"], l["weight"], l["m-priority"], l["m-weight"], l["flags"]) + l["raw"]
    return out


def locator_text(l):
    return text(None, l["family"], l["value"]) + f",p{l['priority']},w{l['weight']}" + (",up" if l["flags"] & 1 else ",down")


# Checksums (RFC 1071) for the ECM's inner headers.

def ones_sum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xffff) + (total >> 16)
    return total


class Site:
    def __init__(self, name, key_id, key, prefixes):
        if key_id not in HASHES:
            raise ValueError(f"site {name}: key id {key_id} is not 1 or 2")
        self.name, self.key_id, self.key, self.prefixes = name, key_id, key.encode(), prefixes

    def allows(self, iid, family, value, length):
        if not self.prefixes:
            return True
        for p_iid, network in self.prefixes:
            if p_iid == (iid or 0) and network.version == family and length >= network.prefixlen and \
                    masked(value, family, network.prefixlen) == int(network.network_address):
                return True
        return False


def parse_prefix(spec):
    iid, _, prefix = spec.partition(":") if not spec.startswith("[") else (spec[1:spec.index("]")], "", spec[spec.index("]") + 1:])
    return int(iid), ipaddress.ip_network(prefix, strict=True)


class MappingSystem:
    def __init__(self, args):
        self.sites = []
        self.negative_action = ACTIONS[args.negative_action]
        self.negative_ttl = args.negative_ttl
        self.timeout = args.registration_timeout
        self.max_registrations = args.max_registrations
        self.max_log_lines = args.max_log_lines
        if args.config:
            with open(args.config) as f:
                config = json.load(f)
            for s in config.get("sites", []):
                self.sites.append(Site(s["name"], int(s["key-id"]), s["key"],
                                       [parse_prefix(p) for p in s.get("eid-prefixes", [])]))
            if "negative-action" in config:
                self.negative_action = ACTIONS[config["negative-action"]]
            self.timeout = config.get("registration-timeout", self.timeout)
        for spec in args.site or []:
            parts = spec.split(",")
            self.sites.append(Site(parts[0], int(parts[1]), parts[2], [parse_prefix(p) for p in parts[3:]]))
        # (iid, family, masked value, length) -> registration
        self.registrations = {}
        self.counters = {}
        self.log_lines = 0
        self.log = open(args.log, "a", buffering=1) if args.log else sys.stdout
        self.sockets = []
        for family, address in ((socket.AF_INET, args.address4), (socket.AF_INET6, args.address6)):
            if not address:
                continue
            s = socket.socket(family, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((address, args.port))
            self.sockets.append(s)
        self.running = True

    # Bookkeeping

    def count(self, name):
        self.counters[name] = self.counters.get(name, 0) + 1

    def emit(self, entry):
        if self.log_lines >= self.max_log_lines:
            self.count("log-lines-dropped")
            return
        self.log_lines += 1
        entry["time"] = round(time.time(), 3)
        self.log.write(json.dumps(entry, sort_keys=True) + "\n")

    def send(self, payload, address, port, entry):
        family = 6 if ":" in address else 4
        for s in self.sockets:
            if (s.family == socket.AF_INET6) == (family == 6):
                try:
                    s.sendto(payload, (address, port))
                    entry.update({"dir": "tx", "peer": f"{address}:{port}", "bytes": len(payload)})
                    self.count("sent-" + entry["type"])
                except OSError as error:
                    entry.update({"dir": "tx", "peer": f"{address}:{port}", "error": str(error)})
                    self.count("send-errors")
                self.emit(entry)
                return
        self.emit(dict(entry, dir="tx", peer=f"{address}:{port}", error="no socket of that family"))
        self.count("send-errors")

    def refuse(self, entry, reason):
        self.count("refused-" + reason)
        entry.update({"verdict": "refused", "reason": reason})
        self.emit(entry)

    # Receiving

    def receive(self, data, peer):
        address, port = peer[0], peer[1]
        kind = data[0] >> 4 if data else 0
        entry = {"dir": "rx", "peer": f"{address}:{port}", "bytes": len(data), "type": TYPE_NAMES.get(kind, f"type-{kind}")}
        self.count("received")
        try:
            if kind == T_REGISTER:
                self.map_register(data, address, port, entry)
            elif kind == T_ECM:
                self.encapsulated(data, address, entry)
            elif kind in (T_REQUEST, T_REPLY, T_NOTIFY, T_NOTIFY_ACK):
                self.count("ignored")
                entry["verdict"] = "ignored"
                self.emit(entry)
            else:
                self.refuse(entry, "unknown-type")
        except Malformed as error:
            self.refuse(entry, str(error))
        except Exception as error:  # a bug here must not end the fixture: count it, say it
            self.refuse(entry, "internal-error")
            self.emit({"event": "internal-error", "error": repr(error)})

    def map_register(self, data, address, port, entry):
        # RFC 9301 section 5.6: |Type=3|P|S|I|R| Reserved |M| Record Count|, nonce, key id,
        # authentication data length, authentication data, records, [xTR-ID, site-ID].
        r = Reader(data)
        word = r.u32()
        nonce = r.u64()
        key_id = r.u16()
        auth_length = r.u16()
        auth_start = r.pos
        auth = r.take(auth_length)
        count = word & 0xff
        records = [read_record(r) for _ in range(count)]
        identity = r.take(24) if word & 1 << 25 else b""
        if r.left():
            raise Malformed("trailing-bytes")
        proxy, want_notify = bool(word & 1 << 27), bool(word & 1 << 8)
        entry.update({"nonce": f"{nonce:016x}", "key-id": key_id, "auth-length": auth_length, "proxy": proxy,
                      "want-map-notify": want_notify, "xtr-id": identity[:16].hex() if identity else None,
                      "records": [{"eid": text(x["iid"], x["family"], x["value"], x["mask"]), "ttl": x["ttl"],
                                   "rlocs": [locator_text(l) for l in x["locators"]]} for x in records]})
        if count == 0:
            raise Malformed("no-records")
        if key_id not in HASHES:
            raise Malformed("unknown-key-id")
        digest, lengths = HASHES[key_id]
        if auth_length not in lengths:
            raise Malformed("auth-length")
        zeroed = data[:auth_start] + bytes(auth_length) + data[auth_start + auth_length:]
        candidates = [s for s in self.sites if s.key_id == key_id]
        if not candidates:
            raise Malformed("no-site-with-key-id")
        site = next((s for s in candidates
                     if hmac.compare_digest(hmac.new(s.key, zeroed, digest).digest()[:auth_length], auth)), None)
        if site is None:
            raise Malformed("bad-mac")
        for x in records:
            if not site.allows(x["iid"], x["family"], x["value"], x["mask"]):
                raise Malformed("eid-not-allowed")
        now = time.monotonic()
        for x in records:
            key = (x["iid"] or 0, x["family"], masked(x["value"], x["family"], x["mask"]), x["mask"])
            if x["ttl"] == 0:
                self.registrations.pop(key, None)
                continue
            if key not in self.registrations and len(self.registrations) >= self.max_registrations:
                raise Malformed("registrations-full")
            lifetime = min(self.timeout, x["ttl"] * 60)
            self.registrations[key] = {"site": site.name, "record": x, "proxy": proxy, "expires": now + lifetime,
                                       "from": address}
        entry.update({"verdict": "registered", "site": site.name})
        self.count("registered")
        self.emit(entry)
        if want_notify:
            # RFC 9301 section 5.7: the Map-Notify carries the Map-Register's nonce and records, is
            # authenticated with the same key, and goes back to where the Map-Register came from.
            first = T_NOTIFY << 28 | (1 << 27 if identity else 0) | count
            body = struct.pack("!IQHH", first, nonce, key_id, auth_length)
            tail = b"".join(x["raw"] for x in records) + identity
            mac = hmac.new(site.key, body + bytes(auth_length) + tail, digest).digest()[:auth_length]
            self.send(body + mac + tail, address, port,
                      {"type": "map-notify", "nonce": f"{nonce:016x}", "site": site.name, "key-id": key_id})

    def encapsulated(self, data, outer_source, entry):
        # RFC 9301 section 5.8: |Type=8|S|D|E|M| Reserved |, then an IPv4 or IPv6 header, a UDP
        # header to port 4342, and the control message.
        r = Reader(data)
        word = r.u32()
        ip_start = r.pos
        if r.left() < 1:
            raise Malformed("truncated")
        version = data[ip_start] >> 4
        if version == 4:
            if r.left() < 20:
                raise Malformed("truncated")
            ihl = (data[ip_start] & 0x0f) * 4
            total = struct.unpack("!H", data[ip_start + 2:ip_start + 4])[0]
            fragment = struct.unpack("!H", data[ip_start + 6:ip_start + 8])[0]
            protocol = data[ip_start + 9]
            if ihl < 20 or ip_start + ihl > len(data):
                raise Malformed("inner-header-length")
            if total != len(data) - ip_start:
                raise Malformed("inner-length")
            if fragment & 0x3fff:
                raise Malformed("inner-fragment")
            if protocol != 17:
                raise Malformed("inner-not-udp")
            if ones_sum(data[ip_start:ip_start + ihl]) != 0xffff:
                raise Malformed("inner-ipv4-checksum")
            source, destination = data[ip_start + 12:ip_start + 16], data[ip_start + 16:ip_start + 20]
            udp = ip_start + ihl
            pseudo = source + destination + struct.pack("!BBH", 0, 17, len(data) - udp)
        elif version == 6:
            if r.left() < 40:
                raise Malformed("truncated")
            payload_length, next_header = struct.unpack("!HB", data[ip_start + 4:ip_start + 7])
            if payload_length != len(data) - ip_start - 40:
                raise Malformed("inner-length")
            if next_header != 17:
                raise Malformed("inner-not-udp")
            source, destination = data[ip_start + 8:ip_start + 24], data[ip_start + 24:ip_start + 40]
            udp = ip_start + 40
            pseudo = source + destination + struct.pack("!I3xB", len(data) - udp, 17)
        else:
            raise Malformed("inner-not-ip")
        if len(data) - udp < 8:
            raise Malformed("truncated")
        source_port, destination_port, udp_length, udp_checksum = struct.unpack("!HHHH", data[udp:udp + 8])
        if udp_length != len(data) - udp:
            raise Malformed("inner-udp-length")
        if destination_port != CONTROL_PORT:
            raise Malformed("inner-port")
        if udp_checksum != 0 or version == 6:
            if udp_checksum == 0 or ones_sum(pseudo + data[udp:]) != 0xffff:
                raise Malformed("inner-udp-checksum")
        message = data[udp + 8:]
        if not message or message[0] >> 4 != T_REQUEST:
            raise Malformed("ecm-not-map-request")
        entry["type"] = "ecm-map-request"
        entry["ecm-flags"] = word >> 24 & 0x0f
        self.map_request(data, message, source_port, outer_source, entry)

    def map_request(self, ecm, data, reply_port, outer_source, entry):
        # RFC 9301 section 5.2: |Type=1|A|M|P|S|p|s|R|R|Rsvd|L|D|IRC|Record Count|, nonce, source
        # EID, IRC + 1 ITR-RLOCs, records (Reserved, mask-len, EID prefix), [Map-Reply record].
        r = Reader(data)
        word = r.u32()
        nonce = r.u64()
        itr_count = (word >> 8 & 0x1f) + 1
        count = word & 0xff
        read_address(r)  # source EID
        itr_rlocs = [read_address(r) for _ in range(itr_count)]
        eids = []
        for _ in range(count):
            r.u8()
            mask = r.u8()
            iid, family, value, _ = read_address(r)
            if family not in (4, 6):
                raise Malformed("eid-afi")
            if mask > bits(family):
                raise Malformed("mask-length")
            eids.append((iid, family, value, mask))
        if word & 1 << 26:
            read_record(r)
        if r.left():
            raise Malformed("trailing-bytes")
        if count == 0:
            raise Malformed("no-records")
        entry.update({"nonce": f"{nonce:016x}", "eids": [text(*e) for e in eids],
                      "itr-rlocs": [text(None, f, v) for _, f, v, _ in itr_rlocs],
                      "smr": bool(word & 1 << 24), "probe": bool(word & 1 << 25)})
        # Where a reply goes: an ITR-RLOC of a family we can send to, preferring the request's own.
        families = [6 if s.family == socket.AF_INET6 else 4 for s in self.sockets]
        outer_family = 6 if ":" in outer_source else 4
        choices = sorted([(f, v) for _, f, v, _ in itr_rlocs if f in families], key=lambda x: x[0] != outer_family)
        iid, family, value, mask = eids[0]  # an ITR asks for one prefix (section 5.3)
        registration = self.lookup(iid or 0, family, value, mask)
        if registration and not registration["proxy"]:
            rlocs = [l for l in registration["record"]["locators"] if l["priority"] < 255 and l["family"] in families]
            if not rlocs:
                self.refuse(entry, "etr-unreachable")
                return
            entry.update({"verdict": "forwarded", "site": registration["site"]})
            self.emit(entry)
            etr = text(None, rlocs[0]["family"], rlocs[0]["value"])
            self.send(ecm, etr, CONTROL_PORT, {"type": "ecm-map-request", "nonce": f"{nonce:016x}",
                                              "eids": entry["eids"], "site": registration["site"]})
            return
        if not choices:
            self.refuse(entry, "no-usable-itr-rloc")
            return
        if registration:
            x = registration["record"]
            record = encode_record(x["ttl"], x["mask"], x["eid-raw"], x["locators"], act=0,
                                   authoritative=False, version=x["version"])
            reply_entry = {"type": "map-reply", "nonce": f"{nonce:016x}", "proxy": True, "site": registration["site"],
                           "eid": text(x["iid"], x["family"], x["value"], x["mask"]),
                           "rlocs": [locator_text(l) for l in x["locators"]]}
            entry["verdict"] = "proxy-reply"
        else:
            configured = self.configured_prefix(iid or 0, family, value)
            if configured is not None:
                # Section 8.2: a site's configured prefix with no ETR registered: natively-forward
                # for one minute (the site may register any moment).
                length, ttl, action = configured[1], 1, ACTIONS["natively-forward"]
            else:
                length, ttl, action = self.negative_length(iid or 0, family, value), self.negative_ttl, self.negative_action
            prefix = masked(value, family, length)
            record = encode_record(ttl, length, encode_address(iid, family, prefix), [], act=action, authoritative=True)
            reply_entry = {"type": "map-reply", "nonce": f"{nonce:016x}", "negative": True,
                           "eid": text(iid, family, prefix, length), "action": action, "ttl": ttl}
            entry["verdict"] = "negative-reply" if configured is None else "not-registered"
        self.emit(entry)
        reply = struct.pack("!IQ", T_REPLY << 28 | 1, nonce) + record
        self.send(reply, text(None, *choices[0]), reply_port, reply_entry)

    # The database

    def lookup(self, iid, family, value, mask):
        best = None
        # A request for a prefix matches the longest registration that covers the whole prefix.
        for length in range(mask, -1, -1):
            registration = self.registrations.get((iid, family, masked(value, family, length), length))
            if registration:
                best = registration
                break
        return best

    def configured_prefix(self, iid, family, value):
        """The (site, length) of the longest configured site prefix covering the EID, or None."""
        best = None
        for site in self.sites:
            for p_iid, network in site.prefixes:
                if p_iid == iid and network.version == family and \
                        masked(value, family, network.prefixlen) == int(network.network_address) and \
                        (best is None or network.prefixlen > best[1]):
                    best = (site.name, network.prefixlen)
        return best

    def negative_length(self, iid, family, value):
        # RFC 9301 section 8.3: the least specific prefix that covers the EID and no registered
        # prefix (in the same instance and family).
        registered = [(v, l) for (i, f, v, l) in self.registrations if i == iid and f == family]
        for length in range(0, bits(family) + 1):
            base = masked(value, family, length)
            if not any(l >= length and masked(v, family, length) == base for v, l in registered):
                return length
        return bits(family)

    def expire(self):
        now = time.monotonic()
        for key in [k for k, v in self.registrations.items() if v["expires"] <= now]:
            registration = self.registrations.pop(key)
            x = registration["record"]
            self.count("expired")
            self.emit({"event": "expired", "site": registration["site"],
                       "eid": text(x["iid"], x["family"], x["value"], x["mask"])})

    def run(self):
        self.emit({"event": "ready", "sockets": [str(s.getsockname()) for s in self.sockets],
                   "sites": [s.name for s in self.sites]})
        while self.running:
            try:
                readable, _, _ = select.select(self.sockets, [], [], 0.2)
            except InterruptedError:
                continue
            for s in readable:
                try:
                    data, peer = s.recvfrom(65535)
                except OSError:
                    self.count("receive-errors")
                    continue
                self.receive(data, peer)
            self.expire()
        self.emit({"event": "exit", "counters": self.counters, "registrations": len(self.registrations)})


def main():
    parser = argparse.ArgumentParser(description="LISP Map-Server/Map-Resolver test fixture (RFC 9301)")
    parser.add_argument("--site", action="append", help="NAME,KEYID,PASSWORD[,IID:PREFIX]...")
    parser.add_argument("--config", help="JSON configuration file")
    parser.add_argument("--log", help="JSON-lines log file (default: stdout)")
    parser.add_argument("--port", type=int, default=CONTROL_PORT)
    parser.add_argument("--address4", default="0.0.0.0", help="IPv4 address to bind ('' for none)")
    parser.add_argument("--address6", default="::", help="IPv6 address to bind ('' for none)")
    parser.add_argument("--negative-action", default="natively-forward", choices=sorted(ACTIONS))
    parser.add_argument("--negative-ttl", type=int, default=15, help="minutes (RFC 9301 section 8.3: 15)")
    parser.add_argument("--registration-timeout", type=float, default=180.0, help="seconds (RFC 9301 section 8.2: 3 minutes)")
    parser.add_argument("--max-registrations", type=int, default=4096)
    parser.add_argument("--max-log-lines", type=int, default=100000)
    args = parser.parse_args()
    system = MappingSystem(args)

    def stop(signum, frame):
        system.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # A parent may hand down a blocked signal mask (Swift test runners do): take SIGTERM anyway.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    system.run()


if __name__ == "__main__":
    main()
