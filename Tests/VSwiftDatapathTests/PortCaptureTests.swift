import Testing
import VSwiftClassifier
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftDatapath

/// Port capture (`vswiftctl capture`): the per-worker ring (bounded, single producer and consumer,
/// overflow counted, never waiting) and where the worker copies frames — rx before any action,
/// tx as sent, a LISP port's frames on the bridge's side, the outer packets on the underlay port —
/// with counts equal to the port counters.
@Suite("Port capture")
struct PortCaptureTests {
    static func frame(_ i: Int, length: Int = 60) -> [UInt8] {
        (0..<length).map { UInt8(truncatingIfNeeded: $0 &+ i) }
    }

    static func push(_ ring: CaptureRing, _ bytes: [UInt8], timestamp: UInt64, direction: CaptureDirection = .rx) {
        bytes.withUnsafeBytes { ring.push($0.baseAddress!, length: bytes.count, timestamp: timestamp, direction: direction) }
    }

    @Test func aFullRingCountsTheFramesItCannotKeepAndKeepsTheOldest() {
        let ring = CaptureRing(capacity: 8, snapLength: 128)
        for i in 0..<10 { Self.push(ring, Self.frame(i), timestamp: UInt64(i)) }
        #expect(ring.dropped == 2)
        var frames: [CapturedFrame] = []
        ring.drain(into: &frames, limit: 100)
        #expect(frames.map(\.timestamp) == Array(0..<8))
        #expect(frames.map(\.bytes) == (0..<8).map { Self.frame($0) })
        // Drained: room again.
        Self.push(ring, Self.frame(42), timestamp: 42)
        #expect(ring.dropped == 2 && ring.pending == 1)
    }

    @Test func theRingWrapsAroundManyTimesInOrder() {
        let ring = CaptureRing(capacity: 4, snapLength: 256)
        var next = 0
        for round in 0..<40 {
            let n = 1 + round % 4
            for k in 0..<n { Self.push(ring, Self.frame(next + k, length: 14 + (next + k) % 200), timestamp: UInt64(next + k), direction: k % 2 == 0 ? .rx : .tx) }
            var frames: [CapturedFrame] = []
            ring.drain(into: &frames, limit: round % 3 == 0 ? 2 : 100)  // sometimes less than is there
            var more: [CapturedFrame] = []
            ring.drain(into: &more, limit: 100)
            frames += more
            #expect(frames.count == n, "round \(round)")
            for (k, f) in frames.enumerated() {
                #expect(f.timestamp == UInt64(next + k) && f.bytes == Self.frame(next + k, length: 14 + (next + k) % 200), "round \(round)")
                #expect(f.direction == (k % 2 == 0 ? .rx : .tx))
            }
            next += n
        }
        #expect(ring.dropped == 0)
    }

    @Test func theSnapLengthCutsTheCopyButKeepsTheFramesLength() {
        let ring = CaptureRing(capacity: 2, snapLength: 64)
        Self.push(ring, Self.frame(1, length: 1500), timestamp: 1)
        var frames: [CapturedFrame] = []
        ring.drain(into: &frames, limit: 1)
        #expect(frames.first?.originalLength == 1500)
        #expect(frames.first?.bytes == Array(Self.frame(1, length: 1500).prefix(64)))
    }

    @Test func aRecordWrittenButNotPublishedIsNeitherSeenNorKept() {
        let ring = CaptureRing(capacity: 2, snapLength: 64)
        let a = Self.frame(1), b = Self.frame(2)
        _ = a.withUnsafeBytes { ring.write($0.baseAddress!, length: a.count, timestamp: 1, direction: .tx) }
        #expect(ring.pending == 0)
        _ = b.withUnsafeBytes { ring.write($0.baseAddress!, length: b.count, timestamp: 2, direction: .tx) }
        ring.publish()
        var frames: [CapturedFrame] = []
        ring.drain(into: &frames, limit: 10)
        #expect(frames.map(\.bytes) == [b])
    }

    // MARK: In the worker

    @Test func rxIsCapturedBeforeTheActionsAndTxAsSentWithCountsEqualToThePortCounters() throws {
        let input = (0..<3).map { udpFrame(sourcePort: UInt16(3000 + $0)) }
        let harness = try PipelineHarness(packets: input, rules: try rules(["priority=1,ip,actions=mod_nw_tos:16,output:2"]))
        harness.recordSentFrames = true
        let rx = harness.capture(port: 0, directions: [.rx], captureSlot: 0)
        let tx = harness.capture(port: 1, directions: [.tx], captureSlot: 1)
        _ = harness.run(packets: 300)
        var received: [CapturedFrame] = [], sent: [CapturedFrame] = []
        rx.drain(into: &received, limit: 1000)
        tx.drain(into: &sent, limit: 1000)
        #expect(received.count == 300 && UInt64(received.count) == harness.packetCounts(port: 0).rx)
        #expect(sent.count == 300 && UInt64(sent.count) == harness.packetCounts(port: 1).tx)
        #expect(received.map(\.bytes) == (0..<300).map { input[$0 % 3] }, "rx copies are the frames as they arrived")
        #expect(sent.map(\.bytes) == harness.sentFrames.map(\.bytes), "tx copies are the frames as they left, rewritten")
        #expect(sent.allSatisfy { $0.bytes[15] == 16 && $0.direction == .tx } && received.allSatisfy { $0.bytes[15] == 0 && $0.direction == .rx })
        #expect(received.map(\.timestamp) == received.map(\.timestamp).sorted())
        #expect(rx.dropped == 0 && tx.dropped == 0)

        // Stopped: nothing more is copied, forwarding goes on.
        harness.stopCapture(port: 0, captureSlot: 0)
        harness.stopCapture(port: 1, captureSlot: 1)
        _ = harness.run(packets: 100)
        #expect(rx.pending == 0 && tx.pending == 0)
        #expect(harness.transmitted == 400)
        #expect(harness.accounting().isConsistent)
    }

