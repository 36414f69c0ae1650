import Testing
import VSwiftPacket

// MARK: - Test support: frame builders and independent reference implementations

/// Reference algorithms written the slow, obvious way (byte pairs, bit by bit), independent of the
/// code under test.
enum Ref {
    static func sum(_ bytes: [UInt8]) -> UInt32 {
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

    static func checksum(_ bytes: [UInt8]) -> UInt16 { ~UInt16(sum(bytes)) }

    static func crc32c(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xffff_ffff
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82f6_3b78 : crc >> 1 }
        }
        return ~crc
    }

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    static func be32(_ v: UInt32) -> [UInt8] { be16(UInt16(v >> 16)) + be16(UInt16(v & 0xffff)) }
    static func be64(_ v: UInt64) -> [UInt8] { be32(UInt32(v >> 32)) + be32(UInt32(v & 0xffff_ffff)) }
    static func mac(_ v: UInt64) -> [UInt8] { Array(be64(v)[2...]) }
    static func u16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) << 8 | UInt16(b[o + 1]) }
    static func u32(_ b: [UInt8], _ o: Int) -> UInt32 { UInt32(u16(b, o)) << 16 | UInt32(u16(b, o + 2)) }
    static func u64(_ b: [UInt8], _ o: Int) -> UInt64 { UInt64(u32(b, o)) << 32 | UInt64(u32(b, o + 4)) }
    static func put16(_ b: inout [UInt8], _ o: Int, _ v: UInt16) { b[o] = UInt8(v >> 8); b[o + 1] = UInt8(v & 0xff) }
    static func put32(_ b: inout [UInt8], _ o: Int, _ v: UInt32) {
        put16(&b, o, UInt16(v >> 16)); put16(&b, o + 2, UInt16(v & 0xffff))
    }
}

/// 16-byte IPv6 addresses and their (high, low) words.
struct V6: Equatable {
    var high: UInt64
    var low: UInt64
    var bytes: [UInt8] { Ref.be64(high) + Ref.be64(low) }
    static let a = V6(high: 0x2001_0db8_0000_0001, low: 0x0000_0000_0000_0010)
    static let b = V6(high: 0x2001_0db8_0000_0002, low: 0x0000_0000_0000_0020)
    static let c = V6(high: 0xfe80_0000_0000_0000, low: 0x0211_22ff_fe33_4455)
}

enum Build {
    static let dst: UInt64 = 0x5254_0012_3456
    static let src: UInt64 = 0x0200_0000_0abc
    static let ip1: UInt32 = 0x0a00_0001
    static let ip2: UInt32 = 0xc0a8_0102

    static func ethernet(dst: UInt64 = Build.dst, src: UInt64 = Build.src, tags: [(UInt16, UInt16)] = [],
                         type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        var f = Ref.mac(dst) + Ref.mac(src)
        for (tpid, tci) in tags { f += Ref.be16(tpid) + Ref.be16(tci) }
        return f + Ref.be16(type) + payload
    }

    /// IPv4 packet with a correct header checksum. `totalLength` overrides the length field.
    static func ipv4(src: UInt32 = ip1, dst: UInt32 = ip2, proto: UInt8, tos: UInt8 = 0, ttl: UInt8 = 64,
                     frag: UInt16 = 0, options: [UInt8] = [], totalLength: Int? = nil, _ payload: [UInt8]) -> [UInt8] {
        let ihl = (20 + options.count) / 4
        var h: [UInt8] = [UInt8(0x40 | ihl), tos] + Ref.be16(UInt16(totalLength ?? (20 + options.count + payload.count)))
        h += Ref.be16(0x1234) + Ref.be16(frag) + [ttl, proto, 0, 0] + Ref.be32(src) + Ref.be32(dst) + options
        Ref.put16(&h, 10, Ref.checksum(h))
        return h + payload
    }

    static func ipv6(src: V6 = .a, dst: V6 = .b, next: UInt8, tc: UInt8 = 0, label: UInt32 = 0, hopLimit: UInt8 = 64,
                     payloadLength: Int? = nil, _ payload: [UInt8]) -> [UInt8] {
        let first = UInt32(6) << 28 | UInt32(tc) << 20 | (label & 0xfffff)
        return Ref.be32(first) + Ref.be16(UInt16(payloadLength ?? payload.count)) + [next, hopLimit]
            + src.bytes + dst.bytes + payload
    }

