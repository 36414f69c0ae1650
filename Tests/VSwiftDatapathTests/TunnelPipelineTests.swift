import Testing
import VSwiftClassifier
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftDatapath

/// LISP through a real worker on in-memory rings: what leaves the underlay port after encap, what
/// the seed's flows do with a decapsulated packet, and the drop counters of the selection logic.
@Suite("Worker LISP encapsulation and decapsulation")
struct TunnelPipelineTests {
    let seed = [
        "priority=0,action=NORMAL",
        "priority=2,in_port=1,dl_type=0x0806,action=NORMAL",
        "priority=3,dl_dst=02:00:00:00:00:00,action=mod_dl_dst:52:54:00:B8:27:75,output:1",
        "priority=1,in_port=1,dl_type=0x0800,vlan_tci=0,nw_src=10.1.1.0/24,action=output:2",
    ]

    /// `inner` wrapped as the harness's peer would send it.
    func lisp(_ inner: [UInt8], flags: UInt8 = 0x48, instanceID: UInt32 = 0, source: IPAddress = PipelineHarness.remoteRLOC) -> [UInt8] {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 512 + inner.count, alignment: 64)
        defer { buffer.deallocate() }
        var start = buffer + 256
        inner.withUnsafeBytes { start.copyMemory(from: $0.baseAddress!, byteCount: inner.count) }
        var length = inner.count
        var parameters = PipelineHarness.encapsulationToHarness
        parameters.source = source
        _ = LISP.encapsulate(&start, length: &length, headroom: 256, instanceID: instanceID, parameters: parameters, ipIdentification: 7)
        var frame = Array(UnsafeRawBufferPointer(start: start, count: length))
        frame[14 + 20 + 8] = flags
        return frame
    }

    @Test func theSeedsOutputToLISPLeavesTheUnderlayEncapsulated() throws {
        let harness = try PipelineHarness(packets: [udpFrame()], rules: try rules(seed), tunnel: .encapsulate)
        let result = harness.run(packets: 1_000)
        #expect(harness.transmitted == 1_000)
        let out = harness.lastTransmittedFrame
        let inner = udpFrame()
        #expect(out.count == inner.count - 14 + LISP.overheadIPv4)
        #expect(Array(out[0..<6]) == [2, 0, 0, 0, 0, 2] && Array(out[6..<12]) == [2, 0, 0, 0, 0, 1])
        #expect(Array(out[12..<14]) == [0x08, 0x00])
        #expect(Array(out[26..<34]) == [192, 0, 2, 1, 192, 0, 2, 2])
        #expect(out[23] == 17 && Array(out[36..<38]) == [0x10, 0xf5])
        #expect(Array(out[42..<50]) == [0x48, 0, 0, 0, 0, 0, 0, 0x01])
        #expect(Array(out[50...]) == Array(inner[14...]))
        #expect(harness.tunnelStatistics.encapsulated == UInt64(result.packets))
        #expect(harness.accounting().isConsistent)
    }

    /// Frame by frame, several flows interleaved: each leaves the underlay wrapping its own inner
    /// packet, in the order they came, with valid outer headers and one UDP source port per flow.
    @Test func eachFrameLeavesEncapsulatedAroundItsOwnInnerPacket() throws {
        let inners = (0..<4).map { udpFrame(sourcePort: UInt16(2000 + $0)) }
        let harness = try PipelineHarness(packets: inners, rules: try rules(seed), tunnel: .encapsulate)
        harness.recordSentFrames = true
        _ = harness.run(packets: 400)
        #expect(harness.sentFrames.count == 400)
        var sourcePorts: [Int: UInt16] = [:]
        for (i, sent) in harness.sentFrames.enumerated() {
            let inner = inners[i % inners.count], out = sent.bytes
            #expect(sent.device == .output, "frame \(i)")
            #expect(out.count == inner.count - 14 + LISP.overheadIPv4, "frame \(i)")
            guard out.count == inner.count - 14 + LISP.overheadIPv4 else { continue }
            #expect(Array(out[0..<14]) == [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00], "frame \(i)")
            #expect(Ref.u16(out, 16) == UInt16(out.count - 14) && Ref.checksum(Array(out[14..<34])) == 0, "frame \(i)")
            #expect(Array(out[26..<34]) == [192, 0, 2, 1, 192, 0, 2, 2], "frame \(i)")
            #expect(Ref.u16(out, 36) == 4341 && Ref.u16(out, 38) == UInt16(out.count - 34), "frame \(i)")
            #expect(Array(out[42..<50]) == [0x48, 0, 0, 0, 0, 0, 0, 0x01], "frame \(i)")
            #expect(Array(out[50...]) == Array(inner[14...]), "frame \(i)")
            let port = Ref.u16(out, 34)
            #expect(sourcePorts[i % inners.count, default: port] == port, "frame \(i): one UDP source port per flow")
            sourcePorts[i % inners.count] = port
        }
        #expect(harness.tunnelStatistics.encapsulated == 400)
        #expect(harness.accounting().isConsistent)
    }

    @Test func anEncapsulatedPacketOverTheUnderlayMTUIsDroppedAndCounted() throws {
        // A 100-byte frame: 86 bytes of IPv4, 122 encapsulated (LISP.overheadIPv4 = 36).
        let frame = udpFrame(payload: 58)
        #expect(frame.count == 100)
        let fits = try PipelineHarness(packets: [frame], rules: try rules(seed), tunnel: .encapsulate, underlayMTU: 122)
        _ = fits.run(packets: 500)
        #expect(fits.transmitted == 500)
        #expect(fits.tunnelStatistics.droppedTooBig == 0)
        let tooBig = try PipelineHarness(packets: [frame], rules: try rules(seed), tunnel: .encapsulate, underlayMTU: 121)
        _ = tooBig.run(packets: 500)
        #expect(tooBig.transmitted == 0)
        #expect(tooBig.tunnelStatistics.droppedTooBig == 500)
        #expect(tooBig.tunnelStatistics.encapsulated == 0)
        #expect(tooBig.accounting().isConsistent)
    }

    /// Over IPv6 the outer UDP checksum is mandatory. Computed by the worker, or left as the
    /// pseudo-header sum with AF_XDP TX metadata asking the device for it (the harness completes it
    /// as a device does): either way the frame on the wire carries the right checksum.
    @Test(arguments: [false, true])
    func ipv6UnderlayUDPChecksumComputedOrOffloaded(offload: Bool) throws {
        let harness = try PipelineHarness(packets: [udpFrame(payload: 101)], rules: try rules(seed), tunnel: .encapsulate,
                                          underlay: .ipv6(checksumOffload: offload))
        _ = harness.run(packets: 1_000)
        #expect(harness.transmitted == 1_000)
        #expect(harness.checksumsCompleted == (offload ? 1_000 : 0))
        var out = harness.lastTransmittedFrame
        #expect(out.count == udpFrame(payload: 101).count - 14 + LISP.overheadIPv6)
        #expect(Array(out[12..<14]) == [0x86, 0xdd])
        let sent = UInt16(out[60]) << 8 | UInt16(out[61])
        out[60] = 0
        out[61] = 0
        let expected = out.withUnsafeBytes { p in
            Checksum.transportIPv6(p.baseAddress! + 54, length: out.count - 54, source: p.baseAddress! + 22,
                                   destination: p.baseAddress! + 38, nextHeader: 17)
        }
        #expect(sent == (expected == 0 ? 0xffff : expected))
        #expect(harness.accounting().isConsistent)
    }

    @Test func aDecapsulatedPacketGoesThroughTheSeedsFlowsToVM1() throws {
        let inner = udpFrame(destinationMAC: [0x52, 0x54, 0x00, 0x1b, 0xea, 0xd5])
        let harness = try PipelineHarness(packets: [lisp(inner)], rules: try rules(seed), tunnel: .decapsulate)
        _ = harness.run(packets: 1_000)
        #expect(harness.transmitted == 1_000)
        let out = harness.lastTransmittedFrame
        // priority=3 rewrote 02:00:00:00:00:00 to VM1's MAC; the source stays 02:00:00:00:00:00.
        #expect(out == [0x52, 0x54, 0x00, 0xb8, 0x27, 0x75, 2, 0, 0, 0, 0, 0, 0x08, 0x00] + Array(inner[14...]))
        #expect(harness.ruleStatistics(counterSlot: 2).packets == 1_000)
        #expect(harness.tunnelStatistics.decapsulated == 1_000)
        #expect(harness.accounting().isConsistent)
    }

    /// Frame by frame, several flows interleaved: each decapsulated packet reaches VM1 with the
    /// seed's rewrite, in the order it came; nothing goes back out of the underlay.
    @Test func eachDecapsulatedFrameReachesVM1Rewritten() throws {
        let inners = (0..<4).map { udpFrame(sourcePort: UInt16(2000 + $0), destinationMAC: [2, 0, 0, 0, 0, 0]) }
        let harness = try PipelineHarness(packets: inners.map { lisp($0) }, rules: try rules(seed), tunnel: .decapsulate)
        harness.recordSentFrames = true
        _ = harness.run(packets: 400)
        // The inner IP packet in an Ethernet header from and to 02:00:00:00:00:00, whose destination
        // priority=3 rewrote to VM1's MAC.
        let delivered = inners.map { PipelineHarness.SentFrame(.output, [0x52, 0x54, 0x00, 0xb8, 0x27, 0x75, 2, 0, 0, 0, 0, 0, 0x08, 0x00] + $0[14...]) }
        #expect(harness.sentFramesDifference(from: Array(Array(repeating: delivered, count: 100).joined())) == nil)
        #expect(harness.ruleStatistics(counterSlot: 2).packets == 400)
        #expect(harness.tunnelStatistics.decapsulated == 400)
        #expect(harness.accounting().isConsistent)
    }

    /// `frame` (Ethernet/IPv4) with its IPv4 total length changed by `delta` (header checksum fixed).
    func lyingLength(_ frame: [UInt8], by delta: Int) -> [UInt8] {
        var f = frame
        let total = (Int(f[16]) << 8 | Int(f[17])) + delta
        f[16] = UInt8(total >> 8); f[17] = UInt8(total & 0xff)
        Ref.put16(&f, 24, 0)
        Ref.put16(&f, 24, Ref.checksum(Array(f[14..<34])))
        return f
    }

    /// Defect 8: an inner packet shorter than its total length says is dropped and counted; one
    /// longer (bytes after it inside the UDP payload) is delivered trimmed to its own length.
    @Test func innerLengthIsCheckedAndTrailingBytesTrimmed() throws {
        let inner = udpFrame(destinationMAC: [0x52, 0x54, 0x00, 0x1b, 0xea, 0xd5])
        let lying = try PipelineHarness(packets: [lisp(lyingLength(inner, by: 200))], rules: try rules(seed), tunnel: .decapsulate)
        _ = lying.run(packets: 100)
        #expect(lying.transmitted == 0)
        #expect(lying.tunnelStatistics.droppedBadInnerLength == 100, "\(lying.tunnelStatistics)")
        #expect(lying.tunnelStatistics.decapsulated == 0)
        #expect(lying.accounting().isConsistent)

        let padded = try PipelineHarness(packets: [lisp(inner + [0xee, 0xee, 0xee])], rules: try rules(seed), tunnel: .decapsulate)
        _ = padded.run(packets: 100)
        #expect(padded.transmitted == 100)
        #expect(padded.lastTransmittedFrame == [0x52, 0x54, 0x00, 0xb8, 0x27, 0x75, 2, 0, 0, 0, 0, 0, 0x08, 0x00] + Array(inner[14...]))
        #expect(padded.accounting().isConsistent)
    }

    /// Defect 1 at the worker: LISP from the remote RLOC to the local RLOC is decapsulated only
    /// where the route to the remote leaves, and only when addressed to the local RLOC that route
    /// uses. Elsewhere it is an ordinary frame (here, on an underlay port in no bridge: dropped),
    /// counted as off_underlay, never delivered into the LISP port's bridge.
    @Test func lispFromOffTheUnderlayIsNotDecapsulated() throws {
        let inner = udpFrame(destinationMAC: [0x52, 0x54, 0x00, 0x1b, 0xea, 0xd5])
        let moves: [(String, IPAddress, UInt16)] = [
            ("the route leaves by another port", PipelineHarness.localRLOC, 5),
            ("the local RLOC is another address", IPAddress(ipv4: 0xc000_0263), 0),
        ]
        for (name, local, port) in moves {
            let harness = try PipelineHarness(packets: [lisp(inner)], rules: try rules(seed), tunnel: .decapsulate)
            harness.moveUnderlay(localRLOC: local, egressPort: port)
            _ = harness.run(packets: 100)
            #expect(harness.transmitted == 0, "\(name)")
            #expect(harness.tunnelStatistics.decapsulated == 0, "\(name)")
            #expect(harness.tunnelStatistics.refusedOffUnderlay == 100, "\(name): \(harness.tunnelStatistics)")
            #expect(harness.accounting().isConsistent, "\(name)")
            // Moved back, the same frames are decapsulated and delivered.
            harness.moveUnderlay(localRLOC: PipelineHarness.localRLOC, egressPort: 0)
            _ = harness.run(packets: 100)
            #expect(harness.transmitted == 100, "\(name)")
            #expect(harness.tunnelStatistics.decapsulated == 100, "\(name)")
        }
    }

    /// The outer IPv4 header's TOS and TTL replaced (header checksum recomputed).
    func withOuter(_ frame: [UInt8], tos: UInt8, ttl: UInt8) -> [UInt8] {
        var f = frame
        f[15] = tos
        f[22] = ttl
        Ref.put16(&f, 24, 0)
        Ref.put16(&f, 24, Ref.checksum(Array(f[14..<34])))
        return f
    }

    func badInnerVersion(_ frame: [UInt8]) -> [UInt8] {
        var f = frame
        f[50] = 0x55
        return f
    }

    /// RFC 9300 §5.3 and RFC 6040 through the worker: the port's ttl/tos options reach the outer
    /// header, the inner ECN reaches it too; on the way in, R and N+V are accepted, a lower outer
    /// TTL lowers the inner one and outer CE marks an ECT inner packet.
    @Test func outerFieldsThroughTheWorker() throws {
        var ect = udpFrame()
        ect[15] = 0x02
        Ref.put16(&ect, 24, 0)
        Ref.put16(&ect, 24, Ref.checksum(Array(ect[14..<34])))
        let inherit = try PipelineHarness(packets: [ect], rules: try rules(seed), tunnel: .encapsulate)
        _ = inherit.run(packets: 10)
        #expect(inherit.lastTransmittedFrame[15] == 0x02 && inherit.lastTransmittedFrame[22] == 64)
        let fixed = try PipelineHarness(packets: [ect], rules: try rules(seed), tunnel: .encapsulate,
                                        outerFields: LISP.OuterFields(ttl: 9, tos: 0xb8))
        _ = fixed.run(packets: 10)
        let out = fixed.lastTransmittedFrame
        #expect(out[15] == 0xba && out[22] == 9 && Ref.sum(Array(out[14..<34])) == 0xffff)
        #expect(Array(out[50...]) == Array(ect[14...]))

        let inner = udpFrame(destinationMAC: [0x52, 0x54, 0x00, 0x1b, 0xea, 0xd5])
        var ectInner = inner
        ectInner[15] = 0x02
        Ref.put16(&ectInner, 24, 0)
        Ref.put16(&ectInner, 24, Ref.checksum(Array(ectInner[14..<34])))
        for flags: UInt8 in [0x4c, 0x98, 0xf8] {
            let harness = try PipelineHarness(packets: [withOuter(lisp(ectInner, flags: flags), tos: 0x03, ttl: 5)],
                                              rules: try rules(seed), tunnel: .decapsulate)
            _ = harness.run(packets: 10)
            #expect(harness.transmitted == 10, "flags \(flags): \(harness.tunnelStatistics)")
            let delivered = harness.lastTransmittedFrame
            #expect(delivered[15] == 0x03 && delivered[22] == 5 && Ref.sum(Array(delivered[14..<34])) == 0xffff)
            #expect(Array(delivered[34...]) == Array(inner[34...]))
            #expect(harness.accounting().isConsistent)
        }
    }

    @Test func refusedPacketsAreCountedByReason() throws {
        let inner = udpFrame()
        let cases: [([UInt8], KeyPath<TunnelStatistics, UInt64>)] = [
            (lisp(inner, instanceID: 9), \.droppedIIDMismatch),
            (badInnerVersion(lisp(inner)), \.droppedBadHeader),
            (lisp(inner, flags: 0x4f), \.droppedEncrypted),
            (lisp(inner, flags: 0x49), \.droppedEncrypted),
            (withOuter(lisp(inner), tos: 0x03, ttl: 64), \.droppedCENotECT),
            (withOuter(lisp(inner), tos: 0x00, ttl: 0), \.droppedTTLExpired),
            (lisp(inner, source: IPAddress(ipv4: 0xc000_0209)), \.droppedUnknownRLOC),
            (lisp(lyingLength(inner, by: 1)), \.droppedBadInnerLength),
            (lisp(lyingLength(inner, by: -(inner.count - 14 - 19))), \.droppedBadInnerLength),
        ]
        for (frame, counter) in cases {
            let harness = try PipelineHarness(packets: [frame], rules: try rules(seed), tunnel: .decapsulate)
            _ = harness.run(packets: 100)
            #expect(harness.transmitted == 0)
            #expect(harness.tunnelStatistics[keyPath: counter] == 100, "\(harness.tunnelStatistics)")
            #expect(harness.tunnelStatistics.dropped == 100)
            #expect(harness.accounting().isConsistent)
        }
        // Non-IP output to the LISP port (ARP from VM1, which the seed sends NORMAL: flooded to lisp0).
        var arp = udpFrame(destinationMAC: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
        arp[12] = 0x08; arp[13] = 0x06
        let harness = try PipelineHarness(packets: [arp], rules: try rules(seed), tunnel: .encapsulate)
        _ = harness.run(packets: 100)
        #expect(harness.tunnelStatistics.droppedNonIP == 100)
        #expect(harness.accounting().isConsistent)
    }
}
