import Testing
import VSwiftClassifier
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftDatapath

/// Path MTU and outer reassembly through a real worker on in-memory rings (RFC 9300 §7, RFC 1191,
/// RFC 4443 §3.2, RFC 791 §3.2): what goes back to the sender, what leaves the underlay, what
/// reaches VM1 — byte by byte, with every frame accounted for.
@Suite("Worker LISP path MTU and reassembly")
struct PathMTUPipelineTests {
    let seed = [
        "priority=0,action=NORMAL",
        "priority=2,in_port=1,dl_type=0x0806,action=NORMAL",
        "priority=3,dl_dst=02:00:00:00:00:00,action=mod_dl_dst:52:54:00:B8:27:75,output:1",
        "priority=1,in_port=1,dl_type=0x0800,vlan_tci=0,nw_src=10.1.1.0/24,action=output:2",
    ]
    static let vm1: [UInt8] = [0x52, 0x54, 0x00, 0xb8, 0x27, 0x75]
    static let gateway: [UInt8] = [0x52, 0x54, 0x00, 0x1b, 0xea, 0xd5]

    /// A UDP/IPv4 frame VM1 → VM2 (10.1.1.20:1000 → 10.1.1.30:4321) of any size, DF set or not
    /// (`udpFrame` stops at 247 bytes of payload).
    func bigUDPFrame(payload: Int, dontFragment: Bool = true) -> [UInt8] {
        Build.ethernet(dst: 0x5254_001b_ead5, src: 0x5254_00b8_2775, type: 0x0800,
                       Build.ipv4(src: 0x0a01_0114, dst: 0x0a01_011e, proto: 17, frag: dontFragment ? 0x4000 : 0,
                                  Build.udp(src: 1000, dst: 4321, (0..<payload).map { UInt8(truncatingIfNeeded: $0) })))
    }

    /// `frame` (Ethernet/IPv4) with DF cleared (header checksum fixed).
    func withoutDF(_ frame: [UInt8]) -> [UInt8] {
        var f = frame
        f[20] &= ~0x40
        Ref.put16(&f, 24, 0)
        Ref.put16(&f, 24, Ref.checksum(Array(f[14..<34])))
        return f
    }

    /// RFC 1191 §4 through the seed's flows: DF set, 100-byte frame (86 bytes of IPv4, 122
    /// encapsulated) over an underlay MTU of 121: Fragmentation Needed with next-hop MTU 85 goes
    /// back out of port 1 to VM1, from the inner destination; nothing leaves the underlay.
    @Test func dfSetAnswersFragmentationNeededWithTheTunnelsMTU() throws {
        let frame = udpFrame(payload: 58)
        let harness = try PipelineHarness(packets: [frame], rules: try rules(seed), tunnel: .encapsulate, underlayMTU: 121)
        harness.recordSentFrames = true
        _ = harness.run(packets: 1)
        var icmp: [UInt8] = [3, 4, 0, 0, 0, 0] + Ref.be16(85) + Array(frame[14...])
        Ref.put16(&icmp, 2, Ref.checksum(icmp))
        var ip: [UInt8] = [0x45, 0xc0] + Ref.be16(UInt16(20 + icmp.count)) + [0, 1, 0, 0, 64, 1, 0, 0]
            + [10, 1, 1, 30, 10, 1, 1, 20]
        Ref.put16(&ip, 10, Ref.checksum(ip))
        let expected = Self.vm1 + Self.gateway + [0x08, 0x00] + ip + icmp
        #expect(harness.sentFramesDifference(from: [.init(.input, expected)]) == nil)
        #expect(harness.tunnelStatistics.droppedTooBig == 1)
        #expect(harness.tunnelStatistics.pathMTU.icmpSent == 1)
        #expect(harness.tunnelStatistics.encapsulated == 0)
        #expect(harness.accounting().isConsistent)
    }