    /// Generic extension header (hop-by-hop, routing, destination options) of 8·(len+1) bytes.
    static func ext(next: UInt8, units: Int = 0, routingSegmentsLeft: UInt8 = 0) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 8 * (units + 1))
        h[0] = next
        h[1] = UInt8(units)
        h[3] = routingSegmentsLeft
        return h
    }

    static func fragment(next: UInt8, offset: UInt16, more: Bool) -> [UInt8] {
        [next, 0] + Ref.be16(offset << 3 | (more ? 1 : 0)) + Ref.be32(0xdead_beef)
    }

    static func tcp(src: UInt16 = 34567, dst: UInt16 = 80, flags: UInt16 = 0x012, _ payload: [UInt8] = []) -> [UInt8] {
        Ref.be16(src) + Ref.be16(dst) + Ref.be32(1000) + Ref.be32(2000) + Ref.be16(0x5000 | flags)
            + Ref.be16(0xffff) + [0, 0, 0, 0] + payload
    }

    static func udp(src: UInt16 = 5353, dst: UInt16 = 53, _ payload: [UInt8] = []) -> [UInt8] {
        Ref.be16(src) + Ref.be16(dst) + Ref.be16(UInt16(8 + payload.count)) + [0, 0] + payload
    }

    static func sctp(src: UInt16 = 2905, dst: UInt16 = 2906, _ payload: [UInt8] = [1, 0, 0, 8, 0, 0, 0, 0]) -> [UInt8] {
        var s = Ref.be16(src) + Ref.be16(dst) + Ref.be32(0x0102_0304) + [0, 0, 0, 0] + payload
        let crc = Ref.crc32c(s)
        s[8] = UInt8(crc & 0xff); s[9] = UInt8((crc >> 8) & 0xff)
        s[10] = UInt8((crc >> 16) & 0xff); s[11] = UInt8(crc >> 24)
        return s
    }

    static func icmp(type: UInt8, code: UInt8, _ payload: [UInt8] = [0, 1, 0, 1]) -> [UInt8] {
        var m: [UInt8] = [type, code, 0, 0] + payload
        Ref.put16(&m, 2, Ref.checksum(m))
        return m
    }

    /// An ICMPv6 message (checksum filled in by `withL4Checksum6`).
    static func icmpv6(type: UInt8, code: UInt8, _ payload: [UInt8] = [0, 1, 0, 1]) -> [UInt8] {
        [type, code, 0, 0] + payload
    }

    /// Fills the TCP (offset 16) or UDP (6) checksum of `segment` for IPv4.
    static func withL4Checksum4(_ segment: [UInt8], proto: UInt8, src: UInt32 = ip1, dst: UInt32 = ip2) -> [UInt8] {
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
    static func withL4Checksum6(_ segment: [UInt8], proto: UInt8, src: V6 = .a, dst: V6 = .b) -> [UInt8] {
        var s = segment
        let at = proto == 6 ? 16 : proto == 17 ? 6 : 2
        Ref.put16(&s, at, 0)
        let pseudo = src.bytes + dst.bytes + Ref.be32(UInt32(s.count)) + [0, 0, 0, proto]
        var c = Ref.checksum(pseudo + s)
        if proto == 17 && c == 0 { c = 0xffff }
        Ref.put16(&s, at, c)
        return s
    }

    static func ipv4TCP(tags: [(UInt16, UInt16)] = [], _ payload: [UInt8] = Array("hello".utf8)) -> [UInt8] {
        ethernet(tags: tags, type: 0x0800, ipv4(proto: 6, tos: 0xb9, ttl: 63,
                                               withL4Checksum4(tcp(flags: 0x112, payload), proto: 6)))
    }

    static func ipv4UDP(src: UInt16 = 5353, dst: UInt16 = 53, _ payload: [UInt8] = Array("query".utf8)) -> [UInt8] {
        ethernet(type: 0x0800, ipv4(proto: 17, withL4Checksum4(udp(src: src, dst: dst, payload), proto: 17)))
    }

    /// IPv6: hop-by-hop → destination options → routing (segments left 0) → fragment (first) → TCP.
    static func ipv6WithExtensions() -> [UInt8] {
        let l4 = withL4Checksum6(tcp(src: 443, dst: 51000, flags: 0x018, Array("data".utf8)), proto: 6)
        let chain = ext(next: 60) + ext(next: 43, units: 1) + ext(next: 44) + fragment(next: 6, offset: 0, more: true)
        return ethernet(type: 0x86dd, ipv6(next: 0, tc: 0x2e, label: 0xabcde, hopLimit: 7, chain + l4))
    }
}

