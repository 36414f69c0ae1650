import Glibc
import Testing
import VSwiftClassifier
import VSwiftFlowCache
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftDatapath

/// A hand-over the installer loses, or refuses for a reason that may not recur, goes back to the
/// worker that made it, whose exact-match cache forgets the key: the flow's next frame misses and
/// asks again (DESIGN.md, "Megaflows and revalidation", *Lost hand-overs*). Before, the worker's
/// exact-match entry kept the flow from ever asking again, off XDP until the entry was evicted.
/// A real worker (PipelineHarness) and the real installer over the real maps (`XDPInstallerRig`).
@Suite(.serialized) struct XDPFlowCacheForgetTests {
    static let slots: [OpenFlowPortNumber: PortSlot] = [1: 0, 2: 1]
    static let ports: [UInt32: XDPCachePortInfo] = [1: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 0),
                                                    2: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 1)]
    static let ofport: [PortSlot: UInt32] = [0: 1, 1: 2]
    static let flows = ["in_port=1,actions=output:2"]

    /// A table of `flows` as vswiftd compiles it with the cache on (exact-match keys on the megaflow shape).
    static func table() throws -> CompiledFlowTable {
        try CompiledFlowTable(rules: try PipelineHarness.rules(flows), portSlot: { slots[$0] }, xdpFlowCache: true)
    }

    /// A worker receiving TCP frames on port 1 and classifying with `worker`, and the rig whose
    /// installer serves its rings, given `installer` as the bridge's table.
    final class Scene {
        /// Kept alive here: the worker does not retain its table.
        let tables: (CompiledFlowTable, CompiledFlowTable)
        let harness: PipelineHarness
        let rig: XDPInstallerRig
        var installer: XDPFlowCacheInstaller { rig.installer }

        init(worker: CompiledFlowTable, installer: CompiledFlowTable) throws {
            tables = (worker, installer)
            harness = try PipelineHarness(packets: [Build.ipv4TCP()], rules: try PipelineHarness.rules(flows), batch: 1)
            harness.worker.setFlowTable(0, worker)
            harness.worker.flowCacheInstalling = true
            rig = try XDPInstallerRig(outputs: [0, 1], inPort: 0, worker: harness.worker)
            rig.installer.refresh(bridge: 0, table: installer, ports: ports, ofport: ofport)
        }

        /// One round of the worker with one frame, then one pass of the installer thread.
        func frame() {
            _ = harness.run(packets: 1)
            installer.runOnce(fold: false)
        }
    }

    /// The key of `frame` on port 1, as the worker hands it over.
    static func key(_ frame: [UInt8]) -> FlowKey {
        var key = FlowKey()
        frame.withUnsafeBytes { FlowExtractor.extract($0.baseAddress!, length: $0.count, inPort: 1, into: &key) }
        return key
    }

    @Test func anEarlyKeyPushedOutByTheBoundIsForgottenAskedAgainAndInstalled() throws {
        let current = try Self.table()
        let next = try Self.table()
        // The worker classifies with `next` before the installer's refresh brings it: held early.
        let scene = try Scene(worker: next, installer: current)
        let (harness, installer) = (scene.harness, scene.installer)
        scene.frame()
        #expect(installer.statistics.early == 1 && installer.earlyKeysWaiting == 1)
        // A bound's worth of other early misses (UDP flows: another megaflow) push it out.
        for i in 0..<XDPFlowCacheInstaller.maxWaitingKeys {
            scene.rig.handOver(Self.key(Build.ipv4UDP(src: UInt16(1000 + i))), version: next.classifier.version)
        }
        #expect(installer.statistics.earlyOverflow == 1)
        installer.refresh(bridge: 0, table: next, ports: Self.ports, ofport: Self.ofport)
        #expect(installer.snapshot().map { $0.entry.flow.maskedKey.get(.nwProto) } == [17], "the TCP flow was lost")

        // The worker's next round forgets it: the flow's next frame misses and is handed over again.
        scene.frame()
        #expect(harness.cacheMisses == 2 && harness.cacheHits == 0, "forgotten: missed again")
        #expect(installer.snapshot().map { $0.entry.flow.maskedKey.get(.nwProto) }.sorted() == [6, 17], "and installed")
        scene.frame()
        #expect(harness.cacheMisses == 2 && harness.cacheHits == 1, "installed: nothing more to forget")
        #expect(installer.statistics.forgetOverflow == 0)
    }

    @Test func aStaleRefusalIsAskedAgainWhileTheWorkerStillHasThatVersion() throws {
        let older = try Self.table()
        let newer = try Self.table()
        // The installer has a newer table than the worker classifies with (as after a table the
        // workers got back): the worker's miss is stale, and its exact-match entry is live.
        let scene = try Scene(worker: older, installer: newer)
        let (harness, installer) = (scene.harness, scene.installer)
        scene.frame()
        #expect(installer.statistics.stale == 1)
        scene.frame()
        #expect(harness.cacheMisses == 2, "forgotten: the next frame missed")
        #expect(installer.statistics.stale == 2 && installer.statistics.requests == 2, "and asked again")

        // With the newer table the miss is installed; a forget of the older version then takes
        // nothing out (that version's entries are dead already), one of the current version does.
        harness.worker.setFlowTable(0, newer)
        scene.frame()
        #expect(installer.entryCount == 1 && harness.cacheMisses == 3)
        let key = Self.key(Build.ipv4TCP())
        installer.lock.lock()
        installer.forget(key, version: older.classifier.version, bridge: 0, worker: 0)
        installer.lock.unlock()
        scene.frame()
        #expect(harness.cacheMisses == 3, "an older version's forget leaves the current entry alone")
        installer.lock.lock()
        // A bridge slot no worker has, and a worker the installer does not serve: ignored.
        installer.forget(key, version: newer.classifier.version, bridge: Int32(DatapathLimits.maxBridges), worker: 0)
        installer.forget(key, version: newer.classifier.version, bridge: 0, worker: 1)
        installer.forget(key, version: newer.classifier.version, bridge: 0, worker: 0)
        installer.lock.unlock()
        scene.frame()
        #expect(harness.cacheMisses == 4, "the current version's forget does")
    }

    @Test func aFullForgetRingIsCountedAndReported() throws {
        // No worker drains this rig's forget ring.
        let rig = try XDPInstallerRig(outputs: [0, 1], inPort: 0)
        let older = try Self.table()
        let current = try Self.table()
        rig.installer.refresh(bridge: 0, table: current, ports: Self.ports, ofport: Self.ofport)
        for i in 0...FlowCacheKeyRing.capacity {
            rig.handOver(Self.key(Build.ipv4UDP(src: UInt16(1000 + i))), version: older.classifier.version)
        }
        let s = rig.installer.statistics
        #expect(s.stale == UInt64(FlowCacheKeyRing.capacity + 1))
        #expect(s.forgetOverflow == 1, "the ring held the first 256")
        var sent: [Sent] = []
        _ = rig.forgets.drain(limit: 1000) { sent.append(.init(srcPort: $0.key.get(.tpSrc), version: $0.version)) }
        #expect(sent.count == FlowCacheKeyRing.capacity)
        #expect(sent.first == .init(srcPort: 1000, version: older.classifier.version), "oldest first, with its version")
        let report = XDPFlowCacheReport(.init(statistics: .init(forgetOverflow: s.forgetOverflow)))
        #expect(report.statistics.forgetOverflow == 1)
    }

    /// A key sent back, by what tells it apart here.
    struct Sent: Equatable {
        var srcPort: UInt64
        var version: UInt64
    }
}
