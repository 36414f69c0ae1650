import CXDP
import Glibc
import Testing
@testable import VSwiftDatapath
import VSwiftClassifier
import VSwiftFlowCache
import VSwiftPacket
import VSwiftTesting

/// The workers' exact-match cache with the XDP flow cache on keys on the megaflow shape (in_port,
/// dl_type, VLAN present bits, nw_proto, nw_frag; nw_ttl under dec_ttl): two flows whose XDP
/// entries differ never share an exact-match entry, so each misses once and is handed over. Before,
/// the cache was keyed on the rules' masks alone: under the seed's flows a ping and then UDP
/// between the same hosts shared one entry, the UDP flow never missed, never got an XDP entry,
/// and stayed on the workers' path. A real worker (PipelineHarness) hands over, the real installer
/// installs, and the real redirect program (BPF_PROG_RUN) hits.
@Suite(.serialized) struct XDPFlowCacheShapeTests {
    /// The seed's flows (bench `Pipeline.seedFlows`, FlowIntegrationTests).
    static let seedFlows = [
        "priority=0,action=NORMAL",
        "priority=2,in_port=1,dl_type=0x0806,action=NORMAL",
        "priority=3,dl_dst=02:00:00:00:00:00,action=mod_dl_dst:52:54:00:B8:27:75,output:1",
        "priority=1,in_port=1,dl_type=0x0800,vlan_tci=0,nw_src=10.1.1.0/24,action=output:2",
    ]
    static let vm1: UInt32 = 0x0a01_0114      // 10.1.1.20
    static let peer: UInt32 = 0x0a01_011e     // 10.1.1.30

    static func ping(ttl: UInt8 = 64) -> [UInt8] {
        Build.ethernet(type: 0x0800, Build.ipv4(src: vm1, dst: peer, proto: 1, ttl: ttl,
                                                 Build.icmp(type: 8, code: 0, [0, 1, 0, 1, 0xab, 0xcd])))
    }

    static func udp() -> [UInt8] {
        Build.ethernet(type: 0x0800, Build.ipv4(src: vm1, dst: peer, proto: 17,
                                                 Build.withL4Checksum4(Build.udp(src: 40000, dst: 4321, [1, 2, 3, 4]), proto: 17,
                                                                       src: vm1, dst: peer)))
    }

    static func tcp() -> [UInt8] {
        Build.ethernet(type: 0x0800, Build.ipv4(src: vm1, dst: peer, proto: 6,
                                                 Build.withL4Checksum4(Build.tcp(src: 40000, dst: 4321), proto: 6,
                                                                       src: vm1, dst: peer)))
    }

    /// A worker (ports 1 → slot 0, 2 → slot 1) running `frames` one at a time, in order, under
    /// `flows` compiled as vswiftd compiles them with the cache on (`xdpFlowCache`) or as before;
    /// handing over either way. Returns the harness and its table.
    static func worker(_ flows: [String], frames: [[UInt8]], xdpFlowCache: Bool) throws -> (PipelineHarness, CompiledFlowTable) {
        let rules = try PipelineHarness.rules(flows)
        let harness = try PipelineHarness(packets: frames, rules: rules, batch: 1)
        let slots: [OpenFlowPortNumber: PortSlot] = [1: 0, 2: 1]
        let table = try CompiledFlowTable(rules: rules, portSlot: { slots[$0] }, xdpFlowCache: xdpFlowCache)
        harness.worker.setFlowTable(0, table)
        harness.worker.flowCacheInstalling = true
        for _ in frames { _ = harness.run(packets: 1) }
        return (harness, table)
    }

    /// The keys the worker handed over (drained from its ring).
    static func handedOver(_ harness: PipelineHarness) -> [FlowKey] {
        var keys: [FlowKey] = []
        _ = harness.worker.flowCacheRequests.drain(limit: 1000) { keys.append($0.key) }
        return keys
    }

    @Test func flowsDifferingOnlyInNwProtoEachMissOnceAndAreHandedOver() throws {
        let frames = [Self.ping(), Self.udp(), Self.tcp(), Self.ping(), Self.udp()]
        let (harness, table) = try Self.worker(Self.seedFlows, frames: frames, xdpFlowCache: true)
        let keys = Self.handedOver(harness)
        #expect(keys.map { $0.get(.nwProto) } == [1, 17, 6], "ping, UDP and TCP each handed over once")
        #expect(harness.cacheMisses == 3 && harness.cacheHits == 2)
        #expect(table.classifier.exactMatchAlso == CompiledFlowTable.flowCacheExactMatchBits([]))
        // The control: keyed on the rules' masks alone (as before), UDP and TCP hit ping's entry.
        let (before, _) = try Self.worker(Self.seedFlows, frames: frames, xdpFlowCache: false)
        #expect(Self.handedOver(before).count == 1, "the test sees the bug it guards against")
    }