/// Runs `body` on a copy of `bytes` in memory of exactly `bytes.count` bytes (so the address
/// sanitizer sees any overrun).
func withExactFrame<T>(_ bytes: [UInt8], _ body: (UnsafeMutableRawPointer, Int) -> T) -> T {
    let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
    defer { p.deallocate() }
    bytes.withUnsafeBytes { if let base = $0.baseAddress { p.copyMemory(from: base, byteCount: bytes.count) } }
    return body(p, bytes.count)
}

func extract(_ bytes: [UInt8], inPort: UInt32 = 7) -> FlowKey {
    withExactFrame(bytes) { p, n in
        var key = FlowKey()
        // A dirty key: extraction must overwrite every word.
        for i in 0..<FlowKey.wordCount { key[word: i] = 0xa5a5_a5a5_a5a5_a5a5 }
        FlowExtractor.extract(p, length: n, inPort: inPort, into: &key)
        return key
    }
}

/// The key expected for a frame whose Ethernet header is all that is valid.
func l2Key(inPort: UInt32 = 7, type: UInt16, tci: UInt64 = 0, outer: UInt64 = 0) -> FlowKey {
    var k = FlowKey()
    k.set(.inPort, UInt64(inPort))
    k.set(.dlSrc, Build.src)
    k.set(.dlDst, Build.dst)
    k.set(.dlType, UInt64(type))
    k.set(.vlanTCI, tci)
    k.set(.vlanOuterTCI, outer)
    return k
}

// MARK: - Tests

@Suite("Flow key extraction")
struct FlowExtractorTests {
    @Test func arpRequest() {
        let arp = Ref.be16(1) + Ref.be16(0x0800) + [6, 4] + Ref.be16(1) + Ref.mac(Build.src) + Ref.be32(Build.ip1)
            + Ref.mac(0) + Ref.be32(Build.ip2)
        let k = extract(Build.ethernet(dst: 0xffff_ffff_ffff, type: 0x0806, arp + [UInt8](repeating: 0, count: 18)))
        #expect(k.get(.inPort) == 7)
        #expect(k.get(.dlType) == 0x0806)
        #expect(k.get(.dlDst) == 0xffff_ffff_ffff)
        #expect(k.get(.nwProto) == 1)
        #expect(k.get(.nwSrc) == UInt64(Build.ip1))
        #expect(k.get(.nwDst) == UInt64(Build.ip2))
        #expect(k.get(.arpSha) == Build.src)
        #expect(k.get(.arpTha) == 0)
        #expect(k.get(.vlanTCI) == 0)
        // Reply, and an opcode above 0xff (not recorded, as OVS).
        var reply = arp
        Ref.put16(&reply, 6, 2)
        Ref.put32(&reply, 18, 0x0102_0304)
        #expect(extract(Build.ethernet(type: 0x0806, reply)).get(.nwProto) == 2)
        Ref.put16(&reply, 6, 0x100)
        let big = extract(Build.ethernet(type: 0x0806, reply))
        #expect(big.get(.nwProto) == 0)
        #expect(big.get(.nwSrc) == UInt64(Build.ip1))
        // Not Ethernet/IPv4 ARP, or truncated: only L2.
        var other = arp
        Ref.put16(&other, 0, 6)
        #expect(extract(Build.ethernet(type: 0x0806, other)) == l2Key(type: 0x0806))
        #expect(extract(Build.ethernet(type: 0x0806, Array(arp[..<27]))) == l2Key(type: 0x0806))
        // RARP is parsed like ARP.
        #expect(extract(Build.ethernet(type: 0x8035, arp)).get(.nwSrc) == UInt64(Build.ip1))
    }

