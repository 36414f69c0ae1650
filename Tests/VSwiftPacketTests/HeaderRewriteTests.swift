import Testing
import VSwiftPacket
import VSwiftTesting

/// Checks every checksum of a frame from scratch, with its own parser (arrays, no shared code).
enum Verify {
    /// Descriptions of wrong checksums; empty when all verify. L4 of fragments is not checked.
    static func problems(_ f: [UInt8]) -> [String] {
        var off = 12
        var type = Ref.u16(f, off)
        while type == 0x8100 || type == 0x88a8 { off += 4; type = Ref.u16(f, off) }
        let l3 = off + 2
        var out: [String] = []
        if type == 0x0800 {
            let ihl = Int(f[l3] & 0x0f) * 4
            if Ref.sum(Array(f[l3..<(l3 + ihl)])) != 0xffff { out.append("IPv4 header checksum") }
            if Ref.u16(f, l3 + 6) & 0x3fff != 0 { return out }
            let segment = Array(f[(l3 + ihl)..<(l3 + Int(Ref.u16(f, l3 + 2)))])
            let pseudo = Array(f[(l3 + 12)..<(l3 + 20)]) + [0, f[l3 + 9]] + Ref.be16(UInt16(segment.count))
            out += l4Problems(proto: f[l3 + 9], segment, pseudo: pseudo)
        } else if type == 0x86dd {
            var next = f[l3 + 6]
            var at = l3 + 40
            let end = at + Int(Ref.u16(f, l3 + 4))
            while [0, 43, 60, 44].contains(next) {
                if next == 44 { return out } // a fragment: L4 not checkable
                if next == 43 && f[at + 3] != 0 { return out } // pseudo-header uses the final destination
                let length = (Int(f[at + 1]) + 1) * 8
                next = f[at]
                at += length
            }
            let segment = Array(f[at..<end])
            let pseudo = Array(f[(l3 + 8)..<(l3 + 40)]) + Ref.be32(UInt32(segment.count)) + [0, 0, 0, next]
            out += l4Problems(proto: next, segment, pseudo: pseudo)
        }
        return out
    }

    static func l4Problems(proto: UInt8, _ segment: [UInt8], pseudo: [UInt8]) -> [String] {
        switch proto {
        case 6: return Ref.sum(pseudo + segment) == 0xffff ? [] : ["TCP checksum"]
        case 17:
            if Ref.u16(segment, 6) == 0 { return [] }
            return Ref.sum(pseudo + segment) == 0xffff ? [] : ["UDP checksum"]
        case 1: return Ref.sum(segment) == 0xffff ? [] : ["ICMP checksum"]
        case 58: return Ref.sum(pseudo + segment) == 0xffff ? [] : ["ICMPv6 checksum"]
        case 132:
            var zeroed = segment
            for i in 8..<12 { zeroed[i] = 0 }
            let stored = UInt32(segment[8]) | UInt32(segment[9]) << 8 | UInt32(segment[10]) << 16 | UInt32(segment[11]) << 24
            return Ref.crc32c(zeroed) == stored ? [] : ["SCTP CRC32c"]
        default: return []
        }
    }
}

/// Runs an in-place rewrite on a copy of `frame` surrounded by canaries; checks they are intact.
func rewrite(_ frame: [UInt8], _ body: (UnsafeMutableRawPointer, Int) -> HeaderRewrite.Result,
             sourceLocation: SourceLocation = #_sourceLocation) -> ([UInt8], HeaderRewrite.Result) {
    let guardBytes = 16
    let total = guardBytes * 2 + frame.count
    let p = UnsafeMutableRawPointer.allocate(byteCount: total, alignment: 1)
    defer { p.deallocate() }
    p.initializeMemory(as: UInt8.self, repeating: 0x5a, count: total)
    frame.withUnsafeBytes { if let b = $0.baseAddress { (p + guardBytes).copyMemory(from: b, byteCount: frame.count) } }
    let result = body(p + guardBytes, frame.count)
    let all = Array(UnsafeRawBufferPointer(start: p, count: total))
    #expect(all[..<guardBytes].allSatisfy { $0 == 0x5a }, "wrote before the frame", sourceLocation: sourceLocation)
    #expect(all[(guardBytes + frame.count)...].allSatisfy { $0 == 0x5a }, "wrote after the frame",
            sourceLocation: sourceLocation)
    return (Array(all[guardBytes..<(guardBytes + frame.count)]), result)
}

