import CXDP
import Glibc
import Testing
@testable import VSwiftDatapath
import VSwiftClassifier
import VSwiftFlowCache
import VSwiftPacket
import VSwiftTesting

/// A cached flow's translation for the XDP program: what the workers would do, or nothing.
@Suite struct XDPFlowCacheTranslationTests {
    static let ports: [UInt32: XDPCachePortInfo] = [
        1: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 3),
        2: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 5),
        OpenFlowPort.local: XDPCachePortInfo(cache: CachePort(kind: .internal), slot: 0),
        9: XDPCachePortInfo(cache: CachePort(kind: .lisp(.init(fixedRemote: true, keyFromFlow: false, directEgress: false))), slot: 7),
    ]

    static func flow(_ actions: [FlowAction], inPort: UInt32 = 1) -> CachedFlow {
        var mask = FlowKey()
        mask.set(.inPort, FlowField.inPort.layout.valueMask)
        mask.set(.dlType, 0xffff)
        var key = FlowKey()
        key.set(.inPort, UInt64(inPort))
        key.set(.dlType, UInt64(EtherType.ipv4))
        return CachedFlow(mask: mask, maskedKey: key, rule: RuleIndex(0), ruleID: 1, actions: actions, version: 1)
    }

    static func translate(_ actions: [FlowAction], inPort: UInt32 = 1) -> XDPFlowCacheTranslation? {
        XDPFlowCacheTranslation.translate(flow(actions, inPort: inPort), port: { ports[$0] })
    }

    @Test func anOutputToADeviceRedirectsThroughItsSlotAndTheKeyCarriesTheInputPortsXDPID() throws {
        let t = try #require(Self.translate([.output(2)]))
        #expect(t.actions == [.output(slot: 5)])
        #expect(t.maskedKey.get(.inPort) == UInt64(XDPFlowCacheTranslation.inPortID(3)))
        #expect(t.mask.get(.inPort) == FlowField.inPort.layout.valueMask)
        #expect(t.maskedKey.get(.dlType) == UInt64(EtherType.ipv4))
        #expect(t.lispTemplate == nil)
    }

    @Test func outputToTheInputPortByNumberSendsNothingAndInPortReflects() {
        #expect(Self.translate([.output(1)])?.actions == [.drop])
        #expect(Self.translate([.inPort])?.actions == [.output(slot: 3)])
        #expect(Self.translate([])?.actions == [.drop])
        // An output to a port that does not exist is compiled away, as the workers' table does.
        #expect(Self.translate([.output(77), .output(2)])?.actions == [.output(slot: 5)])
    }

    @Test func rewritesMapOneForOneAndNothingAfterTheOutputRuns() {
        let t = Self.translate([.modDlSrc(0x0200_0000_0001), .setSharedField(.ipDscp, 10), .setField(.nwTTL, 9), .decTTL,
                                .stripVlan, .pushVlan(0x8100), .modTpDst(80), .output(2), .modDlDst(1)])
        #expect(t?.actions == [.setEthernetSource(0x0200_0000_0001), .setNetworkTOS(40), .setTTL(9), .decrementTTL,
                               .popVLAN, .pushVLAN(tpid: 0x8100), .setTransportDestination(80), .output(slot: 5)])
    }

    @Test func whatXDPCannotDoExactlyIsNotTranslated() {
        #expect(Self.translate([.normal]) == nil)
        #expect(Self.translate([.flood]) == nil)
        #expect(Self.translate([.local]) == nil, "the internal port is a tap")
        #expect(Self.translate([.modVlanVid(3), .output(2)]) == nil, "mod_vlan_vid is not an XDP action")
        #expect(Self.translate([.setIPv6Src(1, 2), .output(2)]) == nil)
        #expect(Self.translate([.setSharedField(.arpOp, 2), .output(2)]) == nil)
        #expect(Self.translate([.output(9)]) == nil, "a LISP port without a resolved template")
        #expect(Self.translate(Array(repeating: .modTpSrc(1), count: 8) + [.output(2)]) == nil, "9 actions: more than an entry holds")
        #expect(Self.translate([.output(2)], inPort: OpenFlowPort.local) == nil, "frames from a tap never meet XDP")
        #expect(Self.translate([.output(2)], inPort: 42) == nil, "no such input port")
    }
}