    @Test func ipv4TCP() {
        let k = extract(Build.ipv4TCP())
        var e = l2Key(type: 0x0800)
        e.set(.nwSrc, UInt64(Build.ip1))
        e.set(.nwDst, UInt64(Build.ip2))
        e.set(.nwProto, 6)
        e.set(.nwTos, 0xb9)
        e.set(.nwTTL, 63)
        e.set(.tpSrc, 34567)
        e.set(.tpDst, 80)
        e.set(.tcpFlags, 0x112)
        #expect(k == e)
        // Only 12 bits of flags: the data offset is not part of them.
        let k2 = extract(Build.ethernet(type: 0x0800, Build.ipv4(proto: 6, Build.tcp(flags: 0xfff))))
        #expect(k2.get(.tcpFlags) == 0xfff)
        // TCP header shorter than 20 bytes of IP payload: L3 only.
        let short = extract(Build.ethernet(type: 0x0800, Build.ipv4(proto: 6, Array(Build.tcp()[..<19]))))
        #expect(short.get(.nwProto) == 6 && short.get(.tpSrc) == 0 && short.get(.tpDst) == 0 && short.get(.tcpFlags) == 0)
        #expect(short.get(.nwSrc) == UInt64(Build.ip1))
    }

    @Test func ipv4UDPAndSCTPAndICMP() {
        let u = extract(Build.ipv4UDP())
        #expect(u.get(.nwProto) == 17 && u.get(.tpSrc) == 5353 && u.get(.tpDst) == 53 && u.get(.tcpFlags) == 0)
        let s = extract(Build.ethernet(type: 0x0800, Build.ipv4(proto: 132, Build.sctp())))
        #expect(s.get(.nwProto) == 132 && s.get(.tpSrc) == 2905 && s.get(.tpDst) == 2906)
        let echo = extract(Build.ethernet(type: 0x0800, Build.ipv4(proto: 1, Build.icmp(type: 8, code: 0))))
        #expect(echo.get(.nwProto) == 1 && echo.get(.tpSrc) == 8 && echo.get(.tpDst) == 0)
        let unreachable = extract(Build.ethernet(type: 0x0800, Build.ipv4(proto: 1, Build.icmp(type: 3, code: 1))))
        #expect(unreachable.get(.tpSrc) == 3 && unreachable.get(.tpDst) == 1)
        // ICMPv6's protocol number over IPv4 is not ICMP.
        let odd = extract(Build.ethernet(type: 0x0800, Build.ipv4(proto: 58, Build.icmp(type: 128, code: 0))))
        #expect(odd.get(.nwProto) == 58 && odd.get(.tpSrc) == 0)
        // UDP header truncated by the IP total length.
        let short = extract(Build.ethernet(type: 0x0800, Build.ipv4(proto: 17, Array(Build.udp()[..<7]))))
        #expect(short.get(.nwProto) == 17 && short.get(.tpSrc) == 0)
    }

    @Test func ipv4OptionsAndPadding() {
        let withOptions = Build.ethernet(type: 0x0800, Build.ipv4(proto: 17, options: [1, 1, 1, 0], Build.udp()))
        let k = extract(withOptions)
        #expect(k.get(.tpSrc) == 5353 && k.get(.tpDst) == 53 && k.get(.nwDst) == UInt64(Build.ip2))
        // Ethernet padding after the IP total length is ignored (a 60-byte minimum frame).
        let small = Build.ethernet(type: 0x0800, Build.ipv4(proto: 17, Build.udp()))
        let padded = small + [UInt8](repeating: 0xee, count: 60 - small.count)
        #expect(extract(padded) == extract(small))
    }

    @Test func ipv4Fragments() {
        let first = extract(Build.ethernet(type: 0x0800, Build.ipv4(proto: 17, frag: 0x2000, Build.udp())))
        #expect(first.get(.nwFrag) == FlowConstants.fragAny)
        #expect(first.get(.tpSrc) == 5353)
        let later = extract(Build.ethernet(type: 0x0800, Build.ipv4(proto: 17, frag: 185, Build.udp())))
        #expect(later.get(.nwFrag) == FlowConstants.fragAny | FlowConstants.fragLater)
        #expect(later.get(.nwProto) == 17 && later.get(.nwSrc) == UInt64(Build.ip1))
        #expect(later.get(.tpSrc) == 0 && later.get(.tpDst) == 0)
        let last = extract(Build.ethernet(type: 0x0800, Build.ipv4(proto: 6, frag: 0x0001, Build.tcp())))
        #expect(last.get(.nwFrag) == 3 && last.get(.tcpFlags) == 0)
        // DF alone is not a fragment.
        let df = extract(Build.ethernet(type: 0x0800, Build.ipv4(proto: 17, frag: 0x4000, Build.udp())))
        #expect(df.get(.nwFrag) == 0 && df.get(.tpDst) == 53)
    }