/// Runs a frame-moving (VLAN) rewrite with `headroom` bytes before the frame. Returns the new frame,
/// the result and how far the frame start moved; checks nothing outside headroom+frame is written
/// and that bytes after the MACs never move in memory.
func rewriteMoving(_ frame: [UInt8], headroom: Int,
                   _ body: (inout UnsafeMutableRawPointer, inout Int, Int) -> HeaderRewrite.Result,
                   sourceLocation: SourceLocation = #_sourceLocation) -> ([UInt8], HeaderRewrite.Result, Int) {
    let guardBytes = 16
    let total = guardBytes * 2 + headroom + frame.count
    let base = UnsafeMutableRawPointer.allocate(byteCount: total, alignment: 1)
    defer { base.deallocate() }
    base.initializeMemory(as: UInt8.self, repeating: 0x5a, count: total)
    let start = base + guardBytes + headroom
    frame.withUnsafeBytes { if let b = $0.baseAddress { start.copyMemory(from: b, byteCount: frame.count) } }
    var p = start
    var length = frame.count
    let result = body(&p, &length, headroom)
    let all = Array(UnsafeRawBufferPointer(start: base, count: total))
    #expect(all[..<guardBytes].allSatisfy { $0 == 0x5a }, "wrote before the headroom", sourceLocation: sourceLocation)
    #expect(all[(total - guardBytes)...].allSatisfy { $0 == 0x5a }, "wrote after the frame", sourceLocation: sourceLocation)
    // The end of the frame never moves: push/pop only move the MACs.
    #expect(p + length == start + frame.count, sourceLocation: sourceLocation)
    return (Array(UnsafeRawBufferPointer(start: p, count: length)), result, p - start)
}

@Suite("In-place header rewrites")
struct HeaderRewriteTests {
    static let ipv4Frames: [[UInt8]] = [
        Build.ipv4TCP(),
        Build.ipv4UDP(),
        Build.ethernet(type: 0x0800, Build.ipv4(proto: 17, Build.udp())), // UDP checksum 0
        Build.ethernet(type: 0x0800, Build.ipv4(proto: 1, Build.icmp(type: 8, code: 0))),
        Build.ethernet(type: 0x0800, Build.ipv4(proto: 132, Build.sctp())),
        Build.ipv4TCP(tags: [(0x88a8, 10), (0x8100, 20)], Array(repeating: 7, count: 101)),
        Build.ethernet(type: 0x0800, Build.ipv4(proto: 17, options: [1, 1, 1, 0],
                                                Build.withL4Checksum4(Build.udp([9, 9, 9]), proto: 17))),
    ]

    static let ipv6Frames: [[UInt8]] = [
        Build.ethernet(type: 0x86dd, Build.ipv6(next: 6, Build.withL4Checksum6(Build.tcp(Array("x".utf8)), proto: 6))),
        Build.ethernet(type: 0x86dd, Build.ipv6(next: 17, Build.withL4Checksum6(Build.udp([1, 2, 3]), proto: 17))),
        Build.ethernet(type: 0x86dd, Build.ipv6(next: 17, Build.udp())), // UDP checksum 0
        Build.ethernet(type: 0x86dd, Build.ipv6(next: 58, Build.withL4Checksum6(Build.icmpv6(type: 128, code: 0), proto: 58))),
        Build.ethernet(tags: [(0x8100, 3)], type: 0x86dd,
                       Build.ipv6(next: 0, Build.ext(next: 60) + Build.ext(next: 17, units: 1)
                                  + Build.withL4Checksum6(Build.udp(Array("abc".utf8)), proto: 17))),
        Build.ethernet(type: 0x86dd, Build.ipv6(next: 132, Build.sctp())),
    ]

    @Test func fixturesVerify() {
        for f in Self.ipv4Frames + Self.ipv6Frames + [Build.ipv6WithExtensions()] {
            #expect(Verify.problems(f).isEmpty)
        }
    }

    @Test func ethernetAddresses() {
        let (f, r) = rewrite(Build.ipv4TCP()) { HeaderRewrite.setEthernetSource($0, length: $1, 0x0211_2233_4455) }
        #expect(r == .done && extract(f).get(.dlSrc) == 0x0211_2233_4455 && extract(f).get(.dlDst) == Build.dst)
        let (g, s) = rewrite(f) { HeaderRewrite.setEthernetDestination($0, length: $1, 0x0200_0000_0000) }
        #expect(s == .done && extract(g).get(.dlDst) == 0x0200_0000_0000 && Array(g[12...]) == Array(f[12...]))
        let short = [UInt8](repeating: 1, count: 13)
        let (h, t) = rewrite(short) { HeaderRewrite.setEthernetSource($0, length: $1, 0) }
        #expect(t == .notApplicable && h == short)
    }