/// The installer against the real redirect program (BPF_PROG_RUN, no live frames): a miss handed
/// over through a worker ring becomes an entry the program hits; counters fold into the rule and
/// ports; a table change removes the stale entry before `refresh` returns; stale requests are
/// refused; a capture takes the port's entries out.
@Suite(.serialized) struct XDPFlowCacheInstallerTests {
    final class Rig: XDPInstallerRig {
        static let ports: [UInt32: XDPCachePortInfo] = [
            1: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 1),
            2: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 2),
        ]
        static let ofport: [PortSlot: UInt32] = [1: 1, 2: 2]

        /// OpenFlow port 1 on slot 1 (the program's input), 2 on slot 2 (lo).
        init() throws { try super.init(outputs: [2], inPort: 1) }

        func table(_ flows: [String]) throws -> CompiledFlowTable {
            let slots: [OpenFlowPortNumber: PortSlot] = [1: 1, 2: 2]
            return try CompiledFlowTable(rules: try PipelineHarness.rules(flows), portSlot: { slots[$0] })
        }

        func publish(_ table: CompiledFlowTable?) {
            installer.refresh(bridge: 0, table: table, ports: Self.ports, ofport: Self.ofport)
        }

        /// The table of `flows` published, then a worker's miss on `frame` classified with it.
        @discardableResult
        func publish(_ flows: [String], miss frame: [UInt8]) throws -> CompiledFlowTable {
            let table = try table(flows)
            publish(table)
            miss(frame, version: table.classifier.version)
            return table
        }
    }

    @Test func aMissBecomesAnEntryItsCountersFoldAndAModRemovesItBeforeReturning() throws {
        let rig = try Rig()
        let frame = Build.ipv4UDP()
        let forward = try rig.publish(["priority=10,in_port=1,ip,actions=output:2"], miss: frame)
        #expect(rig.installer.entryCount == 1)
        #expect(try rig.run(frame).action == XDPTestRun.redirect)
        #expect(try rig.run(frame).action == XDPTestRun.redirect)
        #expect(rig.program.statistics().hits == 2)
        rig.installer.runOnce(fold: true)
        let slot = try #require(forward.counterSlot(RuleIndex(0)))
        #expect(rig.installer.counters.rules[slot].packets == 2)
        #expect(rig.installer.counters.rules[slot].bytes == UInt64(2 * frame.count))
        #expect(rig.installer.counters.ports[1].rxPackets == 2)
        #expect(rig.installer.counters.ports[2].txPackets == 2)

        // mod-flows: the same rule now drops. Once refresh returns the old entry is gone.
        let drop = try rig.table(["priority=10,in_port=1,ip,actions=drop"])
        rig.publish(drop)
        #expect(rig.installer.entryCount == 0)
        #expect(try rig.run(frame).action != XDPTestRun.redirect)
        #expect(rig.program.statistics().hits == 2)
        // A miss classified with the old table is refused; with the new one, a drop entry.
        rig.miss(frame, version: forward.classifier.version)
        #expect(rig.installer.entryCount == 0)
        #expect(rig.installer.statistics.stale == 1)
        rig.miss(frame, version: drop.classifier.version)
        #expect(rig.installer.entryCount == 1)
        #expect(try rig.run(frame).action == XDPTestRun.drop)
        #expect(rig.program.statistics().hits == 3)

        // del-flows (no table): nothing left.
        rig.publish(nil)
        #expect(rig.installer.entryCount == 0)
        #expect(rig.installer.statistics.removed == 2)
    }

    @Test func anUnchangedEntrySurvivesAnUnrelatedChangeAndACaptureTakesItOut() throws {
        let rig = try Rig()
        let frame = Build.ipv4UDP()
        try rig.publish(["priority=10,in_port=1,ip,actions=output:2"], miss: frame)
        #expect(rig.installer.entryCount == 1)
        // A rule the frame's megaflow never examined: revalidation keeps the entry.
        let two = try rig.table(["priority=10,in_port=1,ip,actions=output:2", "priority=5,in_port=2,arp,actions=drop"])
        rig.publish(two)
        #expect(rig.installer.entryCount == 1)
        #expect(try rig.run(frame).action == XDPTestRun.redirect)
        rig.installer.setCapturing(1, true)
        #expect(rig.installer.entryCount == 0)
        rig.miss(frame, version: two.classifier.version)
        #expect(rig.installer.entryCount == 0, "a capturing port is in no entry")
        rig.installer.setCapturing(1, false)
        rig.miss(frame, version: two.classifier.version)
        #expect(rig.installer.entryCount == 1)
    }

    @Test func normalAndNonDeviceOutputsAreNeverInstalled() throws {
        let rig = try Rig()
        let frame = Build.ipv4UDP()
        try rig.publish(["priority=10,in_port=1,ip,actions=NORMAL"], miss: frame)
        #expect(rig.installer.entryCount == 0)
        #expect(rig.installer.statistics.notCacheable == 1)
    }
}