    @Test func invalidIPv4StopsAfterL2() {
        let good = Build.ipv4(proto: 17, Build.udp())
        var badIHL = good
        badIHL[0] = 0x44
        var badVersion = good
        badVersion[0] = 0x55
        var longIHL = good
        longIHL[0] = 0x4f // 60 bytes > IP total length of 28 and frame
        var overlong = good
        Ref.put16(&overlong, 2, UInt16(good.count + 1))
        var underIHL = good
        Ref.put16(&underIHL, 2, 19)
        for ip in [badIHL, badVersion, longIHL, overlong, underIHL] {
            #expect(extract(Build.ethernet(type: 0x0800, ip)) == l2Key(type: 0x0800))
        }
    }

    @Test func ipv6Plain() {
        let tcp = Build.withL4Checksum6(Build.tcp(flags: 0x002), proto: 6)
        let k = extract(Build.ethernet(type: 0x86dd, Build.ipv6(next: 6, tc: 0xb8, label: 0x12345, hopLimit: 255, tcp)))
        var e = l2Key(type: 0x86dd)
        e.set(.ipv6SrcHigh, V6.a.high); e.set(.ipv6SrcLow, V6.a.low)
        e.set(.ipv6DstHigh, V6.b.high); e.set(.ipv6DstLow, V6.b.low)
        e.set(.ipv6Label, 0x12345)
        e.set(.nwTos, 0xb8)
        e.set(.nwTTL, 255)
        e.set(.nwProto, 6)
        e.set(.tpSrc, 34567)
        e.set(.tpDst, 80)
        e.set(.tcpFlags, 0x002)
        #expect(k == e)
        let udp = extract(Build.ethernet(type: 0x86dd, Build.ipv6(next: 17, Build.udp())))
        #expect(udp.get(.tpSrc) == 5353 && udp.get(.tpDst) == 53)
        let sctp = extract(Build.ethernet(type: 0x86dd, Build.ipv6(next: 132, Build.sctp())))
        #expect(sctp.get(.tpSrc) == 2905 && sctp.get(.tpDst) == 2906)
    }

    @Test func icmpv6() {
        let echo = extract(Build.ethernet(type: 0x86dd, Build.ipv6(next: 58, Build.icmpv6(type: 128, code: 0))))
        #expect(echo.get(.nwProto) == 58 && echo.get(.tpSrc) == 128 && echo.get(.tpDst) == 0)
        let ns = Build.icmpv6(type: 135, code: 0, [0, 0, 0, 0] + V6.b.bytes)
        let k = extract(Build.ethernet(type: 0x86dd, Build.ipv6(next: 58, hopLimit: 255, ns)))
        #expect(k.get(.tpSrc) == 135 && k.get(.nwTTL) == 255)
        // ICMP's (v4) protocol number over IPv6 is not parsed.
        let odd = extract(Build.ethernet(type: 0x86dd, Build.ipv6(next: 1, Build.icmp(type: 8, code: 0))))
        #expect(odd.get(.nwProto) == 1 && odd.get(.tpSrc) == 0)
        // Shorter than 8 bytes: no type/code.
        let short = extract(Build.ethernet(type: 0x86dd, Build.ipv6(next: 58, [128, 0, 0, 0])))
        #expect(short.get(.nwProto) == 58 && short.get(.tpSrc) == 0)
    }

