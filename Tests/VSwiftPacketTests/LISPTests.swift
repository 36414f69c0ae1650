import Testing
import VSwiftTesting
import VSwiftPacket

/// Frames and outer headers for the LISP tests; expected bytes are spelled out here, independently
/// of the code under test.
enum LISPFixture {
    static let nextHop: UInt64 = 0x5254_00aa_bbcc
    static let device: UInt64 = 0x0211_2233_4455
    static let rloc4a: UInt32 = 0xc000_0201 // 192.0.2.1
    static let rloc4b: UInt32 = 0xc633_6407 // 198.51.100.7
    static let rloc6a = V6(high: 0x2001_0db8_0000_0000, low: 1)
    static let rloc6b = V6(high: 0x2001_0db8_ffff_0000, low: 2)

    static func parameters(outer6: Bool, port: UInt16 = 4341, offload: Bool = false)
        -> LISP.EncapsulationParameters {
        LISP.EncapsulationParameters(
            ethernetDestination: nextHop, ethernetSource: device,
            source: outer6 ? IPAddress(high: rloc6a.high, low: rloc6a.low) : IPAddress(ipv4: rloc4a),
            destination: outer6 ? IPAddress(high: rloc6b.high, low: rloc6b.low) : IPAddress(ipv4: rloc4b),
            udpDestinationPort: port, offloadUDPChecksum: offload)
    }

    /// An inner IP packet: UDP for IPv4, TCP for IPv6 (odd lengths on purpose, for the checksum).
    static func inner(v6: Bool, tos: UInt8 = 0, sport: UInt16 = 40000, dport: UInt16 = 80,
                      payload: [UInt8] = Array("hello, lisp".utf8)) -> [UInt8] {
        if v6 {
            return Build.ipv6(next: 6, tc: tos, label: 0x12345, Build.withL4Checksum6(
                Build.tcp(src: sport, dst: dport, payload), proto: 6))
        }
        return Build.ipv4(proto: 17, tos: tos, Build.withL4Checksum4(Build.udp(src: sport, dst: dport, payload), proto: 17))
    }

    static func frame(_ inner: [UInt8], tags: [(UInt16, UInt16)] = []) -> [UInt8] {
        Build.ethernet(tags: tags, type: inner[0] >> 4 == 6 ? 0x86dd : 0x0800, inner)
    }

    /// The expected encapsulation of `inner`, with the UDP source port taken as given (it is a hash).
    /// `ttl` and `tos` (the whole outer TOS / traffic class byte) default to the inner header's
    /// (ttl=inherit, tos=inherit; ECN copied as RFC 6040 §4.1 says).
    static func expected(inner: [UInt8], outer6: Bool, iid: UInt32, sourcePort: UInt16, ttl: UInt8? = nil,
                         tos: UInt8? = nil, id: UInt16 = 0x1234, port: UInt16 = 4341) -> [UInt8] {
        let innerV6 = inner[0] >> 4 == 6
        let dscp = tos ?? (innerV6 ? UInt8((Ref.u16(inner, 0) >> 4) & 0xff) : inner[1])
        let ttl = ttl ?? (innerV6 ? inner[7] : inner[8])
        let udpLength = UInt16(16 + inner.count)
        var udp = Ref.be16(sourcePort) + Ref.be16(port) + Ref.be16(udpLength) + [0, 0]
        let lisp: [UInt8] = [0x48, 0, 0, 0, UInt8(iid >> 16 & 0xff), UInt8(iid >> 8 & 0xff), UInt8(iid & 0xff), 0x01]
        if outer6 {
            let ip = Ref.be32(0x6000_0000 | UInt32(dscp) << 20) + Ref.be16(udpLength) + [17, ttl]
                + rloc6a.bytes + rloc6b.bytes
            let pseudo = rloc6a.bytes + rloc6b.bytes + Ref.be32(UInt32(udpLength)) + [0, 0, 0, 17]
            var c = Ref.checksum(pseudo + udp + lisp + inner)
            if c == 0 { c = 0xffff }
            Ref.put16(&udp, 6, c)
            return Ref.mac(nextHop) + Ref.mac(device) + [0x86, 0xdd] + ip + udp + lisp + inner
        }
        var ip: [UInt8] = [0x45, dscp] + Ref.be16(udpLength + 20) + Ref.be16(id) + [0x40, 0x00, ttl, 17, 0, 0]
            + Ref.be32(rloc4a) + Ref.be32(rloc4b)
        Ref.put16(&ip, 10, Ref.checksum(ip))
        return Ref.mac(nextHop) + Ref.mac(device) + [0x08, 0x00] + ip + udp + lisp + inner
    }
}

/// Runs `encapsulate` on `frame` with `headroom` bytes before it and guard bytes around both.
struct EncapRun {
    var result: LISP.EncapsulationResult
    var output: [UInt8]
    /// The whole buffer (headroom, frame) is as before.
    var untouched: Bool
    var guardsIntact: Bool
}

