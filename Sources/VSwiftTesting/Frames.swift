// Frames built byte by byte, for tests of every layer: the packet parsers and rewriters, the
// pipeline harness, the integration tests' raw sockets. Written the slow, obvious way and
// independently of the code under test (nothing here calls VSwiftPacket), so a test's expected
// bytes do not share a bug with what it checks.

/// Reference algorithms written the slow, obvious way (byte pairs, bit by bit), independent of the
/// code under test.
public enum Ref {
    public static func sum(_ bytes: [UInt8]) -> UInt32 {
        var s: UInt32 = 0
        var i = 0
        while i < bytes.count {
            let hi = UInt32(bytes[i]) << 8
            let lo = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0
            s += hi | lo
            i += 2
        }
        while s > 0xffff { s = (s & 0xffff) + (s >> 16) }
        return s
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt16 { ~UInt16(sum(bytes)) }

    public static func crc32c(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xffff_ffff
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82f6_3b78 : crc >> 1 }
        }
        return ~crc
    }

    public static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    public static func be32(_ v: UInt32) -> [UInt8] { be16(UInt16(v >> 16)) + be16(UInt16(v & 0xffff)) }
    public static func be64(_ v: UInt64) -> [UInt8] { be32(UInt32(v >> 32)) + be32(UInt32(v & 0xffff_ffff)) }
    public static func mac(_ v: UInt64) -> [UInt8] { Array(be64(v)[2...]) }
    public static func u16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) << 8 | UInt16(b[o + 1]) }
    public static func u32(_ b: [UInt8], _ o: Int) -> UInt32 { UInt32(u16(b, o)) << 16 | UInt32(u16(b, o + 2)) }
    public static func u64(_ b: [UInt8], _ o: Int) -> UInt64 { UInt64(u32(b, o)) << 32 | UInt64(u32(b, o + 4)) }
    public static func put16(_ b: inout [UInt8], _ o: Int, _ v: UInt16) { b[o] = UInt8(v >> 8); b[o + 1] = UInt8(v & 0xff) }
    public static func put32(_ b: inout [UInt8], _ o: Int, _ v: UInt32) {
        put16(&b, o, UInt16(v >> 16)); put16(&b, o + 2, UInt16(v & 0xffff))
    }
}

/// 16-byte IPv6 addresses and their (high, low) words.
public struct V6: Equatable, Sendable {
    public var high: UInt64
    public var low: UInt64
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }
    public var bytes: [UInt8] { Ref.be64(high) + Ref.be64(low) }
    public static let a = V6(high: 0x2001_0db8_0000_0001, low: 0x0000_0000_0000_0010)
    public static let b = V6(high: 0x2001_0db8_0000_0002, low: 0x0000_0000_0000_0020)
    public static let c = V6(high: 0xfe80_0000_0000_0000, low: 0x0211_22ff_fe33_4455)
}

public enum Build {
    public static let dst: UInt64 = 0x5254_0012_3456
    public static let src: UInt64 = 0x0200_0000_0abc
    public static let ip1: UInt32 = 0x0a00_0001
    public static let ip2: UInt32 = 0xc0a8_0102

    public static func ethernet(dst: UInt64 = Build.dst, src: UInt64 = Build.src, tags: [(UInt16, UInt16)] = [],
                         type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        var f = Ref.mac(dst) + Ref.mac(src)
        for (tpid, tci) in tags { f += Ref.be16(tpid) + Ref.be16(tci) }
        return f + Ref.be16(type) + payload
    }

    /// IPv4 packet with a correct header checksum. `totalLength` overrides the length field.
    public static func ipv4(src: UInt32 = ip1, dst: UInt32 = ip2, proto: UInt8, tos: UInt8 = 0, ttl: UInt8 = 64,
                     frag: UInt16 = 0, options: [UInt8] = [], totalLength: Int? = nil, _ payload: [UInt8]) -> [UInt8] {
        let ihl = (20 + options.count) / 4
        var h: [UInt8] = [UInt8(0x40 | ihl), tos] + Ref.be16(UInt16(totalLength ?? (20 + options.count + payload.count)))
        h += Ref.be16(0x1234) + Ref.be16(frag) + [ttl, proto, 0, 0] + Ref.be32(src) + Ref.be32(dst) + options
        Ref.put16(&h, 10, Ref.checksum(h))
        return h + payload
    }

