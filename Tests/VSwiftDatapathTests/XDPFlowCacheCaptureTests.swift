import Glibc
import Testing
import VSwiftClassifier
import VSwiftFlowCache
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftDatapath

/// A capture keeps its port out of every entry, and only its port: starting it takes out the
/// entries that touch the port (they wait), the bridge's other entries stay in, and stopping it
/// puts the waiting ones back without a new miss — the workers' exact-match caches hold those
/// flows, so they would not ask again (DESIGN.md, "Wiring", *Changes*). The installer and the real maps.
@Suite(.serialized) struct XDPFlowCacheCaptureTests {
    static let ports: [UInt32: XDPCachePortInfo] = [1: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 1),
                                                    2: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 2),
                                                    3: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 3)]
    static let ofport: [PortSlot: UInt32] = [1: 1, 2: 2, 3: 3]

    static func handOver(_ ring: FlowCacheKeyRing, _ frame: [UInt8], inPort: UInt32, version: UInt64) throws {
        let slot = try #require(ring.reserve())
        frame.withUnsafeBytes { FlowExtractor.extract($0.baseAddress!, length: $0.count, inPort: inPort, into: &slot.pointee.key) }
        slot.pointee.version = version
        slot.pointee.bridge = 0
        ring.commit()
    }

    /// The input ports of the installed entries.
    static func inputs(_ installer: XDPFlowCacheInstaller) -> [UInt64] {
        installer.snapshot().map { $0.entry.flow.maskedKey.get(.inPort) }.sorted()
    }

    @Test func aCaptureTakesOutOnlyItsPortsEntriesAndTheyComeBackWhenItStops() throws {
        let cache = try XDPFlowCache(capacity: 64, portSlots: 16)
        try cache.setEnabled(true)
        let ring = FlowCacheKeyRing()
        let installer = XDPFlowCacheInstaller(cache: cache, rings: [ring])
        let slots: [OpenFlowPortNumber: PortSlot] = [1: 1, 2: 2, 3: 3]
        let table = try CompiledFlowTable(rules: try PipelineHarness.rules([
            "priority=10,in_port=1,ip,actions=output:2", "priority=10,in_port=3,ip,actions=drop",
        ]), portSlot: { slots[$0] })
        installer.refresh(bridge: 0, table: table, ports: Self.ports, ofport: Self.ofport)
        try Self.handOver(ring, Build.ipv4UDP(), inPort: 1, version: table.classifier.version)
        try Self.handOver(ring, Build.ipv4UDP(), inPort: 3, version: table.classifier.version)
        installer.runOnce(fold: false)
        #expect(Self.inputs(installer) == [1, 3])

        // A capture on port 2: the entry that outputs to it goes, port 3's drop stays in.
        installer.setCapturing(2, true)
        #expect(Self.inputs(installer) == [3], "only the entry touching the captured port goes")
        // A second capture on the same port changes nothing.
        installer.setCapturing(2, true)
        #expect(Self.inputs(installer) == [3])
        installer.setCapturing(2, false)
        #expect(Self.inputs(installer) == [3], "one capture still runs")

        // The last capture stops: the entry is back without a new miss.
        installer.setCapturing(2, false)
        #expect(Self.inputs(installer) == [1, 3])
        #expect(installer.statistics.requests == 2)
    }

    @Test func aMissDuringACaptureWaitsForItToStop() throws {
        let cache = try XDPFlowCache(capacity: 64, portSlots: 16)
        try cache.setEnabled(true)
        let ring = FlowCacheKeyRing()
        let installer = XDPFlowCacheInstaller(cache: cache, rings: [ring])
        let slots: [OpenFlowPortNumber: PortSlot] = [1: 1, 2: 2, 3: 3]
        let table = try CompiledFlowTable(rules: try PipelineHarness.rules(["priority=10,in_port=1,ip,actions=output:2"]),
                                          portSlot: { slots[$0] })
        installer.refresh(bridge: 0, table: table, ports: Self.ports, ofport: Self.ofport)
        installer.setCapturing(1, true)
        try Self.handOver(ring, Build.ipv4UDP(), inPort: 1, version: table.classifier.version)
        installer.runOnce(fold: false)
        #expect(installer.entryCount == 0, "a capturing port is in no entry")
        #expect(installer.statistics.notCacheable == 1)
        installer.setCapturing(1, false)
        #expect(Self.inputs(installer) == [1], "installed when the capture stops")
    }
}