    /// At most `Worker.icmpAnswersPerSecond` answers per worker per second; the rest are counted.
    @Test func answersAreRateLimited() throws {
        let harness = try PipelineHarness(packets: [udpFrame(payload: 58)], rules: try rules(seed), tunnel: .encapsulate,
                                          underlayMTU: 121)
        _ = harness.run(packets: 1_000)
        let s = harness.tunnelStatistics
        #expect(s.pathMTU.icmpSent + s.pathMTU.icmpRateLimited == 1_000)
        // The run may straddle a second: then two buckets' worth.
        #expect(s.pathMTU.icmpSent >= UInt64(Worker.icmpAnswersPerSecond))
        #expect(s.pathMTU.icmpSent <= 2 * UInt64(Worker.icmpAnswersPerSecond))
        #expect(s.droppedTooBig == 1_000)
        #expect(harness.accounting().isConsistent)
    }

    /// RFC 4443 §3.2 / RFC 8201: an inner IPv6 packet is never fragmented on the way: Packet Too Big
    /// with the tunnel's MTU (underlay 600 - 36), quoting the original.
    @Test func ipv6InnerAnswersPacketTooBig() throws {
        let ip6 = Build.ipv6(next: 17, Build.withL4Checksum6(Build.udp([UInt8](repeating: 0x61, count: 700)), proto: 17))
        let frame = Build.ethernet(dst: 0x5254_001b_ead5, src: 0x5254_00b8_2775, type: 0x86dd, ip6)
        let harness = try PipelineHarness(packets: [frame], rules: try rules(["priority=1,in_port=1,action=output:2"]),
                                          tunnel: .encapsulate, underlayMTU: 600)
        harness.recordSentFrames = true
        _ = harness.run(packets: 1)
        let body = Build.withL4Checksum6([2, 0, 0, 0] + Ref.be32(564) + ip6, proto: 58, src: .b, dst: .a)
        let expected = Self.vm1 + Self.gateway + [0x86, 0xdd] + Build.ipv6(src: .b, dst: .a, next: 58, body)
        #expect(harness.sentFramesDifference(from: [.init(.input, expected)]) == nil)
        #expect(harness.tunnelStatistics.pathMTU.icmpSent == 1)
        #expect(harness.accounting().isConsistent)
    }

    /// RFC 9300 §7.1's stateless approach with DF clear: the inner packet (1028 bytes) is split so
    /// that each piece fits the tunnel's 564 bytes; each leaves the underlay encapsulated, with its
    /// own offset, MF and header checksum, and together they are the original.
    @Test func dfClearFragmentsTheInnerPacketSoEachPieceFits() throws {
        let frame = bigUDPFrame(payload: 1000, dontFragment: false)
        let harness = try PipelineHarness(packets: [frame], rules: try rules(seed), tunnel: .encapsulate, underlayMTU: 600)
        harness.recordSentFrames = true
        _ = harness.run(packets: 10)
        #expect(harness.sentFrames.count == 20)
        let original = Array(frame[14...])
        for pair in 0..<10 {
            var payload: [UInt8] = []
            for k in 0..<2 {
                let sent = harness.sentFrames[2 * pair + k]
                #expect(sent.device == .output)
                let out = sent.bytes
                #expect(out.count - 14 <= 600, "piece \(k): \(out.count) bytes")
                let inner = Array(out[50...])
                #expect(Ref.checksum(Array(inner[0..<20])) == 0)
                #expect(Array(inner[0..<2]) == Array(original[0..<2]) && Array(inner[4..<6]) == Array(original[4..<6]))
                #expect(Array(inner[8..<10]) == Array(original[8..<10]) && Array(inner[12..<20]) == Array(original[12..<20]))
                #expect(Ref.u16(inner, 6) == (k == 0 ? 0x2000 : UInt16(544 / 8)))
                #expect(Int(Ref.u16(inner, 2)) == inner.count)
                #expect(Ref.u16(out, 16) == UInt16(out.count - 14) && Ref.checksum(Array(out[14..<34])) == 0)
                payload += inner[20...]
            }
            #expect(payload == Array(original[20...]))
        }
        #expect(harness.tunnelStatistics.pathMTU.innerFragmented == 10)
        #expect(harness.tunnelStatistics.pathMTU.innerFragments == 20)
        #expect(harness.tunnelStatistics.encapsulated == 20)
        #expect(harness.tunnelStatistics.droppedTooBig == 0)
        #expect(harness.accounting().isConsistent)
    }