    @Test func ipv4Addresses() {
        var rng = SplitMix64(seed: TestSeed.resolve(10))
        let replay = TestSeed.replay(rng.seed)
        for frame in Self.ipv4Frames {
            for _ in 0..<50 {
                let a = UInt32(truncatingIfNeeded: rng.next())
                let destination = rng.next() & 1 == 0
                let (f, r) = rewrite(frame) {
                    destination ? HeaderRewrite.setIPv4Destination($0, length: $1, a)
                        : HeaderRewrite.setIPv4Source($0, length: $1, a)
                }
                #expect(r == .done, "\(replay)")
                #expect(Verify.problems(f).isEmpty, "\(Verify.problems(f)) \(replay)")
                var expected = extract(frame)
                expected.set(destination ? .nwDst : .nwSrc, UInt64(a))
                #expect(extract(f) == expected, "\(replay)")
            }
        }
        // A zero UDP checksum (none) stays zero.
        let (f, _) = rewrite(Self.ipv4Frames[2]) { HeaderRewrite.setIPv4Source($0, length: $1, 0x0102_0304) }
        #expect(Ref.u16(f, 14 + 20 + 6) == 0, "\(replay)")
        // Not IPv4: unchanged.
        for other in Self.ipv6Frames + [Build.ethernet(type: 0x0806, [UInt8](repeating: 0, count: 28))] {
            let (g, s) = rewrite(other) { HeaderRewrite.setIPv4Source($0, length: $1, 1) }
            #expect(s == .notApplicable && g == other, "\(replay)")
        }
    }

    /// An updated UDP checksum that comes out 0 is stored as 0xffff.
    @Test func udpChecksumNeverBecomesZero() {
        let frame = Build.ipv4UDP()
        // Choose a new source address that makes the computed checksum 0: the sum of everything
        // else plus the address must be 0xffff.
        var zeroed = Array(frame[34...])
        Ref.put16(&zeroed, 6, 0)
        let rest = Ref.sum(Ref.be32(Build.ip2) + [0, 17] + Ref.be16(UInt16(zeroed.count)) + zeroed)
        let high: UInt32 = 0x0a00
        let low = (0xffff + 0xffff - rest - high) % 0xffff
        let address = high << 16 | low
        let (f, r) = rewrite(frame) { HeaderRewrite.setIPv4Source($0, length: $1, address) }
        #expect(r == .done)
        #expect(Ref.u16(f, 34 + 6) == 0xffff)
        #expect(Verify.problems(f).isEmpty)
    }

    @Test func ipv4Fragments() {
        // A later fragment whose payload looks like a TCP header: only the IP header changes.
        let later = Build.ethernet(type: 0x0800, Build.ipv4(proto: 6, frag: 0x2000 | 100, Build.tcp()))
        let (f, r) = rewrite(later) { HeaderRewrite.setIPv4Source($0, length: $1, 0x0b0b_0b0b) }
        #expect(r == .done && Array(f[34...]) == Array(later[34...]) && Verify.problems(f).isEmpty)
        let (g, s) = rewrite(later) { HeaderRewrite.setTransportDestination($0, length: $1, 1) }
        #expect(s == .notApplicable && g == later)

        // A first fragment: the L4 checksum covers the whole datagram; updating it incrementally in
        // the first fragment gives the checksum of the rewritten whole datagram.
        let datagram = Build.withL4Checksum4(Build.udp(Array(repeating: 0x42, count: 40)), proto: 17)
        let first = Build.ethernet(type: 0x0800, Build.ipv4(proto: 17, frag: 0x2000, Array(datagram[..<24])))
        let (h, t) = rewrite(first) { HeaderRewrite.setTransportDestination($0, length: $1, 5300) }
        #expect(t == .done)
        let (h2, t2) = rewrite(h) { HeaderRewrite.setIPv4Destination($0, length: $1, 0x0a0a_0a0a) }
        #expect(t2 == .done && Verify.problems(h2).isEmpty)
        var whole = datagram
        Ref.put16(&whole, 2, 5300)
        whole = Build.withL4Checksum4(whole, proto: 17, dst: 0x0a0a_0a0a)
        #expect(Ref.u16(h2, 34 + 6) == Ref.u16(whole, 6))
    }

    @Test func ipv6Addresses() {
        var rng = SplitMix64(seed: TestSeed.resolve(11))
        let replay = TestSeed.replay(rng.seed)
        for frame in Self.ipv6Frames + [Build.ipv6WithExtensions()] {
            for _ in 0..<50 {
                let a = V6(high: rng.next(), low: rng.next())
                let destination = rng.next() & 1 == 0
                let (f, r) = rewrite(frame) {
                    destination ? HeaderRewrite.setIPv6Destination($0, length: $1, high: a.high, low: a.low)
                        : HeaderRewrite.setIPv6Source($0, length: $1, high: a.high, low: a.low)
                }
                #expect(r == .done, "\(replay)")
                #expect(Verify.problems(f).isEmpty, "\(Verify.problems(f)) \(replay)")
                var expected = extract(frame)
                expected.set(destination ? .ipv6DstHigh : .ipv6SrcHigh, a.high)
                expected.set(destination ? .ipv6DstLow : .ipv6SrcLow, a.low)
                #expect(extract(f) == expected, "\(replay)")
            }
        }
        let (g, s) = rewrite(Build.ipv4TCP()) { HeaderRewrite.setIPv6Source($0, length: $1, high: 1, low: 2) }
        #expect(s == .notApplicable && g == Build.ipv4TCP(), "\(replay)")
    }