/// The equivalence property (issue 17), at the level reachable without live traffic: random
/// frames through random flow tables, each frame both ways — (off) a real worker (PipelineHarness:
/// port 1 in, port 2 out, in-memory rings) and (on) the installer's entry for the frame's key run
/// by the real redirect program (BPF_PROG_RUN) — with the table changed at random between bursts
/// (entries kept by revalidation must still be right). Wherever the program hits an entry, it must
/// do what the worker did: drop where the worker sent nothing, else redirect to the port the
/// worker sent on with byte-identical bytes; and the rule counters with the cache on (kernel path
/// folded + the worker's for the frames XDP left to it) equal those with it off.
/// Covers: megaflow computation, translation, install, revalidation, counter folding, and the
/// program's actions. Not covered here: the worker's hand-over ring under load (see
/// XDPFlowCacheIntegrationTests), LISP encapsulation (XDPFlowCacheLISPEquivalenceTests).
@Suite(.serialized) struct XDPFlowCacheEquivalenceTests {
    static let matches = ["", "ip", "ipv6", "tcp", "udp", "arp", "in_port=1", "in_port=1,ip", "ip,nw_src=0.0.0.0/1",
                          "ip,nw_dst=128.0.0.0/1", "tcp,tp_dst=0x0/0x1", "udp,tp_src=0x1/0x1",
                          "dl_src=00:00:00:00:00:00/01:00:00:00:00:00", "vlan_tci=0x0000/0x1000",
                          "vlan_tci=0x1000/0x1000", "ip,nw_ttl=64"]
    static let actions = ["output:2", "drop", "output:1", "NORMAL", "mod_dl_src:02:00:00:00:00:99,output:2",
                          "mod_nw_dst:10.9.9.9,output:2", "mod_tp_src:1234,output:2", "strip_vlan,output:2",
                          "push_vlan:0x8100,output:2", "dec_ttl,output:2", "mod_nw_tos:32,output:2",
                          "mod_dl_dst:02:00:00:00:00:01,mod_nw_src:192.168.1.1,mod_tp_dst:53,output:2",
                          "mod_nw_ecn:1,output:2", "mod_vlan_vid:7,output:2"]

    static func randomTable(_ rng: inout SplitMix64) -> [String] {
        (0..<Int(1 + rng.next() % 8)).map { _ in
            let match = matches[Int(rng.next() % UInt64(matches.count))]
            let action = actions[Int(rng.next() % UInt64(actions.count))]
            return "priority=\(rng.next() % 4)" + (match.isEmpty ? "" : "," + match) + ",actions=" + action
        }
    }