    public static func ipv6(src: V6 = .a, dst: V6 = .b, next: UInt8, tc: UInt8 = 0, label: UInt32 = 0, hopLimit: UInt8 = 64,
                     payloadLength: Int? = nil, _ payload: [UInt8]) -> [UInt8] {
        let first = UInt32(6) << 28 | UInt32(tc) << 20 | (label & 0xfffff)
        return Ref.be32(first) + Ref.be16(UInt16(payloadLength ?? payload.count)) + [next, hopLimit]
            + src.bytes + dst.bytes + payload
    }

    /// Generic extension header (hop-by-hop, routing, destination options) of 8·(len+1) bytes.
    public static func ext(next: UInt8, units: Int = 0, routingSegmentsLeft: UInt8 = 0) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 8 * (units + 1))
        h[0] = next
        h[1] = UInt8(units)
        h[3] = routingSegmentsLeft
        return h
    }

    public static func fragment(next: UInt8, offset: UInt16, more: Bool) -> [UInt8] {
        [next, 0] + Ref.be16(offset << 3 | (more ? 1 : 0)) + Ref.be32(0xdead_beef)
    }

    public static func tcp(src: UInt16 = 34567, dst: UInt16 = 80, flags: UInt16 = 0x012, _ payload: [UInt8] = []) -> [UInt8] {
        Ref.be16(src) + Ref.be16(dst) + Ref.be32(1000) + Ref.be32(2000) + Ref.be16(0x5000 | flags)
            + Ref.be16(0xffff) + [0, 0, 0, 0] + payload
    }

    public static func udp(src: UInt16 = 5353, dst: UInt16 = 53, _ payload: [UInt8] = []) -> [UInt8] {
        Ref.be16(src) + Ref.be16(dst) + Ref.be16(UInt16(8 + payload.count)) + [0, 0] + payload
    }

    public static func sctp(src: UInt16 = 2905, dst: UInt16 = 2906, _ payload: [UInt8] = [1, 0, 0, 8, 0, 0, 0, 0]) -> [UInt8] {
        var s = Ref.be16(src) + Ref.be16(dst) + Ref.be32(0x0102_0304) + [0, 0, 0, 0] + payload
        let crc = Ref.crc32c(s)
        s[8] = UInt8(crc & 0xff); s[9] = UInt8((crc >> 8) & 0xff)
        s[10] = UInt8((crc >> 16) & 0xff); s[11] = UInt8(crc >> 24)
        return s
    }

    public static func icmp(type: UInt8, code: UInt8, _ payload: [UInt8] = [0, 1, 0, 1]) -> [UInt8] {
        var m: [UInt8] = [type, code, 0, 0] + payload
        Ref.put16(&m, 2, Ref.checksum(m))
        return m
    }

    /// An ICMPv6 message (checksum filled in by `withL4Checksum6`).
    public static func icmpv6(type: UInt8, code: UInt8, _ payload: [UInt8] = [0, 1, 0, 1]) -> [UInt8] {
        [type, code, 0, 0] + payload
    }

    /// Fills the TCP (offset 16) or UDP (6) checksum of `segment` for IPv4.
    public static func withL4Checksum4(_ segment: [UInt8], proto: UInt8, src: UInt32 = ip1, dst: UInt32 = ip2) -> [UInt8] {
        var s = segment
        let at = proto == 6 ? 16 : 6
        Ref.put16(&s, at, 0)
        let pseudo = Ref.be32(src) + Ref.be32(dst) + [0, proto] + Ref.be16(UInt16(s.count))
        var c = Ref.checksum(pseudo + s)
        if proto == 17 && c == 0 { c = 0xffff }
        Ref.put16(&s, at, c)
        return s
    }

    /// Fills the TCP (16), UDP (6) or ICMPv6 (2) checksum of `segment` for IPv6.
    public static func withL4Checksum6(_ segment: [UInt8], proto: UInt8, src: V6 = .a, dst: V6 = .b) -> [UInt8] {
        var s = segment
        let at = proto == 6 ? 16 : proto == 17 ? 6 : 2
        Ref.put16(&s, at, 0)
        let pseudo = src.bytes + dst.bytes + Ref.be32(UInt32(s.count)) + [0, 0, 0, proto]
        var c = Ref.checksum(pseudo + s)
        if proto == 17 && c == 0 { c = 0xffff }
        Ref.put16(&s, at, c)
        return s
    }

    public static func ipv4TCP(tags: [(UInt16, UInt16)] = [], _ payload: [UInt8] = Array("hello".utf8)) -> [UInt8] {
        ethernet(tags: tags, type: 0x0800, ipv4(proto: 6, tos: 0xb9, ttl: 63,
                                               withL4Checksum4(tcp(flags: 0x112, payload), proto: 6)))
    }

    public static func ipv4UDP(src: UInt16 = 5353, dst: UInt16 = 53, _ payload: [UInt8] = Array("query".utf8)) -> [UInt8] {
        ethernet(type: 0x0800, ipv4(proto: 17, withL4Checksum4(udp(src: src, dst: dst, payload), proto: 17)))
    }

    /// IPv6: hop-by-hop → destination options → routing (segments left 0) → fragment (first) → TCP.
    public static func ipv6WithExtensions() -> [UInt8] {
        let l4 = withL4Checksum6(tcp(src: 443, dst: 51000, flags: 0x018, Array("data".utf8)), proto: 6)
        let chain = ext(next: 60) + ext(next: 43, units: 1) + ext(next: 44) + fragment(next: 6, offset: 0, more: true)
        return ethernet(type: 0x86dd, ipv6(next: 0, tc: 0x2e, label: 0xabcde, hopLimit: 7, chain + l4))
    }
}

