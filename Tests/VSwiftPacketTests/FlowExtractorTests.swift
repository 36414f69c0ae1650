import Testing
import VSwiftPacket
import VSwiftTesting

// MARK: - Test support (frame builders and reference algorithms: VSwiftTesting/Frames.swift)

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
        var rng = SplitMix64(seed: TestSeed.resolve(42))
        let replay = TestSeed.replay(rng.seed)
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
            #expect(k.get(.inPort) == 9, "\(replay)")
            #expect(k.w12 == 0 && k.w13 == 0 && k.w14 == 0 && k.w15 == 0, "\(replay)")
        }
    }
}