    /// An inner packet that is itself a fragment (MF set, offset 800) is split again: its pieces
    /// keep the original offset as their base and the last keeps MF (RFC 791 §3.2).
    @Test func aFragmentIsFragmentedAgainKeepingOffsetAndMF() throws {
        var frame = bigUDPFrame(payload: 1000, dontFragment: false)
        Ref.put16(&frame, 20, 0x2000 | 100)
        Ref.put16(&frame, 24, 0)
        Ref.put16(&frame, 24, Ref.checksum(Array(frame[14..<34])))
        let harness = try PipelineHarness(packets: [frame], rules: try rules(seed), tunnel: .encapsulate, underlayMTU: 600)
        harness.recordSentFrames = true
        _ = harness.run(packets: 1)
        #expect(harness.sentFrames.count == 2)
        guard harness.sentFrames.count == 2 else { return }
        let first = Array(harness.sentFrames[0].bytes[50...]), second = Array(harness.sentFrames[1].bytes[50...])
        #expect(Ref.u16(first, 6) == 0x2000 | 100)
        #expect(Ref.u16(second, 6) == 0x2000 | (100 + 544 / 8))
        #expect(Ref.checksum(Array(first[0..<20])) == 0 && Ref.checksum(Array(second[0..<20])) == 0)
        #expect(Array(first[20...]) + Array(second[20...]) == Array(frame[34...]))
        #expect(harness.accounting().isConsistent)
    }

    /// Hostile sizes: an MTU that leaves no 8-byte unit after the header, or one that would need
    /// more than `Worker.maxInnerFragments` pieces, drops the packet (too_big) and every frame
    /// taken for pieces goes back to the pool.
    @Test(arguments: [60, 100])
    func anMTUTooSmallToFragmentForDropsAndLeaksNothing(mtu: Int) throws {
        let frame = bigUDPFrame(payload: 1000, dontFragment: false)
        let harness = try PipelineHarness(packets: [frame], rules: try rules(seed), tunnel: .encapsulate,
                                          underlayMTU: UInt32(mtu))
        _ = harness.run(packets: 200)
        #expect(harness.transmitted == 0)
        #expect(harness.tunnelStatistics.droppedTooBig == 200)
        #expect(harness.tunnelStatistics.pathMTU.innerFragmented == 0)
        #expect(harness.accounting().isConsistent)
    }

    /// A frame that fits is untouched by any of this.
    @Test func aFrameThatFitsIsEncapsulatedAsBefore() throws {
        let harness = try PipelineHarness(packets: [udpFrame(payload: 58)], rules: try rules(seed), tunnel: .encapsulate,
                                          underlayMTU: 122)
        _ = harness.run(packets: 100)
        #expect(harness.transmitted == 100)
        #expect(harness.tunnelStatistics.pathMTU.isZero)
    }

    // MARK: Outer reassembly