    /// Under a routing header with segments left, the transport checksum is over the final
    /// destination (here V6.c, in the routing header): a new IPv6 destination does not change it.
    @Test func ipv6RoutingHeader() {
        var routing = Build.ext(next: 6, units: 2, routingSegmentsLeft: 1)
        for (i, b) in V6.c.bytes.enumerated() { routing[8 + i] = b }
        let tcp = Build.withL4Checksum6(Build.tcp(), proto: 6, dst: V6.c)
        let frame = Build.ethernet(type: 0x86dd, Build.ipv6(next: 43, routing + tcp))
        let l4 = 14 + 40 + routing.count
        let (f, r) = rewrite(frame) { HeaderRewrite.setIPv6Destination($0, length: $1, high: 9, low: 9) }
        #expect(r == .done && Ref.u16(f, l4 + 16) == Ref.u16(frame, l4 + 16))
        let (g, s) = rewrite(f) { HeaderRewrite.setIPv6Source($0, length: $1, high: V6.b.high, low: V6.b.low) }
        #expect(s == .done)
        let expected = Build.withL4Checksum6(Build.tcp(), proto: 6, src: V6.b, dst: V6.c)
        #expect(Array(g[l4...]) == expected)
    }

    @Test func transportPorts() {
        var rng = SplitMix64(seed: TestSeed.resolve(12))
        let replay = TestSeed.replay(rng.seed)
        for frame in Self.ipv4Frames + Self.ipv6Frames + [Build.ipv6WithExtensions()] {
            let before = extract(frame)
            let hasPorts = [6, 17, 132].contains(Int(before.get(.nwProto)))
            for _ in 0..<30 {
                let port = UInt16(truncatingIfNeeded: rng.next())
                let destination = rng.next() & 1 == 0
                let (f, r) = rewrite(frame) {
                    destination ? HeaderRewrite.setTransportDestination($0, length: $1, port)
                        : HeaderRewrite.setTransportSource($0, length: $1, port)
                }
                if !hasPorts {
                    #expect(r == .notApplicable && f == frame, "\(replay)")
                    continue
                }
                #expect(r == .done, "\(replay)")
                #expect(Verify.problems(f).isEmpty, "\(Verify.problems(f)) \(replay)")
                var expected = before
                expected.set(destination ? .tpDst : .tpSrc, UInt64(port))
                #expect(extract(f) == expected, "\(replay)")
            }
        }
        // UDP without checksum: stays 0.
        let (f, _) = rewrite(Self.ipv4Frames[2]) { HeaderRewrite.setTransportSource($0, length: $1, 1) }
        #expect(Ref.u16(f, 34 + 6) == 0, "\(replay)")
        // TCP header cut by the IP total length: nothing to rewrite.
        let cut = Build.ethernet(type: 0x0800, Build.ipv4(proto: 6, Array(Build.tcp()[..<19])))
        let (g, s) = rewrite(cut) { HeaderRewrite.setTransportSource($0, length: $1, 1) }
        #expect(s == .notApplicable && g == cut, "\(replay)")
    }

    /// A wrong SCTP CRC stays wrong by exactly the same error (as OVS), a right one stays right.
    @Test func sctpCRCErrorIsPreserved() {
        var frame = Build.ethernet(type: 0x0800, Build.ipv4(proto: 132, Build.sctp(Array(repeating: 3, count: 333))))
        frame[34 + 9] ^= 0x5a
        let (f, r) = rewrite(frame) { HeaderRewrite.setTransportDestination($0, length: $1, 7) }
        #expect(r == .done)
        var zeroed = Array(f[34...])
        for i in 8..<12 { zeroed[i] = 0 }
        let correct = Ref.crc32c(zeroed)
        let stored = UInt32(f[42]) | UInt32(f[43]) << 8 | UInt32(f[44]) << 16 | UInt32(f[45]) << 24
        #expect(stored ^ correct == 0x5a00)
    }

    @Test func networkTOS() {
        let (f, r) = rewrite(Build.ipv4TCP()) { HeaderRewrite.setNetworkTOS($0, length: $1, 0x28) }
        #expect(r == .done && extract(f).get(.nwTos) == 0x29 && Verify.problems(f).isEmpty)
        // The low two bits of the argument are ignored (ECN is kept).
        let (g, _) = rewrite(f) { HeaderRewrite.setNetworkTOS($0, length: $1, 0xff) }
        #expect(extract(g).get(.nwTos) == 0xfd && Verify.problems(g).isEmpty)
        let v6 = Build.ipv6WithExtensions() // traffic class 0x2e, label 0xabcde
        let (h, s) = rewrite(v6) { HeaderRewrite.setNetworkTOS($0, length: $1, 0xb8) }
        #expect(s == .done)
        var expected = extract(v6)
        expected.set(.nwTos, 0xba)
        #expect(extract(h) == expected && Verify.problems(h).isEmpty)
        let arp = Build.ethernet(type: 0x0806, [UInt8](repeating: 0, count: 28))
        let (a, t) = rewrite(arp) { HeaderRewrite.setNetworkTOS($0, length: $1, 0xb8) }
        #expect(t == .notApplicable && a == arp)
    }