    /// A miss the full hand-over ring drops is forgotten by the exact-match cache, so the flow's
    /// next frame misses and asks again; before, it hit the exact-match entry forever and never
    /// got its XDP entry (a 1M-rule bench run plateaued at ~24k entries of 60k flows).
    @Test func aMissTheFullRingDroppedIsAskedAgainByTheFlowsNextFrame() throws {
        let rules = try PipelineHarness.rules(["in_port=1,actions=output:2"])
        let harness = try PipelineHarness(packets: [Self.udp(), Self.udp(), Self.udp()], rules: rules, batch: 1)
        let slots: [OpenFlowPortNumber: PortSlot] = [1: 0, 2: 1]
        let table = try CompiledFlowTable(rules: rules, portSlot: { slots[$0] }, xdpFlowCache: true)
        harness.worker.setFlowTable(0, table)   // the worker does not retain it
        defer { withExtendedLifetime(table) {} }
        harness.worker.flowCacheInstalling = true
        let ring = harness.worker.flowCacheRequests
        for _ in 0..<FlowCacheKeyRing.capacity { _ = ring.reserve()!; ring.commit() }
        _ = harness.run(packets: 1)
        #expect(ring.refusedFull.load(ordering: .relaxed) == 1, "the dropped request is counted")
        #expect(Self.handedOver(harness).count == FlowCacheKeyRing.capacity, "only the filler")
        _ = harness.run(packets: 1)
        #expect(harness.cacheMisses == 2, "forgotten: the next frame missed again")
        #expect(Self.handedOver(harness).map { $0.get(.nwProto) } == [17], "and was handed over")
        _ = harness.run(packets: 1)
        #expect(harness.cacheMisses == 2 && harness.cacheHits == 1, "handed over: the entry stays")
    }

    @Test func aLinkLayerOnlyTableExtractsWholeKeysWithTheCacheOn() throws {
        let p2p = ["in_port=1,actions=output:2"]
        let (harness, table) = try Self.worker(p2p, frames: [Self.ping(), Self.udp()], xdpFlowCache: true)
        #expect(!table.linkLayerOnly)
        let keys = Self.handedOver(harness)
        #expect(keys.map { $0.get(.nwProto) } == [1, 17])
        #expect(keys.allSatisfy { $0.get(.nwSrc) == UInt64(Self.vm1) }, "whole keys, as XDP extracts them")
        let (off, offTable) = try Self.worker(p2p, frames: [Self.ping(), Self.udp()], xdpFlowCache: false)
        #expect(offTable.linkLayerOnly, "the cache off keeps the short extraction")
        #expect(Self.handedOver(off).count == 1)
    }

    @Test func decTTLKeysTheExactMatchCacheOnTheTTL() throws {
        let flows = ["in_port=1,ip,actions=dec_ttl,output:2"]
        let (harness, _) = try Self.worker(flows, frames: [Self.ping(ttl: 64), Self.ping(ttl: 63), Self.ping(ttl: 64)],
                                           xdpFlowCache: true)
        #expect(Self.handedOver(harness).map { $0.get(.nwTTL) } == [64, 63], "each TTL is an XDP entry of its own")
    }

    @Test func aConstantRuleGoesThroughTheCacheToBeHandedOverButNormalStaysABurst() throws {
        let (harness, _) = try Self.worker(["actions=output:2"], frames: [Self.ping(), Self.udp()], xdpFlowCache: true)
        #expect(Self.handedOver(harness).map { $0.get(.nwProto) } == [1, 17])
        let (normal, _) = try Self.worker(["actions=NORMAL"], frames: [Self.ping(), Self.udp()], xdpFlowCache: true)
        #expect(Self.handedOver(normal).isEmpty, "NORMAL is never cached: no key is even extracted")
    }

    @Test func addingAndRemovingRulesKeepTheShapeKey() throws {
        let slots: [OpenFlowPortNumber: PortSlot] = [1: 0, 2: 1]
        let base = try CompiledFlowTable(rules: try PipelineHarness.rules(["priority=1,in_port=1,actions=output:2"]),
                                         portSlot: { slots[$0] }, xdpFlowCache: true)
        var added = try PipelineHarness.rules(["priority=5,in_port=2,ip,actions=dec_ttl,output:1"])
        added[0].sequence = 100
        added[0].counterSlot = 7
        let extended = try CompiledFlowTable(base, adding: added, portSlot: { slots[$0] })
        #expect(extended.xdpFlowCache && !extended.linkLayerOnly)
        #expect(extended.classifier.exactMatchAlso.get(.nwTTL) == 0xff, "a dec_ttl added keys on nw_ttl")
        #expect(extended.classifier.exactMatchAlso.get(.nwProto) == 0xff)
        let shrunk = try #require(CompiledFlowTable(extended, removing: [added[0].match], counterSlots: [7]))
        #expect(shrunk.xdpFlowCache && shrunk.classifier.exactMatchAlso == extended.classifier.exactMatchAlso)
        #expect(CompiledFlowTable(shrunk, removingPortSlot: 1).classifier.exactMatchAlso == extended.classifier.exactMatchAlso)
    }

    /// Installer level with the seed's flows: a ping, then UDP between the same hosts, both get XDP
    /// entries (before: only the ping) and the program forwards both in XDP.
    @Test func underTheSeedsFlowsPingThenUDPBothGetXDPEntries() throws {
        let (harness, table) = try Self.worker(Self.seedFlows, frames: [Self.ping(), Self.udp()], xdpFlowCache: true)
        let rig = try XDPInstallerRig(outputs: [0, 1], inPort: 0, worker: harness.worker)
        let (program, installer) = (rig.program, rig.installer)
        let ports: [UInt32: XDPCachePortInfo] = [1: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 0),
                                                 2: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 1)]
        installer.refresh(bridge: 0, table: table, ports: ports, ofport: [0: 1, 1: 2])
        installer.runOnce(fold: false)
        #expect(installer.entryCount == 2)
        let protocols = installer.snapshot().map { $0.entry.flow.maskedKey.get(.nwProto) }.sorted()
        #expect(protocols == [1, 17])
        for frame in [Self.ping(), Self.udp()] {
            #expect(try XDPTestRun.run(programFD: program.programFD, frame: frame).action == XDPTestRun.redirect)
        }
        #expect(program.statistics().hits == 2)
    }
}