    /// `inner` in LISP from the harness's remote RLOC, as one outer IPv4 datagram (DF clear).
    func lisp(_ inner: [UInt8]) -> [UInt8] {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 512 + inner.count, alignment: 64)
        defer { buffer.deallocate() }
        var start = buffer + 256
        inner.withUnsafeBytes { start.copyMemory(from: $0.baseAddress!, byteCount: inner.count) }
        var length = inner.count
        _ = LISP.encapsulate(&start, length: &length, headroom: 256, instanceID: 0,
                             parameters: PipelineHarness.encapsulationToHarness, ipIdentification: 0x4242)
        return withoutDF(Array(UnsafeRawBufferPointer(start: start, count: length)))
    }

    /// The outer datagram of `frame` cut into fragments of `size` payload bytes, each an Ethernet frame.
    func outerFragments(_ frame: [UInt8], size: Int) -> [[UInt8]] {
        Fragments.ipv4(frame, l3: 14, size: size)
    }

    /// RFC 9300 §7: an outer-fragmented LISP packet, in any order, reaches VM1 once, whole,
    /// through the normal decapsulation and the seed's flows.
    @Test(arguments: [[0, 1, 2], [2, 1, 0], [1, 2, 0]])
    func anOuterFragmentedPacketIsDeliveredOnceWhole(order: [Int]) throws {
        let inner = bigUDPFrame(payload: 1400)
        let pieces = outerFragments(lisp(inner), size: 504)
        #expect(pieces.count == 3)
        let harness = try PipelineHarness(packets: order.map { pieces[$0] }, rules: try rules(seed), tunnel: .decapsulate)
        harness.recordSentFrames = true
        _ = harness.run(packets: 300)
        let delivered = PipelineHarness.SentFrame(.output, Self.vm1 + [2, 0, 0, 0, 0, 0, 0x08, 0x00] + inner[14...])
        #expect(harness.sentFramesDifference(from: Array(repeating: delivered, count: 100)) == nil)
        #expect(harness.tunnelStatistics.pathMTU.reassembled == 100)
        #expect(harness.tunnelStatistics.decapsulated == 100)
        #expect(harness.tunnelStatistics.droppedBadHeader == 0)
        #expect(harness.accounting().isConsistent)
    }

    /// Duplicates and overlaps on the real path: a repeated fragment is dropped alone; an
    /// overlapping one discards its datagram. Counted, no frame lost.
    @Test func duplicateAndOverlappingFragmentsAreCounted() throws {
        let inner = bigUDPFrame(payload: 1400)
        let pieces = outerFragments(lisp(inner), size: 504)
        let harness = try PipelineHarness(packets: [pieces[0], pieces[0], pieces[1], pieces[2]], rules: try rules(seed),
                                          tunnel: .decapsulate)
        _ = harness.run(packets: 40)
        #expect(harness.transmitted == 10)
        #expect(harness.tunnelStatistics.pathMTU.fragmentDuplicates == 10)
        let shifted = outerFragments(lisp(inner), size: 512)
        let overlapping = try PipelineHarness(packets: [pieces[1], shifted[0], pieces[2]], rules: try rules(seed),
                                              tunnel: .decapsulate)
        _ = overlapping.run(packets: 30)
        #expect(overlapping.transmitted == 0)
        #expect(overlapping.tunnelStatistics.pathMTU.reassemblyOverlaps >= 9)
        #expect(overlapping.accounting().isConsistent)
        #expect(harness.accounting().isConsistent)
    }

    /// Endless first fragments with distinct identifications: the worker holds no frame for them
    /// (every one is back in the pool), the table fills and the rest are counted.
    @Test func endlessFirstFragmentsHoldNoFrames() throws {
        let inner = bigUDPFrame(payload: 1400)
        let first = outerFragments(lisp(inner), size: 504)[0]
        let firsts = (0..<256).map { id -> [UInt8] in
            var f = first
            Ref.put16(&f, 18, UInt16(id))
            Ref.put16(&f, 24, 0)
            Ref.put16(&f, 24, Ref.checksum(Array(f[14..<34])))
            return f
        }
        let harness = try PipelineHarness(packets: firsts, rules: try rules(seed), tunnel: .decapsulate)
        _ = harness.run(packets: 2_560)
        let s = harness.tunnelStatistics.pathMTU
        #expect(s.reassemblyTableFull > 0)
        #expect(s.reassembled == 0)
        #expect(harness.transmitted == 0)
        #expect(harness.accounting().isConsistent)
    }
}