    @Test func ipv6ExtensionHeadersAndFragments() {
        let k = extract(Build.ipv6WithExtensions())
        #expect(k.get(.nwProto) == 6)
        #expect(k.get(.nwFrag) == FlowConstants.fragAny)
        #expect(k.get(.tpSrc) == 443 && k.get(.tpDst) == 51000 && k.get(.tcpFlags) == 0x018)
        #expect(k.get(.nwTos) == 0x2e && k.get(.ipv6Label) == 0xabcde && k.get(.nwTTL) == 7)

        // A later fragment: nw_proto 44, no L4, even though the bytes after it look like UDP.
        let later = Build.ipv6(next: 44, Build.fragment(next: 17, offset: 100, more: false) + Build.udp())
        let lk = extract(Build.ethernet(type: 0x86dd, later))
        #expect(lk.get(.nwFrag) == 3 && lk.get(.nwProto) == 44 && lk.get(.tpSrc) == 0)
        #expect(lk.get(.ipv6SrcHigh) == V6.a.high)

        // An atomic fragment (offset 0, M clear) is not a fragment.
        let atomic = Build.ipv6(next: 44, Build.fragment(next: 17, offset: 0, more: false) + Build.udp())
        let ak = extract(Build.ethernet(type: 0x86dd, atomic))
        #expect(ak.get(.nwFrag) == 0 && ak.get(.nwProto) == 17 && ak.get(.tpDst) == 53)

        // AH: length in 4-byte units minus 2.
        var ah = [UInt8](repeating: 0, count: 16)
        ah[0] = 17; ah[1] = 2
        let ahk = extract(Build.ethernet(type: 0x86dd, Build.ipv6(next: 51, ah + Build.udp())))
        #expect(ahk.get(.nwProto) == 17 && ahk.get(.tpSrc) == 5353)
    }

    @Test func malformedIPv6ChainsRecordOnlyAddresses() {
        var addressesOnly = l2Key(type: 0x86dd)
        addressesOnly.set(.ipv6SrcHigh, V6.a.high); addressesOnly.set(.ipv6SrcLow, V6.a.low)
        addressesOnly.set(.ipv6DstHigh, V6.b.high); addressesOnly.set(.ipv6DstLow, V6.b.low)
        // An extension header longer than the payload.
        let overlong = Build.ext(next: 17, units: 3)
        #expect(extract(Build.ethernet(type: 0x86dd, Build.ipv6(next: 0, hopLimit: 9, Array(overlong[..<16])))) == addressesOnly)
        // Fewer than 8 bytes left for an extension header.
        #expect(extract(Build.ethernet(type: 0x86dd, Build.ipv6(next: 60, [17, 0, 0, 0]))) == addressesOnly)
        // Eight destination-options headers are fine; nine are too many.
        func chain(_ n: Int) -> [UInt8] {
            var c: [UInt8] = []
            for i in 0..<n { c += Build.ext(next: i == n - 1 ? 17 : 60) }
            return Build.ethernet(type: 0x86dd, Build.ipv6(next: 60, c + Build.udp()))
        }
        #expect(extract(chain(8)).get(.tpSrc) == 5353)
        #expect(extract(chain(9)) == addressesOnly)
        // Wrong version, payload length beyond the frame: L2 only.
        var v4 = Build.ipv6(next: 17, Build.udp())
        v4[0] = 0x40
        #expect(extract(Build.ethernet(type: 0x86dd, v4)) == l2Key(type: 0x86dd))
        let long = Build.ipv6(next: 17, payloadLength: 9, Build.udp())
        #expect(extract(Build.ethernet(type: 0x86dd, long)) == l2Key(type: 0x86dd))
        // A payload length shorter than the frame ends L4 there (UDP header cut to 7 bytes).
        let cut = Build.ipv6(next: 17, payloadLength: 7, Build.udp())
        let ck = extract(Build.ethernet(type: 0x86dd, cut))
        #expect(ck.get(.nwProto) == 17 && ck.get(.tpSrc) == 0)
    }