func runEncap(_ frame: [UInt8], headroom: Int = 128, iid: UInt32 = 0,
              parameters: LISP.EncapsulationParameters, fields: LISP.OuterFields = LISP.OuterFields(),
              id: UInt16 = 0x1234) -> EncapRun {
    let guardBytes = 16
    let total = guardBytes * 2 + headroom + frame.count
    let base = UnsafeMutableRawPointer.allocate(byteCount: total, alignment: 8)
    defer { base.deallocate() }
    for i in 0..<total { base.storeBytes(of: UInt8(truncatingIfNeeded: i &* 7 ^ 0x5a), toByteOffset: i, as: UInt8.self) }
    let start = base + guardBytes + headroom
    frame.withUnsafeBytes { if let b = $0.baseAddress { start.copyMemory(from: b, byteCount: frame.count) } }
    let before = Array(UnsafeRawBufferPointer(start: base, count: total))
    var p = start
    var length = frame.count
    let result = LISP.encapsulate(&p, length: &length, headroom: headroom, instanceID: iid,
                                  parameters: parameters, fields: fields, ipIdentification: id)
    let after = Array(UnsafeRawBufferPointer(start: base, count: total))
    let guardsIntact = after[..<guardBytes] == before[..<guardBytes]
        && after[(total - guardBytes)...] == before[(total - guardBytes)...]
    #expect(p >= base + guardBytes && p + length <= start + frame.count)
    return EncapRun(result: result, output: Array(UnsafeRawBufferPointer(start: p, count: length)),
                    untouched: after == before, guardsIntact: guardsIntact)
}

/// `parseOuter` on a copy of `frame` in memory of exactly its length.
func parseOuter(_ frame: [UInt8], port: UInt16 = 4341) -> (LISP.OuterParseResult, LISP.OuterHeaders) {
    let p = UnsafeMutableRawPointer.allocate(byteCount: frame.count, alignment: 1)
    defer { p.deallocate() }
    frame.withUnsafeBytes { if let b = $0.baseAddress { p.copyMemory(from: b, byteCount: frame.count) } }
    var outer = LISP.OuterHeaders()
    let result = LISP.parseOuter(p, length: frame.count, udpPort: port, into: &outer)
    return (result, outer)
}

/// parseOuter + decapsulate: the resulting frame, or nil when not `.lisp` or dropped.
func decap(_ frame: [UInt8], port: UInt16 = 4341) -> [UInt8]? {
    let (result, output) = decapResult(frame, port: port)
    return result == .done ? output : nil
}

/// parseOuter (which must say `.lisp`) + decapsulate: the result and the frame after it (the
/// whole buffer, unchanged, when dropped).
func decapResult(_ frame: [UInt8], port: UInt16 = 4341) -> (LISP.DecapsulationResult?, [UInt8]) {
    let base = UnsafeMutableRawPointer.allocate(byteCount: frame.count, alignment: 1)
    defer { base.deallocate() }
    frame.withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: frame.count) }
    var outer = LISP.OuterHeaders()
    guard LISP.parseOuter(base, length: frame.count, udpPort: port, into: &outer) == .lisp else { return (nil, frame) }
    var p = base
    var length = frame.count
    let result = LISP.decapsulate(&p, length: &length, outer: &outer)
    #expect(p >= base && p + length <= base + frame.count)
    if result != .done { #expect(p == base && length == frame.count) }
    return (result, Array(UnsafeRawBufferPointer(start: p, count: length)))
}

let decapsulatedHeader4: [UInt8] = [2, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0x08, 0x00]
let decapsulatedHeader6: [UInt8] = [2, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0x86, 0xdd]

@Suite struct LISPEncapsulationTests {
    static let cases: [(Bool, Bool, UInt32)] = [
        (false, false, 0), (false, false, 0xabcdef), (true, false, 0), (true, false, 0x000102),
        (false, true, 0), (false, true, 0xfedcba), (true, true, 0), (true, true, 0x123456),
    ]