    @Test func ecnKeepsDSCPAndFixesTheIPv4Checksum() {
        // ipv4TCP has TOS 0xb9: DSCP 46, ECN 1.
        let frame = Build.ipv4TCP(tags: [(0x8100, 4)])
        for ecn: UInt8 in 0...3 {
            let (f, r) = rewrite(frame) { HeaderRewrite.setECN($0, length: $1, ecn) }
            #expect(r == .done && extract(f).get(.nwTos) == UInt64(0xb8 | ecn) && Verify.problems(f).isEmpty)
            // Only the TOS byte and the header checksum change.
            let l3 = 18
            let changed = f.indices.filter { f[$0] != frame[$0] }
            #expect(changed.allSatisfy { [l3 + 1, l3 + 10, l3 + 11].contains($0) }, "ECN \(ecn): \(changed)")
        }
        let v6 = Build.ipv6WithExtensions() // traffic class 0x2e (DSCP 11, ECN 2), label 0xabcde
        let (h, s) = rewrite(v6) { HeaderRewrite.setECN($0, length: $1, 1) }
        var expected = extract(v6)
        expected.set(.nwTos, 0x2d)
        #expect(s == .done && extract(h) == expected && Verify.problems(h).isEmpty)
        #expect(Array(h[14..<18]) == [0x62, 0xda, 0xbc, 0xde])
        let arp = Build.ethernet(type: 0x0806, [UInt8](repeating: 0, count: 28))
        let (a, t) = rewrite(arp) { HeaderRewrite.setECN($0, length: $1, 3) }
        #expect(t == .notApplicable && a == arp)
    }

    @Test func ipv6FlowLabel() {
        let v6 = Build.ipv6WithExtensions()
        let (h, s) = rewrite(v6) { HeaderRewrite.setIPv6FlowLabel($0, length: $1, 0x12345) }
        var expected = extract(v6)
        expected.set(.ipv6Label, 0x12345)
        #expect(s == .done && extract(h) == expected && Verify.problems(h).isEmpty)
        #expect(Array(h[14..<18]) == [0x62, 0xe1, 0x23, 0x45] && Array(h[18...]) == Array(v6[18...]))
        let (f, r) = rewrite(Build.ipv4TCP()) { HeaderRewrite.setIPv6FlowLabel($0, length: $1, 1) }
        #expect(r == .notApplicable && f == Build.ipv4TCP())
    }

    static func arpFrame(tags: [(UInt16, UInt16)] = [], type: UInt16 = 0x0806) -> [UInt8] {
        let arp = Ref.be16(1) + Ref.be16(0x0800) + [6, 4] + Ref.be16(1) + Ref.mac(Build.src) + Ref.be32(Build.ip1)
            + Ref.mac(0) + Ref.be32(Build.ip2)
        return Build.ethernet(dst: 0xffff_ffff_ffff, tags: tags, type: type, arp + [UInt8](repeating: 0, count: 18))
    }

    @Test func arpFields() {
        for frame in [Self.arpFrame(), Self.arpFrame(tags: [(0x8100, 9)]), Self.arpFrame(type: 0x8035)] {
            let l3 = frame.count - 46
            var f = frame
            var r: [HeaderRewrite.Result] = []
            (f, r) = applyAll(f, [
                { HeaderRewrite.setARP(.operation, $0, length: $1, 2) },
                { HeaderRewrite.setARP(.senderHardwareAddress, $0, length: $1, 0x0211_2233_4455) },
                { HeaderRewrite.setARP(.senderProtocolAddress, $0, length: $1, 0x0a00_0001) },
                { HeaderRewrite.setARP(.targetHardwareAddress, $0, length: $1, 0x5254_0000_0001) },
                // Only the field's width is written: the high bits of a wider value are dropped.
                { HeaderRewrite.setARP(.targetProtocolAddress, $0, length: $1, 0xffff_ffff_c0a8_0101) },
            ])
            #expect(r.allSatisfy { $0 == .done })
            var expected = extract(frame)
            expected.set(.nwProto, 2)
            expected.set(.arpSha, 0x0211_2233_4455)
            expected.set(.nwSrc, 0x0a00_0001)
            expected.set(.arpTha, 0x5254_0000_0001)
            expected.set(.nwDst, 0xc0a8_0101)
            #expect(extract(f) == expected)
            // Byte-exact: the 28-byte ARP body as written, the rest untouched.
            let body = Ref.be16(1) + Ref.be16(0x0800) + [6, 4] + Ref.be16(2) + Ref.mac(0x0211_2233_4455)
                + Ref.be32(0x0a00_0001) + Ref.mac(0x5254_0000_0001) + Ref.be32(0xc0a8_0101)
            #expect(Array(f[l3..<(l3 + 28)]) == body)
            #expect(Array(f[..<l3]) == Array(frame[..<l3]) && Array(f[(l3 + 28)...]) == Array(frame[(l3 + 28)...]))
        }
        // Not Ethernet/IPv4 ARP, not ARP, or truncated: untouched.
        var other = Self.arpFrame()
        other[15] = 6
        for frame in [other, Build.ipv4TCP(), Array(Self.arpFrame()[..<41])] {
            let (f, r) = rewrite(frame) { HeaderRewrite.setARP(.senderProtocolAddress, $0, length: $1, 1) }
            #expect(r == .notApplicable && f == frame)
        }
    }