    @Test func aCaptureThatCannotKeepUpDropsCopiesNeverFrames() throws {
        let harness = try PipelineHarness(packets: [udpFrame()], rules: try rules(["priority=1,actions=output:2"]))
        let ring = harness.capture(port: 0, directions: [.rx, .tx], capacity: 16)
        _ = harness.run(packets: 500)
        #expect(harness.transmitted == 500)
        #expect(ring.pending == 16 && ring.dropped == 484)
        #expect(harness.accounting().isConsistent)
    }

    static let seed = [
        "priority=0,action=NORMAL",
        "priority=2,in_port=1,dl_type=0x0806,action=NORMAL",
        "priority=3,dl_dst=02:00:00:00:00:00,action=mod_dl_dst:52:54:00:B8:27:75,output:1",
        "priority=1,in_port=1,dl_type=0x0800,vlan_tci=0,nw_src=10.1.1.0/24,action=output:2",
    ]

    @Test func aLISPPortSendsTheInnerFrameBeforeEncapsulationAndTheUnderlayTheOuterPacket() throws {
        let inner = udpFrame()
        // Slots: VM 0, underlay 1, LISP port 2.
        let harness = try PipelineHarness(packets: [inner], rules: try rules(Self.seed), tunnel: .encapsulate)
        harness.recordSentFrames = true
        let lisp = harness.capture(port: 2, directions: [.rx, .tx], captureSlot: 0)
        let underlay = harness.capture(port: 1, directions: [.tx], captureSlot: 1)
        _ = harness.run(packets: 200)
        var inners: [CapturedFrame] = [], outers: [CapturedFrame] = []
        lisp.drain(into: &inners, limit: 1000)
        underlay.drain(into: &outers, limit: 1000)
        #expect(inners.count == 200 && UInt64(inners.count) == harness.packetCounts(port: 2).tx)
        #expect(inners.allSatisfy { $0.bytes == inner && $0.direction == .tx })
        #expect(outers.count == 200 && UInt64(outers.count) == harness.packetCounts(port: 1).tx)
        #expect(outers.map(\.bytes) == harness.sentFrames.map(\.bytes))
        #expect(outers.allSatisfy { $0.bytes.count == inner.count - 14 + LISP.overheadIPv4 && Array($0.bytes[36..<38]) == [0x10, 0xf5] })
        #expect(harness.accounting().isConsistent)
    }

    @Test func anEncapsulationThatFailsLeavesNoCopyOnTheLISPPort() throws {
        // Over the underlay MTU: encapsulated, then dropped (too_big) — not sent, so not captured.
        let harness = try PipelineHarness(packets: [udpFrame(payload: 58)], rules: try rules(Self.seed), tunnel: .encapsulate, underlayMTU: 100)
        let lisp = harness.capture(port: 2, directions: [.tx])
        _ = harness.run(packets: 50)
        #expect(harness.tunnelStatistics.droppedTooBig == 50)
        #expect(lisp.pending == 0 && lisp.dropped == 0 && harness.packetCounts(port: 2).tx == 0)
    }

    @Test func aLISPPortReceivesTheDecapsulatedFrameAndTheUnderlayTheOuterPacket() throws {
        let inner = udpFrame(destinationMAC: [2, 0, 0, 0, 0, 0])
        var parameters = PipelineHarness.encapsulationToHarness
        parameters.source = PipelineHarness.remoteRLOC
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 512 + inner.count, alignment: 64)
        defer { buffer.deallocate() }
        var start = buffer + 256
        inner.withUnsafeBytes { start.copyMemory(from: $0.baseAddress!, byteCount: inner.count) }
        var length = inner.count
        _ = LISP.encapsulate(&start, length: &length, headroom: 256, instanceID: 0, parameters: parameters, ipIdentification: 7)
        let outer = Array(UnsafeRawBufferPointer(start: start, count: length))
        // Slots: underlay 0, VM 1, LISP port 2.
        let harness = try PipelineHarness(packets: [outer], rules: try rules(Self.seed), tunnel: .decapsulate)
        let lisp = harness.capture(port: 2, directions: [.rx, .tx], captureSlot: 0)
        let underlay = harness.capture(port: 0, directions: [.rx], captureSlot: 1)
        _ = harness.run(packets: 100)
        var inners: [CapturedFrame] = [], outers: [CapturedFrame] = []
        lisp.drain(into: &inners, limit: 1000)
        underlay.drain(into: &outers, limit: 1000)
        #expect(inners.count == 100 && UInt64(inners.count) == harness.packetCounts(port: 2).rx)
        // As the bridge sees it: from and to 02:00:00:00:00:00, before the flows rewrite it.
        #expect(inners.allSatisfy { $0.bytes == [2, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0x08, 0x00] + inner[14...] && $0.direction == .rx })
        #expect(outers.count == 100 && outers.allSatisfy { $0.bytes == outer } && UInt64(outers.count) == harness.packetCounts(port: 0).rx)
        #expect(harness.transmitted == 100)
    }
}
