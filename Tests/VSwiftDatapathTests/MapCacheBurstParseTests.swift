import Testing
import VSwiftClassifier
import VSwiftMapCache
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftDatapath

/// A frame output to a `remote_ip=map` port is looked up by its bytes as they are at output, not
/// by what was read of it before classification (a prefetch hint, `WorkerMapCache.prefetch`): a
/// header action before the output, a copy for an earlier output, a pushed tag, a non-IP or a
/// malformed frame in the burst each go where the map-cache maps the inner destination the packet
/// has when it is encapsulated (RFC 9301 §5.4), or are counted non-IP.
@Suite("Worker map-cache lookups read the frame as it is at output")
struct MapCacheBurstParseTests {
    let base = MapCachePipelineTests()
    static let rlocA = MapCachePipelineTests.rlocA
    static let rlocB = MapCachePipelineTests.rlocB

    func harness(_ packets: [[UInt8]], actions: String) throws -> PipelineHarness {
        let h = try PipelineHarness(packets: packets, rules: try rules(["in_port=1,actions=\(actions)"]), tunnel: .encapsulate)
        h.useMapCache(instanceID: MapCachePipelineTests.iid, rlocs: [Self.rlocA, Self.rlocB])
        h.recordSentFrames = true
        // 10.1.1.0/24 → B, the rest of 10.1.0.0/16 → A.
        h.publishMapCache(base.snapshot([
            (base.prefix("10.1.0.0/16"), base.one(Self.rlocA), nil),
            (base.prefix("10.1.1.0/24"), base.one(Self.rlocB), nil),
        ]))
        return h
    }

    /// (outer destination, inner destination) of each frame sent (outer IPv4: the inner IP header
    /// starts after 14 + 20 + 8 + 8 bytes).
    func sent(_ h: PipelineHarness) -> [(IPAddress, IPAddress)] {
        h.sentFrames.map { (IPAddress(ipv4: Ref.u32($0.bytes, 30)), IPAddress(ipv4: Ref.u32($0.bytes, 50 + 16))) }
    }

    @Test func aDestinationRewrittenBeforeTheOutputIsLookedUpAsRewritten() throws {
        let h = try harness([base.frame4(to: 0x0a01_011e)], actions: "mod_nw_dst:10.1.2.30,output:2")
        _ = h.run(packets: 100)
        let frames = sent(h)
        #expect(frames.count == 100)
        #expect(frames.allSatisfy { $0.0 == Self.rlocA && $0.1 == IPAddress("10.1.2.30")! })
        #expect(h.accounting().isConsistent)
    }

    @Test func aCopyForAnEarlierOutputAndTheRewrittenFrameEachGoWhereTheirDestinationMaps() throws {
        let h = try harness([base.frame4(to: 0x0a01_011e)], actions: "output:2,mod_nw_dst:10.1.2.30,output:2")
        _ = h.run(packets: 50)
        let frames = sent(h)
        #expect(frames.count == 100)
        for (i, frame) in frames.enumerated() {
            let want = i % 2 == 0 ? (Self.rlocB, IPAddress("10.1.1.30")!) : (Self.rlocA, IPAddress("10.1.2.30")!)
            #expect(frame.0 == want.0 && frame.1 == want.1, "frame \(i)")
        }
        #expect(h.tunnelStatistics.encapsulated == 100)
        #expect(h.accounting().isConsistent)
    }

    @Test func aPushedTagMovesTheFrameAndItIsParsedAgain() throws {
        let inner = base.frame4(to: 0x0a01_011e)
        let h = try harness([inner], actions: "push_vlan:0x8100,mod_vlan_vid:5,output:2")
        _ = h.run(packets: 20)
        #expect(h.sentFrames.count == 20)
        // Encapsulation drops the inner L2 header, tag included (RFC 9300 §5.3).
        for sentFrame in h.sentFrames {
            let want = base.expected(inner, rloc: Self.rlocB, sent: sentFrame.bytes)
            #expect(sentFrame.bytes == want)
        }
        #expect(h.accounting().isConsistent)
    }