    /// Applies `ops` in order to a copy of `frame`; the frame after all of them and their results.
    private func applyAll(_ frame: [UInt8], _ ops: [(UnsafeMutableRawPointer, Int) -> HeaderRewrite.Result])
        -> ([UInt8], [HeaderRewrite.Result]) {
        var f = frame
        var results: [HeaderRewrite.Result] = []
        for op in ops {
            let (g, r) = rewrite(f, op)
            f = g
            results.append(r)
        }
        return (f, results)
    }

    @Test func decrementTTL() {
        let (f, r) = rewrite(Build.ipv4TCP()) { HeaderRewrite.decrementTTL($0, length: $1) }
        #expect(r == .done && extract(f).get(.nwTTL) == 62 && Verify.problems(f).isEmpty)
        for ttl: UInt8 in [0, 1] {
            let frame = Build.ethernet(type: 0x0800, Build.ipv4(proto: 17, ttl: ttl, Build.udp()))
            let (g, s) = rewrite(frame) { HeaderRewrite.decrementTTL($0, length: $1) }
            #expect(s == .drop && g == frame)
        }
        let two = Build.ethernet(tags: [(0x8100, 1)], type: 0x0800, Build.ipv4(proto: 17, ttl: 2, Build.udp()))
        let (t, tr) = rewrite(two) { HeaderRewrite.decrementTTL($0, length: $1) }
        #expect(tr == .done && extract(t).get(.nwTTL) == 1 && Verify.problems(t).isEmpty)
        let (t2, tr2) = rewrite(t) { HeaderRewrite.decrementTTL($0, length: $1) }
        #expect(tr2 == .drop && t2 == t)

        let v6 = Build.ipv6WithExtensions() // hop limit 7
        let (h, s) = rewrite(v6) { HeaderRewrite.decrementTTL($0, length: $1) }
        #expect(s == .done && extract(h).get(.nwTTL) == 6)
        let v6one = Build.ethernet(type: 0x86dd, Build.ipv6(next: 17, hopLimit: 1, Build.udp()))
        let (h1, s1) = rewrite(v6one) { HeaderRewrite.decrementTTL($0, length: $1) }
        #expect(s1 == .drop && h1 == v6one)

        let arp = Build.ethernet(type: 0x0806, [UInt8](repeating: 0, count: 28))
        let (a, t3) = rewrite(arp) { HeaderRewrite.decrementTTL($0, length: $1) }
        #expect(t3 == .notApplicable && a == arp)

        let (x, xr) = rewrite(Build.ipv4TCP()) { HeaderRewrite.setTTL($0, length: $1, 200) }
        #expect(xr == .done && extract(x).get(.nwTTL) == 200 && Verify.problems(x).isEmpty)
        let (y, yr) = rewrite(v6) { HeaderRewrite.setTTL($0, length: $1, 3) }
        #expect(yr == .done && extract(y).get(.nwTTL) == 3)
    }

    @Test func vlanPushPopRoundTrip() {
        let frame = Build.ipv4TCP()
        let (pushed, r, moved) = rewriteMoving(frame, headroom: 4) {
            HeaderRewrite.pushVLAN(&$0, length: &$1, headroom: $2, tpid: 0x8100, tci: 0)
        }
        #expect(r == .done && moved == -4 && pushed.count == frame.count + 4)
        var expected = extract(frame)
        expected.set(.vlanTCI, 0x1000)
        #expect(extract(pushed) == expected)
        #expect(Array(pushed[..<12]) == Array(frame[..<12]) && Array(pushed[16...]) == Array(frame[12...]))

        let (popped, s, back) = rewriteMoving(pushed, headroom: 0) { p, l, _ in HeaderRewrite.popVLAN(&p, length: &l) }
        #expect(s == .done && back == 4 && popped == frame)

        // Not enough headroom: unchanged.
        let (same, t, none) = rewriteMoving(frame, headroom: 3) {
            HeaderRewrite.pushVLAN(&$0, length: &$1, headroom: $2, tpid: 0x8100, tci: 5)
        }
        #expect(t == .noRoom && none == 0 && same == frame)
        // Nothing to pop.
        let (untagged, u, _) = rewriteMoving(frame, headroom: 0) { p, l, _ in HeaderRewrite.popVLAN(&p, length: &l) }
        #expect(u == .notApplicable && untagged == frame)
        let stub = Build.ethernet(type: 0x8100, [0, 1, 8])
        let (st, su, _) = rewriteMoving(stub, headroom: 0) { p, l, _ in HeaderRewrite.popVLAN(&p, length: &l) }
        #expect(su == .notApplicable && st == stub)
    }

