import Testing
import VSwiftMapCache
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftDatapath

/// The worker keeps each inner destination's map-cache resolution (entry, lone RLOC's next hop)
/// so that a flow's packets do not search the map-cache (WorkerMapCache.swift). What it keeps
/// must never outlive what it was made from: for a flow already resolved, a new snapshot (RLOC
/// changed, entry withdrawn, entry turned negative), new next hops and the 20 s use re-marking
/// (RFC 9301 §5.4: entries in use are refreshed before their TTL ends) all take effect on the
/// very next burst.
@Suite("Worker map-cache resolutions never go stale")
struct MapCacheResolutionTests {
    let base = MapCachePipelineTests()
    static let iid = MapCachePipelineTests.iid
    static let rlocA = MapCachePipelineTests.rlocA
    static let rlocB = MapCachePipelineTests.rlocB
    static let rlocC = MapCachePipelineTests.rlocC

    func destinations(_ h: PipelineHarness) -> [IPAddress] { h.sentFrames.map { IPAddress(ipv4: Ref.u32($0.bytes, 30)) } }

    @Test func aNegativeEntryReplacingAResolvedOneDropsTheNextPacket() throws {
        let h = try base.harness([base.frame4(to: 0x0a01_011e)])
        h.publishMapCache(base.snapshot([(base.prefix("10.1.0.0/16"), base.one(Self.rlocA), nil)]))
        _ = h.run(packets: 4)
        #expect(destinations(h) == Array(repeating: Self.rlocA, count: 4))
        // RFC 9301 §6.1.5: a negative Map-Reply's action replaces the mapping.
        h.publishMapCache(base.snapshot([(base.prefix("10.1.0.0/16"), [], .drop)]))
        _ = h.run(packets: 1)
        #expect(h.sentFrames.count == 4)
        #expect(h.tunnelStatistics.droppedMapDrop == 1)
        h.publishMapCache(base.snapshot([(base.prefix("10.1.0.0/16"), [], .sendMapRequest)]))
        _ = h.run(packets: 1)
        #expect(h.tunnelStatistics.droppedMapMiss == 1)
        // And back to a positive entry, with another RLOC.
        h.publishMapCache(base.snapshot([(base.prefix("10.1.1.0/24"), base.one(Self.rlocB), nil)]))
        _ = h.run(packets: 1)
        #expect(destinations(h) == Array(repeating: Self.rlocA, count: 4) + [Self.rlocB])
        #expect(h.accounting().isConsistent)
    }

    @Test func aResolvedFlowOfSeveralRLOCsFollowsANewSnapshotAtOnce() throws {
        let flows = (0..<16).map { base.frame4(to: 0x0a01_011e, sourcePort: UInt16(3000 + $0)) }
        let h = try base.harness(flows)
        h.publishMapCache(base.snapshot([(base.prefix("10.1.0.0/16"), [
            Locator(address: Self.rlocA, priority: 1, weight: 50), Locator(address: Self.rlocB, priority: 1, weight: 50),
        ], nil)]))
        _ = h.run(packets: 32)
        #expect(Set(destinations(h)) == [Self.rlocA, Self.rlocB])
        h.publishMapCache(base.snapshot([(base.prefix("10.1.0.0/16"), base.one(Self.rlocC), nil)]))
        _ = h.run(packets: 16)
        #expect(Array(destinations(h)[32...]) == Array(repeating: Self.rlocC, count: 16))
        // Withdrawn: every flow misses on its next packet.
        h.publishMapCache(base.snapshot([]))
        _ = h.run(packets: 16)
        #expect(h.sentFrames.count == 48)
        #expect(h.tunnelStatistics.droppedMapMiss == 16)
        #expect(h.accounting().isConsistent)
    }

    @Test func newNextHopsAreUsedByTheNextPacketOfAResolvedFlow() throws {
        let h = try base.harness([base.frame4(to: 0x0a01_011e)], rlocs: [Self.rlocA, Self.rlocB])
        h.publishMapCache(base.snapshot([(base.prefix("10.1.0.0/16"), base.one(Self.rlocA), nil)]))
        _ = h.run(packets: 3)
        #expect(h.sentFrames.count == 3)
        // The resolver lost the route to A: its next-hop slot is gone, so the kept index must not
        // be used (it would now be empty or another RLOC's); the flow waits for a neighbour.
        h.setMapNextHops([Self.rlocB])
        _ = h.run(packets: 1)
        #expect(h.sentFrames.count == 3)
        #expect(h.tunnelStatistics.droppedNoNeighbour == 1)
        #expect(h.tunnelStatistics.droppedNoRoute == 0)
        // A is back (at whatever slot the table gives it now).
        h.setMapNextHops([Self.rlocC, Self.rlocB, Self.rlocA])
        _ = h.run(packets: 2)
        #expect(destinations(h) == Array(repeating: Self.rlocA, count: 5))
        #expect(h.accounting().isConsistent)
    }

    @Test func anEntryInUseIsMarkedOncePerEpochAndAgainAfterTwentySeconds() throws {
        let h = try base.harness([base.frame4(to: 0x0a01_011e)])
        let marks = UseMarks(capacity: 1)
        h.publishMapCache(MapCacheSnapshot([
            SnapshotEntry(prefix: base.prefix("10.1.0.0/16"), locators: base.one(Self.rlocA), markSlot: 0),
        ], marks: marks))
        _ = h.run(packets: 5)
        #expect(marks.take(0), "the first packet marks the entry used")
        // Not per packet: the worker's resolution is kept for the epoch, and marks nothing more.
        _ = h.run(packets: 5)
        #expect(!marks.take(0))
        // 20 s on, the next packet looks the entry up again and marks it: the control side sees
        // an entry in steady use within its 60 s activity window.
        h.ageMapCacheResolutions(seconds: WorkerMapCache.remarkSeconds)
        _ = h.run(packets: 1)
        #expect(marks.take(0))
        _ = h.run(packets: 3)
        #expect(!marks.take(0))
        #expect(h.sentFrames.count == 14)
    }
}