    /// (inner IPv6, outer IPv6, instance ID): byte-exact against hand-built headers, with and
    /// without VLAN tags on the input.
    @Test(arguments: cases)
    func byteExact(innerV6: Bool, outerV6: Bool, iid: UInt32) throws {
        let inner = LISPFixture.inner(v6: innerV6, tos: 0xb9)
        let params = LISPFixture.parameters(outer6: outerV6)
        let run = runEncap(LISPFixture.frame(inner), iid: iid, parameters: params)
        #expect(run.result == .done)
        #expect(run.guardsIntact)
        let out = run.output
        let udp = outerV6 ? 54 : 34
        try #require(out.count == (outerV6 ? 70 : 50) + inner.count)
        let sourcePort = Ref.u16(out, udp)
        #expect(sourcePort >= 49152)
        #expect(out == LISPFixture.expected(inner: inner, outer6: outerV6, iid: iid, sourcePort: sourcePort))
        // DSCP 46 and ECN ECT(1) copied (tos=inherit; RFC 6040 §4.1 normal mode), TTL 64 too.
        #expect(outerV6 ? (Ref.u32(out, 14) >> 20) & 0xff == 0xb9 : out[15] == 0xb9)
        #expect(out[outerV6 ? 21 : 22] == 64)
        // Checksums verify with a plain reference sum.
        if outerV6 {
            let pseudo = Array(out[22..<54]) + Ref.be32(UInt32(out.count - 54)) + [0, 0, 0, 17]
            #expect(Ref.sum(pseudo + Array(out[54...])) == 0xffff)
            #expect(Ref.u16(out, 60) != 0)
        } else {
            #expect(Ref.sum(Array(out[14..<34])) == 0xffff)
            #expect(Ref.u16(out, 40) == 0)
        }
        // VLAN-tagged input: the tags go with the Ethernet header.
        for tags in [[(UInt16(0x8100), UInt16(0x2064))], [(0x88a8, 0x0005), (0x8100, 0xe123)]] as [[(UInt16, UInt16)]] {
            let tagged = runEncap(LISPFixture.frame(inner, tags: tags), iid: iid, parameters: params)
            #expect(tagged.result == .done)
            #expect(tagged.guardsIntact)
            #expect(tagged.output == out)
        }
    }

    /// A short packet in a padded 60-byte frame: the padding stays behind (found by the flow trace:
    /// a 28-byte ping left as 46 bytes of inner payload).
    @Test(arguments: [false, true])
    func ethernetPaddingIsNotEncapsulated(outerV6: Bool) throws {
        for innerV6 in [false, true] {
            let inner = LISPFixture.inner(v6: innerV6, payload: [])
            let padded = LISPFixture.frame(inner) + [UInt8](repeating: 0xee, count: 30)
            let run = runEncap(padded, parameters: LISPFixture.parameters(outer6: outerV6))
            #expect(run.result == .done)
            let out = run.output
            let sourcePort = Ref.u16(out, outerV6 ? 54 : 34)
            #expect(out == LISPFixture.expected(inner: inner, outer6: outerV6, iid: 0, sourcePort: sourcePort))
        }
    }

    @Test func instanceIDIsTwentyFourBits() {
        let run = runEncap(LISPFixture.frame(LISPFixture.inner(v6: false)), iid: 0xff12_3456,
                           parameters: LISPFixture.parameters(outer6: false))
        #expect(Array(run.output[42..<50]) == [0x48, 0, 0, 0, 0x12, 0x34, 0x56, 0x01])
    }