    @Test func qinqPushAndPop() {
        let tagged = Build.ipv4TCP(tags: [(0x8100, 0x2014)])
        let (f, r, _) = rewriteMoving(tagged, headroom: 64) {
            HeaderRewrite.pushVLAN(&$0, length: &$1, headroom: $2, tpid: 0x88a8, tci: 0x0007)
        }
        #expect(r == .done)
        let k = extract(f)
        #expect(k.get(.vlanOuterTCI) == 0x1007 && k.get(.vlanTCI) == 0x3014 && k.get(.tpDst) == 80)
        #expect(Ref.u16(f, 12) == 0x88a8)
        // Popping the outer tag leaves the inner one.
        let (g, s, _) = rewriteMoving(f, headroom: 0) { p, l, _ in HeaderRewrite.popVLAN(&p, length: &l) }
        #expect(s == .done && g == tagged)
    }

    @Test func vlanModify() {
        let tagged = Build.ipv4TCP(tags: [(0x8100, 0xa064)]) // PCP 5, VID 100
        let (f, r, moved) = rewriteMoving(tagged, headroom: 8) {
            HeaderRewrite.setVLANID(&$0, length: &$1, headroom: $2, 0xfff + 0x1000 + 42)
        }
        #expect(r == .done && moved == 0 && extract(f).get(.vlanTCI) == 0xb000 | 41)
        let (g, s, _) = rewriteMoving(tagged, headroom: 8) {
            HeaderRewrite.setVLANPriority(&$0, length: &$1, headroom: $2, 2)
        }
        #expect(s == .done && extract(g).get(.vlanTCI) == 0x5064)
        // Untagged: a new 802.1Q tag (OVS's mod_vlan_vid / mod_vlan_pcp).
        let frame = Build.ipv4TCP()
        let (h, t, hm) = rewriteMoving(frame, headroom: 8) { HeaderRewrite.setVLANID(&$0, length: &$1, headroom: $2, 300) }
        #expect(t == .done && hm == -4 && extract(h).get(.vlanTCI) == 0x1000 | 300 && Ref.u16(h, 12) == 0x8100)
        let (p, pr, _) = rewriteMoving(frame, headroom: 8) { HeaderRewrite.setVLANPriority(&$0, length: &$1, headroom: $2, 7) }
        #expect(pr == .done && extract(p).get(.vlanTCI) == 0xf000)
        let (n, nr, _) = rewriteMoving(frame, headroom: 0) { HeaderRewrite.setVLANID(&$0, length: &$1, headroom: $2, 1) }
        #expect(nr == .noRoom && n == frame)
    }

    /// Every rewrite on every prefix of several frames: never a write outside the frame, and IP
    /// rewrites apply only when extraction would have parsed the header.
    @Test func truncatedFramesAreSafe() {
        let frames = [Build.ipv4TCP(tags: [(0x8100, 1)]), Build.ipv6WithExtensions(), Self.ipv4Frames[4],
                      Self.ipv6Frames[1]]
        for frame in frames {
            for n in 0...frame.count {
                let prefix = Array(frame[..<n])
                let ops: [(UnsafeMutableRawPointer, Int) -> HeaderRewrite.Result] = [
                    { HeaderRewrite.setIPv4Source($0, length: $1, 1) },
                    { HeaderRewrite.setIPv4Destination($0, length: $1, 1) },
                    { HeaderRewrite.setIPv6Source($0, length: $1, high: 1, low: 1) },
                    { HeaderRewrite.setIPv6Destination($0, length: $1, high: 1, low: 1) },
                    { HeaderRewrite.setTransportSource($0, length: $1, 1) },
                    { HeaderRewrite.setTransportDestination($0, length: $1, 1) },
                    { HeaderRewrite.setNetworkTOS($0, length: $1, 0xfc) },
                    { HeaderRewrite.decrementTTL($0, length: $1) },
                    { HeaderRewrite.setTTL($0, length: $1, 9) },
                    { HeaderRewrite.setECN($0, length: $1, 3) },
                    { HeaderRewrite.setIPv6FlowLabel($0, length: $1, 5) },
                ]
                for op in ops {
                    let (f, r) = rewrite(prefix, op)
                    if n < frame.count {
                        #expect(r == .notApplicable && f == prefix, "length \(n)")
                    }
                }
                for op in [{ HeaderRewrite.setEthernetSource($0, length: $1, 1) },
                           { HeaderRewrite.setEthernetDestination($0, length: $1, 1) }]
                    as [(UnsafeMutableRawPointer, Int) -> HeaderRewrite.Result] {
                    let (_, r) = rewrite(prefix, op)
                    #expect(r == (n >= 14 ? .done : .notApplicable))
                }
                _ = rewriteMoving(prefix, headroom: 4) { p, l, _ in HeaderRewrite.popVLAN(&p, length: &l) }
                _ = rewriteMoving(prefix, headroom: 4) { HeaderRewrite.setVLANID(&$0, length: &$1, headroom: $2, 5) }
                _ = rewriteMoving(prefix, headroom: 4) {
                    HeaderRewrite.pushVLAN(&$0, length: &$1, headroom: $2, tpid: 0x88a8, tci: 5)
                }
            }
        }
    }