/// A UDP/IPv4 frame 52:54:00:b8:27:75 → `destinationMAC` (52:54:00:1b:ea:d5), 10.1.1.20:`sourcePort`
/// → 10.1.1.30:4321, `payload` bytes of 0xab, with a valid IPv4 header checksum and no UDP checksum.
public func udpFrame(sourcePort: UInt16 = 1000, destinationMAC: [UInt8] = [0x52, 0x54, 0x00, 0x1b, 0xea, 0xd5],
                     payload: Int = 18) -> [UInt8] {
    var f: [UInt8] = destinationMAC + [0x52, 0x54, 0x00, 0xb8, 0x27, 0x75, 0x08, 0x00]
    let ipLength = 20 + 8 + payload
    var ip: [UInt8] = [0x45, 0, UInt8(ipLength >> 8), UInt8(ipLength & 0xff), 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 1, 1, 20, 10, 1, 1, 30]
    Ref.put16(&ip, 10, Ref.checksum(ip))
    f += ip
    f += [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xff), 0x10, 0xe1, 0, UInt8(8 + payload), 0, 0]
    f += [UInt8](repeating: 0xab, count: payload)
    return f
}

/// Ethernet / IPv4 / UDP 4341 (checksum 0) / LISP / `inner`, from 02:00:00:00:00:99 and UDP port
/// 4341 to `destinationMAC`; `source` and `destination` are the outer IPv4 addresses (4 bytes each).
public func lispFrame(destinationMAC: [UInt8], source: [UInt8], destination: [UInt8], flags: UInt8, iid: UInt32,
                      inner: [UInt8]) -> [UInt8] {
    var ip: [UInt8] = [0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0] + source + destination
    Ref.put16(&ip, 2, UInt16(20 + 8 + 8 + inner.count))
    Ref.put16(&ip, 10, Ref.checksum(ip))
    let udp: [UInt8] = [0xc3, 0x50, 0x10, 0xf5] + Ref.be16(UInt16(16 + inner.count)) + [0, 0]
    let lisp: [UInt8] = [flags, 0, 0, 0, UInt8(iid >> 16 & 0xff), UInt8(iid >> 8 & 0xff), UInt8(iid & 0xff), 1]
    return destinationMAC + [2, 0, 0, 0, 0, 0x99, 0x08, 0x00] + ip + udp + lisp + inner
}

/// An IPv4 ICMP echo request (no Ethernet header) with valid header and ICMP checksums.
public func icmpEcho(from source: [UInt8], to destination: [UInt8]) -> [UInt8] {
    var icmp: [UInt8] = [8, 0, 0, 0, 0x12, 0x34, 0, 1] + [UInt8](repeating: 0x61, count: 32)
    Ref.put16(&icmp, 2, Ref.checksum(icmp))
    var ip: [UInt8] = [0x45, 0, 0, UInt8(20 + icmp.count), 0, 2, 0, 0, 64, 1, 0, 0] + source + destination
    Ref.put16(&ip, 10, Ref.checksum(ip))
    return ip + icmp
}