    @Test func ttlIdentificationAndPort() {
        let inner = LISPFixture.inner(v6: false)
        let run = runEncap(LISPFixture.frame(inner), iid: 7, parameters: LISPFixture.parameters(outer6: false, port: 4342),
                           fields: LISP.OuterFields(ttl: 3), id: 0xbeef)
        let sp = Ref.u16(run.output, 34)
        #expect(run.output == LISPFixture.expected(inner: inner, outer6: false, iid: 7, sourcePort: sp, ttl: 3, id: 0xbeef,
                                                   port: 4342))
        let run6 = runEncap(LISPFixture.frame(inner), iid: 7, parameters: LISPFixture.parameters(outer6: true),
                            fields: LISP.OuterFields(ttl: 200))
        #expect(run6.output[21] == 200)
    }

    /// With offload, the field holds the pseudo-header sum; a device completing it (complement of
    /// the sum from csum_start to the end) produces the software checksum.
    @Test func offloadedUDPChecksum() {
        for innerV6 in [false, true] {
            let frame = LISPFixture.frame(LISPFixture.inner(v6: innerV6))
            let soft = runEncap(frame, iid: 9, parameters: LISPFixture.parameters(outer6: true)).output
            let run = runEncap(frame, iid: 9, parameters: LISPFixture.parameters(outer6: true, offload: true))
            var out = run.output
            let start = LISP.ipv6UDPChecksumStart
            let at = start + LISP.udpChecksumOffset
            #expect(at == 60)
            let pseudo = Array(out[22..<54]) + Ref.be32(UInt32(out.count - 54)) + [0, 0, 0, 17]
            #expect(UInt32(Ref.u16(out, at)) == Ref.sum(pseudo))
            var completed = ~UInt16(Ref.sum(Array(out[start...])))
            if completed == 0 { completed = 0xffff }
            Ref.put16(&out, at, completed)
            #expect(out == soft)
            // Over IPv4 the flag changes nothing.
            #expect(runEncap(frame, iid: 9, parameters: LISPFixture.parameters(outer6: false, offload: true)).output
                == runEncap(frame, iid: 9, parameters: LISPFixture.parameters(outer6: false)).output)
        }
    }

    static func sourcePort(_ inner: [UInt8], outer6: Bool = false) -> UInt16 {
        let run = runEncap(LISPFixture.frame(inner), parameters: LISPFixture.parameters(outer6: outer6))
        #expect(run.result == .done)
        return Ref.u16(run.output, outer6 ? 54 : 34)
    }

    @Test func sourcePortIsPerFlow() {
        for v6 in [false, true] {
            // One flow: other payloads, DSCP, IP identification, outer family → one port.
            let a = Self.sourcePort(LISPFixture.inner(v6: v6, sport: 1111, dport: 80, payload: [1]))
            #expect(a == Self.sourcePort(LISPFixture.inner(v6: v6, tos: 0x20, sport: 1111, dport: 80,
                                                           payload: Array(repeating: 9, count: 300))))
            #expect(a == Self.sourcePort(LISPFixture.inner(v6: v6, sport: 1111, dport: 80), outer6: true))
            // Different flows → mostly different ports (14 bits of hash).
            var ports = Set<UInt16>()
            for sport in UInt16(1000)..<1032 { ports.insert(Self.sourcePort(LISPFixture.inner(v6: v6, sport: sport))) }
            for dport in UInt16(1)..<33 { ports.insert(Self.sourcePort(LISPFixture.inner(v6: v6, sport: 5, dport: dport))) }
            #expect(ports.count >= 60)
            #expect(ports.allSatisfy { $0 >= 49152 })
        }
        // Addresses count, and the protocol.
        let base = Self.sourcePort(Build.ipv4(proto: 17, Build.udp()))
        let others = [
            Self.sourcePort(Build.ipv4(src: Build.ip1 + 1, proto: 17, Build.udp())),
            Self.sourcePort(Build.ipv4(dst: Build.ip2 + 1, proto: 17, Build.udp())),
            Self.sourcePort(Build.ipv4(proto: 6, Build.udp())),
            Self.sourcePort(Build.ipv6(src: .c, next: 17, Build.udp())),
            Self.sourcePort(Build.ipv6(dst: .c, next: 17, Build.udp())),
        ]
        #expect(Set(others + [base]).count == 6)
    }

    /// Fragments hash without ports, so all fragments of one datagram share a port.
    @Test func fragmentsOfOneDatagramShareAPort() {
        let first = Build.ipv4(proto: 17, frag: 0x2000, Build.udp(src: 1, dst: 2, Array(repeating: 1, count: 16)))
        let later = Build.ipv4(proto: 17, frag: 0x0003, Array(repeating: 7, count: 16))
        #expect(Self.sourcePort(first) == Self.sourcePort(later))
        let first6 = Build.ipv6(next: 44, Build.fragment(next: 17, offset: 0, more: true) + Build.udp(src: 1, dst: 2, [1]))
        let later6 = Build.ipv6(next: 44, Build.fragment(next: 17, offset: 8, more: false) + [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(Self.sourcePort(first6) == Self.sourcePort(later6))
        // Ports behind extension headers count.
        let ext1 = Build.ipv6(next: 0, Build.ext(next: 6) + Build.tcp(src: 1))
        let ext2 = Build.ipv6(next: 0, Build.ext(next: 6) + Build.tcp(src: 2))
        #expect(Self.sourcePort(ext1) != Self.sourcePort(ext2))
    }

    @Test func notIPIsUntouched() {
        let params = LISPFixture.parameters(outer6: false)
        let arp = Build.ethernet(type: 0x0806, [0, 1, 8, 0, 6, 4, 0, 1] + [UInt8](repeating: 0x11, count: 20))
        let frames: [[UInt8]] = [
            arp,
            Build.ethernet(tags: [(0x8100, 5)], type: 0x0806, Array(arp[14...])),
            Build.ethernet(type: 0x0800, []),
            Build.ethernet(type: 0x0800, Array(LISPFixture.inner(v6: false)[..<19])), // short IPv4 header
            Build.ethernet(type: 0x0800, LISPFixture.inner(v6: true)), // version 6 as 0x0800
            Build.ethernet(type: 0x86dd, LISPFixture.inner(v6: false)),
            Build.ethernet(type: 0x86dd, Array(LISPFixture.inner(v6: true)[..<39])),
            // Three tags: the inner type is not IP.
            Build.ethernet(tags: [(0x8100, 1), (0x8100, 2), (0x8100, 3)], type: 0x0800, LISPFixture.inner(v6: false)),
            Array(arp[..<13]),
        ]
        for frame in frames {
            let run = runEncap(frame, iid: 1, parameters: params)
            #expect(run.result == .notIP)
            #expect(run.untouched)
        }
    }

    @Test func noRoomIsUntouched() {
        for outer6 in [false, true] {
            let params = LISPFixture.parameters(outer6: outer6)
            let overhead = outer6 ? LISP.overheadIPv6 : LISP.overheadIPv4
            #expect(overhead == (outer6 ? 70 : 50))
            for tags in [[], [(UInt16(0x8100), UInt16(1))], [(0x88a8, 1), (0x8100, 2)]] as [[(UInt16, UInt16)]] {
                let frame = LISPFixture.frame(LISPFixture.inner(v6: !outer6), tags: tags)
                let needed = overhead - 14 - 4 * tags.count
                let short = runEncap(frame, headroom: needed - 1, parameters: params)
                #expect(short.result == .noRoom)
                #expect(short.untouched)
                let exact = runEncap(frame, headroom: needed, parameters: params)
                #expect(exact.result == .done)
                #expect(exact.guardsIntact)
            }
        }
        // An inner packet too long for the outer length fields.
        let huge = Build.ethernet(type: 0x0800, Build.ipv4(proto: 17, [UInt8](repeating: 0, count: 65_500 - 20)))
        let run = runEncap(huge, headroom: 64, parameters: LISPFixture.parameters(outer6: false))
        #expect(run.result == .noRoom)
        #expect(run.untouched)
    }

    /// Every prefix of a frame encapsulates or is rejected, never touching memory outside the buffer.
    @Test func truncatedInputs() {
        for v6 in [false, true] {
            let frame = LISPFixture.frame(LISPFixture.inner(v6: v6), tags: [(0x8100, 7)])
            for n in 0...frame.count {
                let run = runEncap(Array(frame[..<n]), headroom: 64, parameters: LISPFixture.parameters(outer6: v6))
                #expect(run.guardsIntact)
                #expect(run.result == (n >= 18 + (v6 ? 40 : 20) ? .done : .notIP), "\(n)")
            }
        }
    }
}

@Suite struct LISPDecapsulationTests {
    static func encapsulated(innerV6: Bool, outerV6: Bool, iid: UInt32 = 0x00abcd,
                             port: UInt16 = 4341) -> (inner: [UInt8], outer: [UInt8]) {
        let inner = LISPFixture.inner(v6: innerV6, tos: 0x48)
        let run = runEncap(LISPFixture.frame(inner), iid: iid, parameters: LISPFixture.parameters(outer6: outerV6, port: port))
        return (inner, run.output)
    }

    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func roundTrip(innerV6: Bool, outerV6: Bool) throws {
        let (inner, outer) = Self.encapsulated(innerV6: innerV6, outerV6: outerV6)
        let (result, headers) = parseOuter(outer)
        #expect(result == .lisp)
        #expect(headers.flags == 0x48)
        #expect(headers.hasInstanceID && headers.instanceID == 0x00abcd)
        #expect(headers.udpDestinationPort == 4341)
        #expect(headers.udpSourcePort == Ref.u16(outer, outerV6 ? 54 : 34))
        #expect(headers.lispOffset == (outerV6 ? 62 : 42))
        #expect(headers.innerOffset == headers.lispOffset + 8)
        #expect(headers.innerLength == inner.count)
        if outerV6 {
            #expect(headers.source == IPAddress("2001:db8::1") && headers.destination == IPAddress("2001:db8:ffff::2"))
        } else {
            #expect(headers.source == IPAddress("192.0.2.1") && headers.destination == IPAddress("198.51.100.7"))
        }
        let decapsulated = try #require(decap(outer))
        #expect(decapsulated == (innerV6 ? decapsulatedHeader6 : decapsulatedHeader4) + inner)

        // With a VLAN tag (or two) on the outer frame, and with Ethernet padding after the packet.
        let tagged = Array(outer[..<12]) + [0x81, 0x00, 0x00, 0x10] + Array(outer[12...])
        #expect(try #require(decap(tagged)) == decapsulated)
        let qinq = Array(outer[..<12]) + [0x88, 0xa8, 0x00, 0x10, 0x81, 0x00, 0x00, 0x20] + Array(outer[12...])
        #expect(try #require(decap(qinq)) == decapsulated)
        #expect(try #require(decap(outer + [0, 0, 0, 0, 0, 0])) == decapsulated)
    }

    @Test func otherPortsAndPortLists() throws {
        let (inner, outer) = Self.encapsulated(innerV6: false, outerV6: false, port: 4342)
        #expect(parseOuter(outer).0 == .notLISP)
        #expect(try #require(decap(outer, port: 4342)) == decapsulatedHeader4 + inner)
        let ports: [UInt16] = [4789, 4342, 8472]
        let none: [UInt16] = [4341, 1]
        var headers = LISP.OuterHeaders()
        outer.withUnsafeBytes { frame in
            ports.withUnsafeBufferPointer {
                #expect(LISP.parseOuter(frame.baseAddress!, length: frame.count, udpPorts: $0, into: &headers) == .lisp)
            }
            none.withUnsafeBufferPointer {
                #expect(LISP.parseOuter(frame.baseAddress!, length: frame.count, udpPorts: $0, into: &headers) == .notLISP)
            }
        }
        #expect(headers.udpDestinationPort == 4342)
    }

    /// Packets as other LISP implementations send them: nonces, no instance ID, echo-nonce,
    /// map-versions, UDP checksums, any source port.
    @Test(arguments: [
        (UInt8(0x80), UInt32(0x123456), UInt32(0x0000_0003)), // N, nonce, 32 LSBs
        (0xc0, 0xabcdef, 0x8000_0001),                        // N, L
        (0xa0, 0x010203, 0),                                  // N, E
        (0x10, 0x00f00f, 0),                                  // V
        (0x88, 0x111111, 0x0012_3400),                        // N, I: instance 0x001234, LSBs 0
        (0x00, 0, 0),
        (0xf8 & ~0x10, 0xffffff, 0xffff_ffff),                // N L E I
    ] as [(UInt8, UInt32, UInt32)])
    func peerPackets(flags: UInt8, nonce: UInt32, word: UInt32) throws {
        for (innerV6, outerV6) in [(false, false), (true, false), (false, true), (true, true)] {
            let inner = LISPFixture.inner(v6: innerV6)
            let lisp = [flags, UInt8(nonce >> 16 & 0xff), UInt8(nonce >> 8 & 0xff), UInt8(nonce & 0xff)] + Ref.be32(word)
            let udp = Build.udp(src: 61_234 &+ UInt16(flags), dst: 4341, lisp + inner)
            let frame: [UInt8]
            if outerV6 {
                frame = Build.ethernet(type: 0x86dd, Build.ipv6(src: .a, dst: .b, next: 17,
                                                                Build.withL4Checksum6(udp, proto: 17)))
            } else {
                frame = Build.ethernet(type: 0x0800, Build.ipv4(proto: 17, Build.withL4Checksum4(udp, proto: 17)))
            }
            let (result, headers) = parseOuter(frame)
            #expect(result == .lisp)
            #expect(headers.flags == flags)
            #expect(headers.hasInstanceID == (flags & 0x08 != 0))
            #expect(headers.instanceID == (flags & 0x08 != 0 ? word >> 8 : 0))
            #expect(headers.udpSourcePort == 61_234 &+ UInt16(flags))
            #expect(headers.source == (outerV6 ? IPAddress(high: V6.a.high, low: V6.a.low) : IPAddress(ipv4: Build.ip1)))
            #expect(try #require(decap(frame)) == (innerV6 ? decapsulatedHeader6 : decapsulatedHeader4) + inner)
        }
    }

    /// Re-fills the outer IPv4 header checksum after a test changed the header.
    static func fixIPv4(_ f: inout [UInt8]) {
        let ihl = Int(f[14] & 0x0f) * 4
        Ref.put16(&f, 24, 0)
        Ref.put16(&f, 24, Ref.checksum(Array(f[14..<(14 + max(ihl, 20))])))
    }

    @Test func malformedIPv4Outer() {
        let (_, good) = Self.encapsulated(innerV6: false, outerV6: false)
        #expect(parseOuter(good).0 == .lisp)
        let n = good.count
        var cases: [(String, [UInt8])] = []
        func add(_ name: String, fix: Bool = true, _ change: (inout [UInt8]) -> Void) {
            var f = good
            change(&f)
            if fix { Self.fixIPv4(&f) }
            cases.append((name, f))
        }
        // Truncation (the IP total length still claims the whole packet).
        cases.append(("cut after the UDP ports", Array(good[..<38])))
        cases.append(("cut in the UDP header", Array(good[..<40])))
        cases.append(("cut in the LISP header", Array(good[..<46])))
        cases.append(("cut in the inner packet", Array(good[..<(n - 1)])))
        add("IP version 5") { $0[14] = 0x55 }
        add("IHL 4") { $0[14] = 0x44 }
        add("IHL 0") { $0[14] = 0x40 }
        add("IHL 6, total length shorter than header + UDP") {
            // A real 4-byte option, and a total length that ends inside the UDP header.
            $0.insert(contentsOf: [1, 1, 1, 0], at: 34)
            $0[14] = 0x46
            Ref.put16(&$0, 16, 24 + 6)
        }
        add("total length beyond the frame") { Ref.put16(&$0, 16, UInt16(n - 14 + 1)) }
        add("total length below the header") { Ref.put16(&$0, 16, 19) }
        add("MF") { $0[20] |= 0x20 }
        add("fragment offset") { Ref.put16(&$0, 20, 0x4001) }
        add("bad IP header checksum", fix: false) { $0[24] ^= 0x01 }
        add("UDP length 15") { Ref.put16(&$0, 38, 15) }
        add("UDP length 7") { Ref.put16(&$0, 38, 7) }
        add("UDP length beyond the IP payload") { Ref.put16(&$0, 38, UInt16(n - 34 + 1)) }
        add("bad UDP checksum") { Ref.put16(&$0, 40, 0x1234) }
        add("empty inner packet") { $0.removeSubrange(50...); Ref.put16(&$0, 16, 36); Ref.put16(&$0, 38, 16) }
        add("inner version 5") { $0[50] = 0x55 }
        add("inner version 0") { $0[50] = 0x05 }
        add("inner IPv4 IHL 4") { $0[50] = 0x44 }
        add("inner IPv4 IHL beyond the inner packet") {
            $0.removeSubrange(74...); Ref.put16(&$0, 16, 60); Ref.put16(&$0, 38, 40); $0[50] = 0x47
        }
        add("inner IPv4 of 19 bytes") { $0.removeSubrange(69...); Ref.put16(&$0, 16, 55); Ref.put16(&$0, 38, 35) }
        for (name, frame) in cases {
            #expect(parseOuter(frame).0 == .malformed, "\(name)")
        }
        // A valid UDP checksum, a zero one, and IPv4 options are fine.
        var options = good
        options.insert(contentsOf: [1, 1, 1, 0], at: 34)
        options[14] = 0x46
        Ref.put16(&options, 16, UInt16(n - 14 + 4))
        Self.fixIPv4(&options)
        #expect(parseOuter(options).0 == .lisp)
        #expect(parseOuter(options).1.lispOffset == 46)
        var checksummed = good
        let segment = Build.withL4Checksum4(Array(good[34...]), proto: 17, src: LISPFixture.rloc4a, dst: LISPFixture.rloc4b)
        checksummed.replaceSubrange(34..., with: segment)
        #expect(Ref.u16(checksummed, 40) != 0)
        #expect(parseOuter(checksummed).0 == .lisp)
    }

    /// RFC 791 / RFC 8200: the inner packet's own length (IPv4 total length, at least its header;
    /// IPv6 40 + payload length) must fit in what the UDP payload carries, or it is
    /// `.badInnerLength`; bytes after it are not part of it and are trimmed on decapsulation.
    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func innerLengthAgainstThePacket(innerV6: Bool, outerV6: Bool) throws {
        var (inner, good) = Self.encapsulated(innerV6: innerV6, outerV6: outerV6)
        if outerV6 { Ref.put16(&good, 60, 0) } // no UDP checksum, so inner changes do not fail it first
        let start = outerV6 ? 70 : 50
        let field = start + (innerV6 ? 4 : 2)
        let honest = innerV6 ? inner.count - 40 : inner.count
        #expect(Ref.u16(good, field) == UInt16(honest))
        func with(_ value: Int) -> [UInt8] {
            var f = good
            Ref.put16(&f, field, UInt16(value))
            return f
        }
        #expect(parseOuter(with(honest + 1)).0 == .badInnerLength)
        #expect(parseOuter(with(0xffff)).0 == .badInnerLength)
        if !innerV6 {
            #expect(parseOuter(with(19)).0 == .badInnerLength)
            #expect(parseOuter(with(0)).0 == .badInnerLength)
        }
        // The outer addresses are known, as for .malformed (the caller checks the destination).
        #expect(parseOuter(with(honest + 1)).1.source == (outerV6 ? IPAddress("2001:db8::1") : IPAddress("192.0.2.1")))
        // Shorter than the UDP payload: delivered trimmed to its own length.
        let trimmed = with(honest - 3)
        #expect(parseOuter(trimmed).0 == .lisp)
        #expect(parseOuter(trimmed).1.innerLength == inner.count - 3)
        let header = innerV6 ? decapsulatedHeader6 : decapsulatedHeader4
        var expected = inner
        Ref.put16(&expected, innerV6 ? 4 : 2, UInt16(honest - 3))
        #expect(try #require(decap(trimmed)) == header + Array(expected[..<(inner.count - 3)]))
    }

    @Test func malformedIPv6Outer() {
        let (_, encapsulated) = Self.encapsulated(innerV6: true, outerV6: true)
        var good = encapsulated
        Ref.put16(&good, 60, 0) // no UDP checksum, so length changes do not fail it first
        #expect(parseOuter(good).0 == .lisp)
        let n = good.count
        var cases: [(String, [UInt8])] = []
        func add(_ name: String, _ change: (inout [UInt8]) -> Void) {
            var f = good
            change(&f)
            cases.append((name, f))
        }
        cases.append(("cut after the UDP ports", Array(good[..<58])))
        cases.append(("cut in the UDP header", Array(good[..<61])))
        cases.append(("cut in the LISP header", Array(good[..<66])))
        cases.append(("cut in the inner packet", Array(good[..<(n - 1)])))
        add("IP version 4") { $0[14] = 0x40 }
        add("payload length beyond the frame") { Ref.put16(&$0, 18, UInt16(n - 54 + 1)) }
        add("payload length 7") { Ref.put16(&$0, 18, 7) }
        add("UDP length 15") { Ref.put16(&$0, 58, 15) }
        add("UDP length beyond the payload") { Ref.put16(&$0, 58, UInt16(n - 54 + 1)) }
        add("bad UDP checksum") { Ref.put16(&$0, 60, Ref.u16(encapsulated, 60) ^ 0x0100) }
        add("inner IPv6 of 39 bytes") { $0.removeSubrange(109...); Ref.put16(&$0, 18, 55); Ref.put16(&$0, 58, 55) }
        add("inner version 7") { $0[70] = 0x70 }
        for (name, frame) in cases {
            #expect(parseOuter(frame).0 == .malformed, "\(name)")
        }
        #expect(parseOuter(encapsulated).0 == .lisp) // the computed checksum verifies
    }

    @Test func notLISP() {
        let (_, good4) = Self.encapsulated(innerV6: false, outerV6: false)
        let (_, good6) = Self.encapsulated(innerV6: false, outerV6: true)
        var tcp = good4
        tcp[23] = 6
        LISPDecapsulationTests.fixIPv4(&tcp)
        var otherPort = good4
        Ref.put16(&otherPort, 36, 4342)
        var otherPort6 = good6
        Ref.put16(&otherPort6, 56, 4789)
        // IPv6 with a hop-by-hop header before the UDP header.
        var ext = Array(good6[..<54]) + Build.ext(next: 17) + Array(good6[54...])
        ext[20] = 0
        Ref.put16(&ext, 18, Ref.u16(ext, 18) + 8)
        let frames: [(String, [UInt8])] = [
            ("TCP", tcp), ("other port", otherPort), ("other port, IPv6", otherPort6), ("IPv6 extension header", ext),
            ("ARP", Build.ethernet(type: 0x0806, [UInt8](repeating: 0, count: 28))),
            ("UDP to another port", Build.ethernet(type: 0x0800, Build.ipv4UDP())),
            ("empty", []), ("runt", Array(good4[..<13])),
            ("cut before the destination port", Array(good4[..<37])),
        ]
        for (name, frame) in frames {
            #expect(parseOuter(frame).0 == .notLISP, "\(name)")
        }
    }

    /// Every prefix of a LISP packet, in memory of exactly its length, is rejected without reading
    /// past it (run under ASan to see stray reads); only the whole packet is `.lisp`.
    @Test func truncationAtEveryLength() {
        var packets: [[UInt8]] = []
        for (i, o) in [(false, false), (true, false), (false, true), (true, true)] {
            packets.append(Self.encapsulated(innerV6: i, outerV6: o).outer)
        }
        let peer = Build.ethernet(tags: [(0x8100, 3)], type: 0x0800, Build.ipv4(proto: 17, Build.withL4Checksum4(
            Build.udp(src: 5000, dst: 4341, [0x80, 1, 2, 3, 0, 0, 0, 0] + LISPFixture.inner(v6: true)), proto: 17)))
        packets.append(peer)
        for packet in packets {
            for n in 0..<packet.count {
                #expect(parseOuter(Array(packet[..<n])).0 != .lisp, "\(n)")
            }
            #expect(parseOuter(packet).0 == .lisp)
        }
    }

    /// The receive path's first look may only skip what the full parse would call `.notLISP`: over
    /// every prefix and every single-byte change of the first 64 bytes of LISP packets (tagged and
    /// untagged, IPv4 and IPv6 outer), plain UDP and TCP. And it does skip the common non-LISP cases.
    @Test func firstLookNeverSkipsLISP() {
        var packets: [[UInt8]] = []
        for (i, o) in [(false, false), (true, false), (false, true), (true, true)] {
            let outer = Self.encapsulated(innerV6: i, outerV6: o).outer
            packets.append(outer)
            packets.append(Array(outer[..<12]) + [0x81, 0x00, 0x00, 0x10] + Array(outer[12...]))
        }
        let plainUDP = Build.ethernet(type: 0x0800, Build.ipv4UDP())
        packets.append(plainUDP)
        let ports: [UInt16] = [4341, 4342]
        func check(_ frame: [UInt8]) {
            let result = parseOuter(frame).0
            let mayBe = frame.withUnsafeBytes { f in
                ports.withUnsafeBufferPointer {
                    LISP.mayBeLISP(f.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, length: f.count, udpPorts: $0.baseAddress!, count: $0.count)
                }
            }
            if result != .notLISP { #expect(mayBe, "\(result) for \(frame.prefix(64))") }
        }
        for packet in packets {
            for n in 0...packet.count { check(Array(packet[..<n])) }
            for offset in 0..<min(64, packet.count) {
                for value: UInt8 in [0x00, 0x06, 0x11, 0x45, 0x4f, 0x60, 0x81, 0x86, 0xdd, 0x10, 0xf5, 0xff] {
                    var changed = packet
                    changed[offset] = value
                    check(changed)
                }
            }
        }
        var tcp = packets[0]
        tcp[23] = 6
        for frame in [plainUDP, tcp, Build.ethernet(type: 0x0806, [UInt8](repeating: 0, count: 28))] {
            frame.withUnsafeBytes { f in
                ports.withUnsafeBufferPointer {
                    #expect(!LISP.mayBeLISP(f.baseAddress!, length: f.count, udpPorts: $0.baseAddress!, count: $0.count))
                }
            }
        }
    }
}