    /// Random sequences of rewrites on random frames: every checksum verifies from scratch after
    /// every step, and extraction sees each rewritten value.
    @Test func randomRewriteSequences() {
        var rng = SplitMix64(seed: TestSeed.resolve(13))
        let replay = TestSeed.replay(rng.seed)
        for _ in 0..<400 {
            let payload = rng.bytes(Int(rng.next() % 200))
            var frame: [UInt8]
            switch rng.next() % 6 {
            case 0: frame = Build.ipv4TCP(payload)
            case 1: frame = Build.ipv4UDP(payload)
            case 2: frame = Build.ethernet(type: 0x0800, Build.ipv4(proto: 132, Build.sctp(payload + [0])))
            case 3: frame = Build.ethernet(type: 0x86dd, Build.ipv6(next: 6, Build.withL4Checksum6(Build.tcp(payload), proto: 6)))
            case 4: frame = Build.ethernet(type: 0x86dd, Build.ipv6(next: 17, Build.withL4Checksum6(Build.udp(payload), proto: 17)))
            default: frame = Build.ethernet(type: 0x86dd, Build.ipv6(next: 132, Build.sctp(payload + [1, 2])))
            }
            for _ in 0..<8 {
                var expected = extract(frame)
                let v = rng.next()
                let (f, r): ([UInt8], HeaderRewrite.Result)
                switch v % 9 {
                case 0:
                    (f, r) = rewrite(frame) { HeaderRewrite.setIPv4Source($0, length: $1, UInt32(truncatingIfNeeded: v >> 8)) }
                    if r == .done { expected.set(.nwSrc, (v >> 8) & 0xffff_ffff) }
                case 1:
                    (f, r) = rewrite(frame) { HeaderRewrite.setIPv4Destination($0, length: $1, UInt32(truncatingIfNeeded: v >> 8)) }
                    if r == .done { expected.set(.nwDst, (v >> 8) & 0xffff_ffff) }
                case 2:
                    let w = rng.next()
                    (f, r) = rewrite(frame) { HeaderRewrite.setIPv6Source($0, length: $1, high: v, low: w) }
                    if r == .done { expected.set(.ipv6SrcHigh, v); expected.set(.ipv6SrcLow, w) }
                case 3:
                    let w = rng.next()
                    (f, r) = rewrite(frame) { HeaderRewrite.setIPv6Destination($0, length: $1, high: v, low: w) }
                    if r == .done { expected.set(.ipv6DstHigh, v); expected.set(.ipv6DstLow, w) }
                case 4:
                    (f, r) = rewrite(frame) { HeaderRewrite.setTransportSource($0, length: $1, UInt16(truncatingIfNeeded: v >> 8)) }
                    expected.set(.tpSrc, (v >> 8) & 0xffff)
                case 5:
                    (f, r) = rewrite(frame) { HeaderRewrite.setTransportDestination($0, length: $1, UInt16(truncatingIfNeeded: v >> 8)) }
                    expected.set(.tpDst, (v >> 8) & 0xffff)
                case 6:
                    (f, r) = rewrite(frame) { HeaderRewrite.setNetworkTOS($0, length: $1, UInt8(truncatingIfNeeded: v >> 8)) }
                    expected.set(.nwTos, (expected.get(.nwTos) & 3) | ((v >> 8) & 0xfc))
                case 7:
                    (f, r) = rewrite(frame) { HeaderRewrite.decrementTTL($0, length: $1) }
                    expected.set(.nwTTL, expected.get(.nwTTL) - 1)
                default:
                    let tagged = Ref.u16(frame, 12) == 0x8100
                    let (g, s, _) = rewriteMoving(frame, headroom: 4) {
                        tagged ? HeaderRewrite.popVLAN(&$0, length: &$1)
                            : HeaderRewrite.pushVLAN(&$0, length: &$1, headroom: $2, tpid: 0x8100, tci: UInt16(v & 0xfff))
                    }
                    (f, r) = (g, s)
                    expected.set(.vlanTCI, tagged ? 0 : 0x1000 | (v & 0xfff))
                }
                #expect(r != .drop && r != .noRoom, "\(replay)")
                #expect(Verify.problems(f).isEmpty, "\(Verify.problems(f)) op \(v % 9) \(replay)")
                if r == .done { #expect(extract(f) == expected, "op \(v % 9) \(replay)") } else { #expect(f == frame, "\(replay)") }
                frame = f
            }
        }
    }
}