    @Test func vlanTags() {
        let single = extract(Build.ipv4TCP(tags: [(0x8100, 0x2064)]))
        #expect(single.get(.vlanTCI) == 0x3064 && single.get(.vlanOuterTCI) == 0)
        #expect(single.get(.dlType) == 0x0800 && single.get(.tpDst) == 80)
        // VID 0 priority-tagged: still present.
        #expect(extract(Build.ipv4TCP(tags: [(0x8100, 0)])).get(.vlanTCI) == 0x1000)

        let qinq = extract(Build.ipv4TCP(tags: [(0x88a8, 0x000a), (0x8100, 0xe014)]))
        #expect(qinq.get(.vlanOuterTCI) == 0x100a && qinq.get(.vlanTCI) == 0xf014)
        #expect(qinq.get(.dlType) == 0x0800 && qinq.get(.nwSrc) == UInt64(Build.ip1) && qinq.get(.tpSrc) == 34567)

        // Three tags: the third is not parsed; dl_type is its TPID and nothing above L2 is.
        let three = extract(Build.ipv4TCP(tags: [(0x88a8, 1), (0x8100, 2), (0x8100, 3)]))
        #expect(three == l2Key(type: 0x8100, tci: 0x1002, outer: 0x1001))
    }

    /// The L2-only extraction a table of L2 rules uses: the full key with every field past L2 zero.
    @Test func linkLayerOnly() {
        let frames = [Build.ipv4TCP(), Build.ipv4UDP(), Build.ipv4TCP(tags: [(0x88a8, 0x000a), (0x8100, 0xe014)]),
                      Build.ipv4TCP(tags: [(0x8100, 0x2064)])]
        for frame in frames {
            let full = extract(frame)
            var expected = l2Key(type: UInt16(full.get(.dlType)), tci: full.get(.vlanTCI), outer: full.get(.vlanOuterTCI))
            expected.set(.inPort, 7)
            let linkLayer = withExactFrame(frame) { p, n in
                var key = FlowKey()
                for i in 0..<FlowKey.wordCount { key[word: i] = 0xa5a5_a5a5_a5a5_a5a5 }
                FlowExtractor.extractLinkLayer(p, length: n, inPort: 7, into: &key)
                return key
            }
            #expect(linkLayer == expected)
        }
        var mask = FlowKey()
        for field in [FlowField.inPort, .dlType, .vlanTCI, .dlSrc, .dlDst, .vlanOuterTCI, .tunId, .tunSrc, .tunDst] {
            mask.set(field, field.layout.valueMask)
        }
        #expect(!FlowExtractor.looksPastLinkLayer(mask))
        for field in [FlowField.nwProto, .nwTos, .nwTTL, .nwFrag, .nwSrc, .tpDst, .tcpFlags, .ipv6Label, .ipv6DstLow, .arpSha] {
            var past = FlowKey()
            past.set(field, 1)
            #expect(FlowExtractor.looksPastLinkLayer(past), "\(field)")
        }
    }

    @Test func nonEthernetII() {
        // 802.3 with LLC: dl_type 0x05ff, nothing else.
        let llc = Build.ethernet(type: 0x0026, [0x42, 0x42, 0x03] + [UInt8](repeating: 0, count: 35))
        #expect(extract(llc) == l2Key(type: 0x05ff))
        // Also behind a VLAN tag.
        let tagged = Build.ethernet(tags: [(0x8100, 5)], type: 0x0100, [UInt8](repeating: 0, count: 40))
        #expect(extract(tagged) == l2Key(type: 0x05ff, tci: 0x1005))
        // Unknown ethertype: L2 only.
        #expect(extract(Build.ethernet(type: 0x88cc, [1, 2, 3])) == l2Key(type: 0x88cc))
    }

    @Test func tooShortForEthernet() {
        var onlyPort = FlowKey()
        onlyPort.set(.inPort, 7)
        for n in 0..<14 {
            #expect(extract(Array(Build.ipv4TCP()[..<n])) == onlyPort)
        }
    }

    @Test func tunnelMetadata() {
        let frame = Build.ipv4UDP()
        let k = withExactFrame(frame) { p, n in
            var key = FlowKey()
            FlowExtractor.extract(p, length: n, inPort: 3, tunnelID: 0x1234, tunnelSource: 0x0a00_0001,
                                  tunnelDestination: 0x0a00_0002, into: &key)
            return key
        }
        #expect(k.get(.tunId) == 0x1234 && k.get(.tunSrc) == 0x0a00_0001 && k.get(.tunDst) == 0x0a00_0002)
        var plain = extract(frame, inPort: 3)
        #expect(plain.get(.tunId) == 0 && plain.get(.tunSrc) == 0)
        plain.set(.tunId, 0x1234); plain.set(.tunSrc, 0x0a00_0001); plain.set(.tunDst, 0x0a00_0002)
        #expect(plain == k)
    }