    @Test func nonIPFramesBetweenIPOnesAreCountedAndTheOthersStillResolve() throws {
        let arp = Build.ethernet(type: 0x0806, [UInt8](repeating: 0, count: 28))
        let frames = [arp, base.frame4(to: 0x0a01_011e), arp, base.frame4(to: 0x0a01_021e)]
        let h = try harness(frames, actions: "output:2")
        _ = h.run(packets: 400)
        #expect(h.tunnelStatistics.droppedNonIP == 200)
        #expect(h.tunnelStatistics.encapsulated == 200)
        let outer = sent(h).map(\.0)
        #expect(outer == Array([Self.rlocB, Self.rlocA].repeated(100)))
        #expect(h.accounting().isConsistent)
    }

    /// The prefetch hint and the inline lookup read any frame with the IPv4 ethertype; neither
    /// is trusted with the version: an IPv4 ethertype over a version-6 header, or a frame too
    /// short for an IPv4 header, is never encapsulated (RFC 9300 §5.3: the inner header is IPv4
    /// or IPv6), even when a valid frame has resolved the destination its bytes name, while the
    /// valid IPv4 frames between them resolve.
    @Test func anIPv4EthertypeOverAnotherVersionOrTooShortIsCountedNotIP() throws {
        let valid = base.frame4(to: 0x0a01_011e)
        var wrongVersion = valid
        wrongVersion[14] = 0x65
        let tooShort = Array(valid[0..<33])
        let h = try harness([valid, wrongVersion, base.frame4(to: 0x0a01_021e), tooShort], actions: "output:2")
        _ = h.run(packets: 400)
        #expect(h.tunnelStatistics.droppedNonIP == 200)
        #expect(h.tunnelStatistics.encapsulated == 200)
        let frames = sent(h)
        #expect(frames.map(\.0) == Array([Self.rlocB, Self.rlocA].repeated(100)))
        #expect(frames.map(\.1) == Array([IPAddress("10.1.1.30")!, IPAddress("10.1.2.30")!].repeated(100)))
        #expect(h.accounting().isConsistent)
    }

    /// The hit path takes a frame's set from its burst slot's hint (`Worker.mapFrameSet`, from
    /// `WorkerMapCache.burstSets`), not from its destination: a hint naming another set (here
    /// the hint frozen, no longer renewed per frame: every frame's names the first destination's
    /// set, which holds its resolution) costs a slower lookup, never a wrong RLOC.
    @Test func aWrongSetHintStillSendsEachFrameToItsDestinationsRLOC() throws {
        let h = try harness([base.frame4(to: 0x0a01_011e), base.frame4(to: 0x0a01_021e)], actions: "output:2")
        _ = h.run(packets: 100)
        #expect(sent(h).map(\.0) == Array([Self.rlocB, Self.rlocA].repeated(50)))
        h.worker.mapCache.hasPorts = false
        let firstSet = WorkerMapCache.setNumber(IPAddress("10.1.1.30")!)
        #expect(firstSet != WorkerMapCache.setNumber(IPAddress("10.1.2.30")!))
        h.worker.mapFrameSet = WorkerMapCache.set(number: firstSet, in: h.worker.mapResolutions)
        h.clearSentFrames()
        _ = h.run(packets: 200)
        #expect(sent(h).map(\.0) == Array([Self.rlocB, Self.rlocA].repeated(100)))
        #expect(h.tunnelStatistics.encapsulated == 300)
        #expect(h.accounting().isConsistent)
    }

    /// A VLAN-tagged inner frame skips the inline read and is parsed out of line: it still goes to
    /// its destination's RLOC, without its tag (RFC 9300 §5.3).
    @Test func aTaggedFrameIsParsedOutOfLineAndResolves() throws {
        let untagged = base.frame4(to: 0x0a01_011e)
        let tagged = Array(untagged[0..<12]) + [0x81, 0x00, 0x00, 0x07] + Array(untagged[12...])
        let h = try harness([tagged, base.frame4(to: 0x0a01_021e)], actions: "output:2")
        _ = h.run(packets: 200)
        #expect(h.tunnelStatistics.encapsulated == 200)
        #expect(sent(h).map(\.0) == Array([Self.rlocB, Self.rlocA].repeated(100)))
        #expect(h.accounting().isConsistent)
    }
}

private extension Array {
    func repeated(_ times: Int) -> [Element] { (0..<times).flatMap { _ in self } }
}
