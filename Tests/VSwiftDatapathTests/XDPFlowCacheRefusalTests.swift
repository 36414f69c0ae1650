import Glibc
import Testing
import VSwiftClassifier
import VSwiftFlowCache
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftDatapath

/// A full cache and a full hand-over ring are counted apart: `refused["full"]` is an install the
/// installer refused because the cache (or the bridge's table) had no room; `handoverRingFull` is a
/// miss a worker could not hand over at all (its ring to the installer was full). The installer,
/// its report and the real maps.
@Suite(.serialized) struct XDPFlowCacheRefusalTests {
    static let lo = UInt32(if_nametoindex("lo"))

    @Test func aFullCacheAndAFullHandOverRingAreCountedApart() throws {
        let cache = try XDPFlowCache(capacity: 1, portSlots: 16)
        try cache.setEnabled(true)
        let ring = FlowCacheKeyRing()
        let installer = XDPFlowCacheInstaller(cache: cache, rings: [ring])
        let slots: [OpenFlowPortNumber: PortSlot] = [1: 1, 2: 2]
        let table = try CompiledFlowTable(rules: try PipelineHarness.rules(["priority=10,in_port=1,ip,actions=drop"]),
                                          portSlot: { slots[$0] })
        let ports: [UInt32: XDPCachePortInfo] = [1: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 1),
                                                 2: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 2)]
        installer.refresh(bridge: 0, table: table, ports: ports, ofport: [1: 1, 2: 2])
        // The worker's side: every slot of the ring, then one more (refused by the ring). UDP,
        // then TCP once (another nw_proto: a second megaflow, refused: the cache is full), then
        // UDP again (duplicates of the installed entry).
        let frames = [Build.ipv4UDP(), Build.ipv4TCP()]
        for i in 0...FlowCacheKeyRing.capacity {
            guard let slot = ring.reserve() else {
                #expect(i == FlowCacheKeyRing.capacity)
                ring.noteRefused(1)   // as the worker counts what it drops
                continue
            }
            let frame = frames[i == 1 ? 1 : 0]
            frame.withUnsafeBytes { FlowExtractor.extract($0.baseAddress!, length: $0.count, inPort: 1, into: &slot.pointee.key) }
            slot.pointee.version = table.classifier.version
            slot.pointee.bridge = 0
            ring.commit()
        }
        installer.runOnce(fold: false)
        let s = installer.statistics
        #expect(installer.entryCount == 1)
        #expect(s.refusedFull == 1, "the second megaflow: the cache was full")
        #expect(s.handoverRingFull == 1, "the 257th miss: the ring was full")
        #expect(s.duplicate == UInt64(FlowCacheKeyRing.capacity - 2))
        #expect(s.requests == UInt64(FlowCacheKeyRing.capacity))
    }

    @Test func theReportNamesThemApart() {
        let report = XDPFlowCacheReport(.init(statistics: .init(entries: 1, capacity: 1, refused: ["full": 1], handoverRingFull: 4)))
        #expect(report.statistics.refused == ["full": 1])
        #expect(report.statistics.handoverRingFull == 4)
    }
}
