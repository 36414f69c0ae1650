import Glibc
import Testing
import VSwiftClassifier
import VSwiftFlowCache
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftDatapath

/// A miss a worker classified with a table version newer than the installer's (published to the
/// workers, `refresh` not called yet) is not lost: it waits, bounded, and is installed when
/// `refresh` brings that version, computed from it; one of an older version is refused `stale`
/// (DESIGN.md, "Megaflows and revalidation", *Early hand-overs*). The installer and the real maps.
@Suite(.serialized) struct XDPFlowCacheEarlyHandOverTests {
    static let slots: [OpenFlowPortNumber: PortSlot] = [1: 1, 2: 2]
    static let ports: [UInt32: XDPCachePortInfo] = [1: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 1),
                                                    2: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 2)]
    static let ofport: [PortSlot: UInt32] = [1: 1, 2: 2]

    static func table(_ flow: String) throws -> CompiledFlowTable {
        try CompiledFlowTable(rules: try PipelineHarness.rules([flow]), portSlot: { slots[$0] })
    }

    /// What a worker writes into its ring for a miss of `frame` on port 1.
    static func handOver(_ ring: FlowCacheKeyRing, _ frame: [UInt8], version: UInt64, bridge: Int32 = 0) {
        guard let slot = ring.reserve() else {
            Issue.record("ring full")
            return
        }
        frame.withUnsafeBytes { FlowExtractor.extract($0.baseAddress!, length: $0.count, inPort: 1, into: &slot.pointee.key) }
        slot.pointee.version = version
        slot.pointee.bridge = bridge
        ring.commit()
    }

    static func rig() throws -> (XDPFlowCacheInstaller, FlowCacheKeyRing) {
        let cache = try XDPFlowCache(capacity: 64, portSlots: 16)
        try cache.setEnabled(true)
        let ring = FlowCacheKeyRing()
        return (XDPFlowCacheInstaller(cache: cache, rings: [ring]), ring)
    }

    @Test func aMissOfTheNextVersionHandedBeforeItsRefreshIsInstalledByTheRefresh() throws {
        let (installer, ring) = try Self.rig()
        let older = try Self.table("priority=10,in_port=1,ip,actions=drop")
        let current = try Self.table("priority=10,in_port=1,ip,actions=drop")
        let next = try Self.table("priority=10,in_port=1,ip,actions=output:2")
        #expect(older.classifier.version < current.classifier.version && current.classifier.version < next.classifier.version,
                "versions are taken in build order")
        installer.refresh(bridge: 0, table: current, ports: Self.ports, ofport: Self.ofport)

        // The control thread published `next` to the workers; a worker misses with it first.
        Self.handOver(ring, Build.ipv4UDP(), version: next.classifier.version)
        // And one from before `current` (its worker had not parked yet): older, refused.
        Self.handOver(ring, Build.ipv4TCP(), version: older.classifier.version)
        installer.runOnce(fold: false)
        var s = installer.statistics
        #expect(installer.entryCount == 0, "nothing is installed from a version the installer does not have")
        #expect(s.early == 1)
        #expect(s.stale == 1, "the older one is stale, counted apart")
        #expect(s.installed == 0)

        installer.refresh(bridge: 0, table: next, ports: Self.ports, ofport: Self.ofport)
        s = installer.statistics
        #expect(installer.entryCount == 1, "the refresh installs the waiting miss")
        #expect(s.installed == 1)
        #expect(s.earlyDropped == 0 && s.earlyOverflow == 0)
        let entry = try #require(installer.snapshot().first?.entry)
        #expect(entry.flow.version == next.classifier.version, "computed from the version that arrived")
        #expect(entry.flow.actions == [.output(2)], "with its actions, not the older table's drop")
        #expect(installer.earlyKeysWaiting == 0)
    }

    @Test func aMissOfAVersionAStillNewerOneReplacedIsDroppedCounted() throws {
        let (installer, ring) = try Self.rig()
        let current = try Self.table("priority=10,in_port=1,ip,actions=drop")
        let skipped = try Self.table("priority=10,in_port=1,ip,actions=output:2")
        let newest = try Self.table("priority=10,in_port=1,ip,actions=drop")
        installer.refresh(bridge: 0, table: current, ports: Self.ports, ofport: Self.ofport)
        Self.handOver(ring, Build.ipv4UDP(), version: skipped.classifier.version)
        Self.handOver(ring, Build.ipv4TCP(), version: newest.classifier.version)
        installer.runOnce(fold: false)
        #expect(installer.statistics.early == 2)

        // `skipped` never reaches the installer (replaced first): its miss goes, the newest one's is installed.
        installer.refresh(bridge: 0, table: newest, ports: Self.ports, ofport: Self.ofport)
        let s = installer.statistics
        #expect(s.earlyDropped == 1)
        #expect(s.installed == 1)
        #expect(installer.snapshot().map(\.entry.flow.version) == [newest.classifier.version])
        #expect(installer.earlyKeysWaiting == 0)
        let report = XDPFlowCacheReport(.init(statistics: .init(refused: ["early_dropped": s.earlyDropped])))
        #expect(report.statistics.refused == ["early_dropped": 1])
    }

    @Test func aFloodOfEarlyMissesIsBoundedAndCounted() throws {
        let (installer, ring) = try Self.rig()
        let current = try Self.table("priority=10,in_port=1,ip,actions=drop")
        let next = try Self.table("priority=10,in_port=1,ip,actions=drop")
        installer.refresh(bridge: 0, table: current, ports: Self.ports, ofport: Self.ofport)
        let bound = XDPFlowCacheInstaller.maxWaitingKeys
        // Three bounds' worth of distinct flows (UDP source ports), a ring's worth at a time.
        var sent = 0
        while sent < 3 * bound {
            for _ in 0..<min(FlowCacheKeyRing.capacity, 3 * bound - sent) {
                Self.handOver(ring, Build.ipv4UDP(src: UInt16(1000 + sent)), version: next.classifier.version)
                sent += 1
            }
            installer.runOnce(fold: false)
        }
        // A hostile repeat of one key is held once.
        Self.handOver(ring, Build.ipv4UDP(src: UInt16(1000 + sent - 1)), version: next.classifier.version)
        // A bridge slot no datapath has is not held at all.
        Self.handOver(ring, Build.ipv4UDP(), version: next.classifier.version, bridge: Int32(DatapathLimits.maxBridges))
        installer.runOnce(fold: false)
        var s = installer.statistics
        #expect(installer.earlyKeysWaiting == bound)
        #expect(s.early == UInt64(3 * bound))
        #expect(s.earlyOverflow == UInt64(2 * bound))
        #expect(s.duplicate == 1)
        #expect(s.stale == 1)

        installer.refresh(bridge: 0, table: next, ports: Self.ports, ofport: Self.ofport)
        s = installer.statistics
        #expect(installer.earlyKeysWaiting == 0)
        // One megaflow (the rule looks at in_port and ip only): one entry, the rest duplicates of it.
        #expect(installer.entryCount == 1)
        #expect(s.installed == 1)
        #expect(s.duplicate == UInt64(1 + bound - 1))
    }

    @Test func aBridgesFirstTableAndABridgeThatWent() throws {
        let (installer, ring) = try Self.rig()
        let first = try Self.table("priority=10,in_port=1,ip,actions=drop")
        // Published to the workers before the installer heard of the bridge at all.
        Self.handOver(ring, Build.ipv4UDP(), version: first.classifier.version, bridge: 3)
        installer.runOnce(fold: false)
        #expect(installer.statistics.early == 1)
        installer.refresh(bridge: 3, table: first, ports: Self.ports, ofport: Self.ofport)
        #expect(installer.entryCount == 1)

        // The bridge's table goes (NORMAL): a late miss of its last version is stale, not early.
        installer.refresh(bridge: 3, table: nil, ports: [:], ofport: [:])
        Self.handOver(ring, Build.ipv4TCP(), version: first.classifier.version, bridge: 3)
        installer.runOnce(fold: false)
        #expect(installer.statistics.stale == 1)
        #expect(installer.earlyKeysWaiting == 0)

        // Waiting keys of a bridge whose table goes are dropped, counted.
        let next = try Self.table("priority=10,in_port=1,ip,actions=drop")
        Self.handOver(ring, Build.ipv4UDP(), version: next.classifier.version, bridge: 3)
        installer.runOnce(fold: false)
        #expect(installer.earlyKeysWaiting == 1)
        installer.removeEverything()
        #expect(installer.earlyKeysWaiting == 0)
        #expect(installer.statistics.earlyDropped == 1)
    }

    @Test func theRecordAlone() {
        var keys = XDPFlowCacheEarlyKeys(bound: 2)
        var a = FlowKey(), b = FlowKey(), c = FlowKey()
        a.set(.tpSrc, 1)
        b.set(.tpSrc, 2)
        c.set(.tpSrc, 3)
        #expect(keys.hold(a, version: 5, bridge: 0) == .held)
        #expect(keys.hold(a, version: 5, bridge: 0) == .duplicate)
        #expect(keys.hold(b, version: 6, bridge: 0) == .held)
        #expect(keys.hold(c, version: 7, bridge: 0) == .heldDroppingOldest(.init(key: a, version: 5)), "the oldest comes back")
        #expect(keys.hold(c, version: 7, bridge: 0, worker: 1) == .heldDroppingOldest(.init(key: b, version: 6)),
                "another worker's miss of the same flow is its own (each worker is told to forget its own)")
        #expect(keys.hold(b, version: 6, bridge: 0) == .heldDroppingOldest(.init(key: c, version: 7)))
        #expect(keys.hold(a, version: 5, bridge: 1) == .held, "per bridge")
        #expect(keys.count == 3)
        // Version 6 arrives: b installs, c (7) waits; bridge 1 untouched.
        let r = keys.arrived(version: 6, bridge: 0)
        #expect(r.ready == [.init(key: b, version: 6)] && r.dropped.isEmpty)
        #expect(keys.held[0] == [.init(key: c, version: 7, worker: 1)])
        // Version 8 replaces 7 before it arrived: the key comes back with its worker.
        let replaced = keys.arrived(version: 8, bridge: 0)
        #expect(replaced.ready.isEmpty && replaced.dropped == [.init(key: c, version: 7, worker: 1)])
        #expect(keys.removeBridge(1) == 1)
        #expect(keys.count == 0)
    }
}