    @Test func cacheOnAndOffForwardTheSameBytesAndCountTheSame() throws {
        var rng = SplitMix64(seed: TestSeed.resolve(0x17c1))
        let replay = TestSeed.replay(rng.seed)
        // Harness ports: OpenFlow 1 → slot 0 (input), 2 → slot 1 (output).
        let rig = try XDPInstallerRig(capacity: 4096, outputs: [0, 1], inPort: 0)
        let (program, installer) = (rig.program, rig.installer)
        let ports: [UInt32: XDPCachePortInfo] = [1: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 0),
                                                 2: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 1)]
        let slotOf: [OpenFlowPortNumber: PortSlot] = [1: 0, 2: 1]
        var hits = 0, compared = 0
        for burst in 0..<25 {
            let texts = Self.randomTable(&rng)
            let rules = try PipelineHarness.rules(texts)
            let table = try CompiledFlowTable(rules: rules, portSlot: { slotOf[$0] })
            installer.refresh(bridge: 0, table: table, ports: ports, ofport: [0: 1, 1: 2])
            let frames = (0..<40).map { _ in RandomFrames.next(&rng, minimumLength: 14) }
            // Off: every frame through a worker.
            let off = try PipelineHarness(packets: frames, rules: rules, batch: 1)
            off.recordSentFrames = true
            var leftToWorkers: [[UInt8]] = []
            for (i, frame) in frames.enumerated() {
                let sentBefore = off.sentFrames.count
                _ = off.run(packets: 1)
                let sent = Array(off.sentFrames[sentBefore...])
                // On: the worker's miss hands the key over; the installer installs; XDP runs the frame.
                rig.miss(frame, version: table.classifier.version)
                let before = program.statistics().hits
                let result = try XDPTestRun.run(programFD: program.programFD, frame: frame)
                guard program.statistics().hits > before else {
                    leftToWorkers.append(frame)
                    continue
                }
                hits += 1
                let context = "burst \(burst) frame \(i) table \(texts) \(replay)"
                if result.action == XDPTestRun.drop {
                    #expect(sent.isEmpty, "XDP dropped what the worker sent: \(context)")
                } else {
                    compared += 1
                    #expect(result.action == XDPTestRun.redirect, "\(context)")
                    #expect(sent.count == 1, "XDP redirected what the worker sent \(sent.count) times: \(context)")
                    guard sent.count == 1 else { continue }
                    #expect(result.frame == sent[0].bytes, "bytes differ: \(context)")
                    // Which port: the entry the frame hit.
                    var key = FlowKey()
                    frame.withUnsafeBytes { FlowExtractor.extract($0.baseAddress!, length: $0.count, inPort: 1, into: &key) }
                    let entry = installer.snapshot().first { s in
                        (0..<FlowKey.wordCount).allSatisfy { key[word: $0] & s.entry.flow.mask[word: $0] == s.entry.flow.maskedKey[word: $0] }
                    }
                    let out = entry?.xdpActions?.last
                    #expect(out == .output(slot: sent[0].device == .input ? 0 : 1), "wrong port: \(context)")
                }
            }
            // Counters: kernel path (folded) + the worker for what XDP left, against all on the worker.
            let kernelBefore = rules.map { installer.counters.rules[$0.counterSlot] }
            installer.runOnce(fold: true)
            let on: PipelineHarness? = leftToWorkers.isEmpty ? nil : try PipelineHarness(packets: leftToWorkers, rules: rules, batch: 1)
            for _ in leftToWorkers { _ = on?.run(packets: 1) }
            for (r, rule) in rules.enumerated() {
                let kernel = installer.counters.rules[rule.counterSlot]
                let worker = on?.ruleStatistics(counterSlot: rule.counterSlot) ?? RuleStatistics()
                let expected = off.ruleStatistics(counterSlot: rule.counterSlot)
                #expect(kernel.packets - kernelBefore[r].packets + worker.packets == expected.packets,
                        "rule \(texts[r]) packets: burst \(burst) \(replay)")
                #expect(kernel.bytes - kernelBefore[r].bytes + worker.bytes == expected.bytes,
                        "rule \(texts[r]) bytes: burst \(burst) \(replay)")
            }
        }
        #expect(hits > 100, "too few frames hit an entry (\(hits)) for the property to say much")
        #expect(compared > 30, "too few redirected frames compared (\(compared))")
    }
}