    /// Every prefix of a double-tagged TCP/IPv4 frame: parsing records exactly the valid part
    /// (the IP total length covers the whole frame, so a cut IP packet is invalid as in OVS).
    @Test func truncatedIPv4AtEveryLength() {
        let tags: [(UInt16, UInt16)] = [(0x88a8, 0x0010), (0x8100, 0x0020)]
        let frame = Build.ipv4TCP(tags: tags)
        let full = extract(frame)
        #expect(full.get(.tpDst) == 80)
        for n in 0...frame.count {
            let k = extract(Array(frame[..<n]))
            let expected: FlowKey
            switch n {
            case 0..<14: var e = FlowKey(); e.set(.inPort, 7); expected = e
            case 14..<18: expected = l2Key(type: 0x88a8)
            case 18..<22: expected = l2Key(type: 0x8100, tci: 0x1010)
            case 22..<frame.count: expected = l2Key(type: 0x0800, tci: 0x1020, outer: 0x1010)
            default: expected = full
            }
            #expect(k == expected, "length \(n)")
        }
        // Also with the IP total length reduced to the cut, so L3 is valid and L4 is cut.
        let ipStart = 22
        for cut in (ipStart + 20)...frame.count {
            var f = Array(frame[..<cut])
            Ref.put16(&f, ipStart + 2, UInt16(cut - ipStart))
            let k = extract(f)
            #expect(k.get(.nwSrc) == UInt64(Build.ip1) && k.get(.nwProto) == 6)
            #expect(k.get(.tpDst) == (cut - ipStart - 20 >= 20 ? 80 : 0), "cut \(cut)")
        }
    }

    @Test func truncatedIPv6AtEveryLength() {
        let frame = Build.ipv6WithExtensions()
        let full = extract(frame)
        #expect(full.get(.tpSrc) == 443)
        for n in 0...frame.count {
            let k = extract(Array(frame[..<n]))
            let expected: FlowKey
            switch n {
            case 0..<14: var e = FlowKey(); e.set(.inPort, 7); expected = e
            case 14..<frame.count: expected = l2Key(type: 0x86dd)
            default: expected = full
            }
            #expect(k == expected, "length \(n)")
        }
        // With the payload length reduced to the cut: the chain or L4 is cut, never read beyond it.
        for cut in 54...frame.count {
            var f = Array(frame[..<cut])
            Ref.put16(&f, 18, UInt16(cut - 54))
            let k = extract(f)
            #expect(k.get(.ipv6SrcLow) == V6.a.low)
            // hop-by-hop 8 + dest 16 + routing 8 + fragment 8 = 40 bytes of chain, then 20 of TCP.
            let payload = cut - 54
            #expect(k.get(.nwProto) == (payload >= 40 ? 6 : 0), "cut \(cut)")
            #expect(k.get(.tpSrc) == (payload >= 60 ? 443 : 0), "cut \(cut)")
        }
    }

    /// Random corruption of valid frames at random lengths: extraction always returns (run under
    /// the address sanitizer to check that nothing outside the frame is read).
    @Test func randomCorruptionNeverCrashes() {
        var rng = SplitMix(seed: 42)
        let seeds = [Build.ipv4TCP(), Build.ipv4UDP(), Build.ipv6WithExtensions(),
                     Build.ipv4TCP(tags: [(0x8100, 1), (0x88a8, 2)]),
                     Build.ethernet(type: 0x86dd, Build.ipv6(next: 58, Build.icmpv6(type: 128, code: 0)))]
        for _ in 0..<20000 {
            var f = seeds[Int(rng.next() % UInt64(seeds.count))]
            for _ in 0..<Int(rng.next() % 4) {
                f[Int(rng.next() % UInt64(f.count))] = UInt8(truncatingIfNeeded: rng.next())
            }
            let n = Int(rng.next() % UInt64(f.count + 1))
            let k = extract(Array(f[..<n]), inPort: 9)
            #expect(k.get(.inPort) == 9)
            #expect(k.w12 == 0 && k.w13 == 0 && k.w14 == 0 && k.w15 == 0)
        }
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }
}
