import CXDP
import Glibc
import Testing
@testable import VSwiftDatapath
import VSwiftClassifier
import VSwiftFlowCache
import VSwiftPacket
import VSwiftTesting

/// LISP encapsulation in the XDP flow cache, filled in from the datapath: a LISP port's template
/// from the tunnel resolver's next hop (RFC 9300 §5.3 outer headers), which ports get one, how an
/// output to it translates, and how the kernel path counts it.
@Suite struct XDPFlowCacheLISPEgressTests {
    static let remote4 = IPAddress("192.0.2.2")!, local4 = IPAddress("192.0.2.1")!
    static let remote6 = IPAddress("2001:db8::2")!, local6 = IPAddress("2001:db8::1")!

    /// A next hop as the resolver publishes it: resolved, leaving by device slot 4.
    static func hop(remote: IPAddress = remote4, source: IPAddress = local4, local: IPAddress = IPAddress(),
                    udpPort: UInt16 = LISP.udpPort, mtu: UInt32 = 1500, neighbour: UInt64 = 0x0200_0000_00aa) -> TunnelNextHop {
        var hop = TunnelNextHop(remote: remote, local: local, udpPort: udpPort, status: .resolved)
        hop.egressPort = 4
        hop.mtu = mtu
        hop.localRLOC = source
        hop.parameters = LISP.EncapsulationParameters(
            ethernetDestination: neighbour, ethernetSource: 0x0200_0000_00bb, source: source, destination: remote,
            udpDestinationPort: udpPort)
        return hop
    }

    static func info(_ options: LISPPortOptions, _ hops: [TunnelNextHop], targets: Set<PortSlot> = [4]) -> XDPCachePortInfo {
        XDPFlowCacheLISPEgress.portInfo(slot: 9, options: options, nextHops: hops, redirectTargets: targets)
    }

    @Test func aFixedRemoteResolvedOnADeviceGetsTheWorkersOuterHeadersAsItsTemplate() throws {
        let fields = LISP.OuterFields(ttl: 17, tos: 0xb8)
        let options = LISPPortOptions(remote: .address(Self.remote4), key: .id(0x12_3456), udpPort: 4342, outerFields: fields)
        let info = Self.info(options, [Self.hop(udpPort: 4342, mtu: 1400)])
        #expect(info.cache.kind == .lisp(.init(fixedRemote: true, keyFromFlow: false, directEgress: true)))
        let lisp = try #require(info.lisp)
        #expect(lisp.template == 9, "the port's slot")
        #expect(lisp.egress == 4)
        #expect(lisp.headers == XDPFlowCache.LISPTemplate(
            ethernetDestination: 0x0200_0000_00aa, ethernetSource: 0x0200_0000_00bb, sourceAddress: Self.local4,
            destinationAddress: Self.remote4, instanceID: 0x12_3456, udpDestinationPort: 4342, fields: fields, egressMTU: 1400))
        // IPv6 RLOCs (RFC 9300 §5.1 over IPv6), local_ip given: the hop keyed by it.
        let six = LISPPortOptions(remote: .address(Self.remote6), local: Self.local6)
        let info6 = Self.info(six, [Self.hop(remote: Self.remote6, source: Self.local6, local: Self.local6)])
        #expect(info6.lisp?.headers.isIPv6 == true)
        #expect(info6.lisp?.headers.sourceAddress == Self.local6)
        #expect(info6.lisp?.headers.destinationAddress == Self.remote6)
    }

    @Test func withoutAnExactTemplateThePortHasNoDirectEgress() {
        let fixed = LISPPortOptions(remote: .address(Self.remote4))
        func direct(_ info: XDPCachePortInfo) -> Bool {
            if case .lisp(let l) = info.cache.kind { return l.directEgress && info.lisp != nil }
            return false
        }
        #expect(direct(Self.info(fixed, [Self.hop()])))
        #expect(!direct(Self.info(LISPPortOptions(remote: .flow), [Self.hop()])), "remote_ip=flow: per packet")
        #expect(!direct(Self.info(LISPPortOptions(remote: .map, key: .id(5)), [Self.hop()])), "remote_ip=map: the map-cache")
        #expect(!direct(Self.info(LISPPortOptions(remote: .address(Self.remote4), key: .flow), [Self.hop()])),
                "key=flow: the instance id is per packet")
        #expect(!direct(Self.info(fixed, [])), "no next hop yet")
        var unresolved = Self.hop()
        unresolved.status = .noNeighbour
        #expect(!direct(Self.info(fixed, [unresolved])), "neighbour not resolved")
        var bridged = Self.hop()
        bridged.egressBridge = BridgeSlot(rawValue: 0)
        #expect(!direct(Self.info(fixed, [bridged])), "through a bridge's internal port")
        #expect(!direct(Self.info(fixed, [Self.hop()], targets: [])), "the egress device has no DEVMAP slot (gone)")
        #expect(!direct(Self.info(fixed, [Self.hop(mtu: 0)])), "MTU unknown")
        #expect(!direct(Self.info(fixed, [Self.hop(udpPort: 4342)])), "another dst_port's next hop")
        #expect(!direct(Self.info(LISPPortOptions(remote: .address(Self.remote4), local: IPAddress("192.0.2.9")!), [Self.hop()])),
                "another local_ip's next hop")
    }

    @Test func anOutputToTheLISPPortEncapsulatesAndRedirectsToTheEgressDevice() throws {
        let lispInfo = Self.info(LISPPortOptions(remote: .address(Self.remote4), key: .id(7)), [Self.hop()])
        let ports: [UInt32: XDPCachePortInfo] = [1: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 3), 2: lispInfo]
        let flow = XDPFlowCacheTranslationTests.flow([.modDlDst(0x0200_0000_0005), .output(2)])
        let t = try #require(XDPFlowCacheTranslation.translate(flow, port: { ports[$0] }))
        #expect(t.actions == [.setEthernetDestination(0x0200_0000_0005), .lispEncapsulate(template: 9), .output(slot: 4)])
        #expect(t.lispTemplate?.slot == 9)
        #expect(t.lispTemplate?.headers.instanceID == 7)
        // The cacheability check agrees: a direct-egress LISP port is a cacheable output.
        #expect(XDPCacheability.verdict(actions: flow.actions, key: flow.maskedKey, port: { ports[$0]?.cache ?? CachePort(kind: .absent) })
                == .cacheable(extraMask: FlowKey()))
        // Non-IP frames stay on the workers (they count non_ip drops).
        var arp = flow
        arp.maskedKey.set(.dlType, UInt64(EtherType.arp))
        #expect(XDPFlowCacheTranslation.translate(arp, port: { ports[$0] }) == nil)
    }

    @Test func theKernelPathCountsBytesAsTheWorkersDo() {
        // An untagged IPv4 frame encapsulated over IPv4: the outer frame is 36 bytes longer.
        let flow = XDPFlowCacheTranslationTests.flow([.output(2)])
        let plain = XDPFlowCacheByteAccounting(flow: flow, actions: [.lispEncapsulate(template: 9), .output(slot: 4)],
                                               lispPort: 9, lispIPv6: false)
        #expect(plain.outputDelta == 0)
        #expect(plain.lisp?.port == 9 && plain.lisp?.egressDelta == 36)
        // One tag in, popped first (−4 on the LISP port), then over IPv6: 56 − 0 − 4.
        var tagged = flow
        tagged.maskedKey.set(.vlanTCI, FlowConstants.vlanPresent | 5)
        let popped = XDPFlowCacheByteAccounting(flow: tagged, actions: [.popVLAN, .lispEncapsulate(template: 9), .output(slot: 4)],
                                                lispPort: 9, lispIPv6: true)
        #expect(popped.outputDelta == -4)
        #expect(popped.lisp?.egressDelta == 52)
        // Two tags in, none popped: encapsulation leaves both behind.
        tagged.maskedKey.set(.vlanOuterTCI, FlowConstants.vlanPresent)
        let kept = XDPFlowCacheByteAccounting(flow: tagged, actions: [.lispEncapsulate(template: 9), .output(slot: 4)],
                                              lispPort: 9, lispIPv6: false)
        #expect(kept.lisp?.egressDelta == 28)
        // A device output: only pushes and pops change the length.
        let pushed = XDPFlowCacheByteAccounting(flow: flow, actions: [.pushVLAN(tpid: 0x8100), .output(slot: 4)], lispPort: nil, lispIPv6: false)
        #expect(pushed.outputDelta == 4 && pushed.lisp == nil)
    }
}

/// The installer with a LISP port against the real redirect program (BPF_PROG_RUN): a miss
/// becomes an encapsulating entry whose bytes are the workers'; a new next hop (neighbour MAC,
/// MTU) or the egress device going away removes it before `refresh` returns; a capture on the
/// egress device keeps the port out of entries.
@Suite(.serialized) struct XDPFlowCacheLISPRevalidationTests {
    final class Rig: XDPInstallerRig {
        let table: CompiledFlowTable
        static let options = LISPPortOptions(remote: .address(XDPFlowCacheLISPEgressTests.remote4), key: .id(0x77))

        /// OpenFlow port 1 on slot 1 (the program's input), the LISP port 2 on slot 9, its
        /// egress device on slot 4 (lo).
        init() throws {
            let slots: [OpenFlowPortNumber: PortSlot] = [1: 1, 2: 9]
            table = try CompiledFlowTable(rules: try PipelineHarness.rules(["priority=10,in_port=1,ip,actions=output:2"]),
                                          portSlot: { slots[$0] })
            try super.init(outputs: [4], inPort: 1)
        }

        func publish(_ hops: [TunnelNextHop], targets: Set<PortSlot> = [4]) {
            let ports: [UInt32: XDPCachePortInfo] = [
                1: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 1),
                2: XDPFlowCacheLISPEgress.portInfo(slot: 9, options: Self.options, nextHops: hops, redirectTargets: targets),
            ]
            installer.refresh(bridge: 0, table: table, ports: ports, ofport: [1: 1, 9: 2])
        }

        func miss(_ frame: [UInt8]) { miss(frame, version: table.classifier.version) }

        /// What the worker would send for `frame` through `hop` (LISP.encapsulate, IP id 0x4242).
        static func workers(_ frame: [UInt8], _ hop: TunnelNextHop) -> [UInt8] {
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 64)
            defer { buffer.deallocate() }
            frame.withUnsafeBytes { (buffer + 256).copyMemory(from: $0.baseAddress!, byteCount: frame.count) }
            var p = buffer + 256
            var length = frame.count
            _ = LISP.encapsulate(&p, length: &length, headroom: 256, instanceID: 0x77, parameters: hop.parameters,
                                 fields: options.outerFields, ipIdentification: 0x4242)
            return Array(UnsafeRawBufferPointer(start: p, count: length))
        }

        /// The outer IPv4 identification is the program's per-CPU counter: the workers' (0x4242).
        override func run(_ frame: [UInt8]) throws -> XDPTestRun.Result {
            try program.setNextIPIdentification(0x4242)
            return try super.run(frame)
        }
    }

    @Test func aNextHopChangeRewritesTheTemplateBeforeRefreshReturns() throws {
        let rig = try Rig()
        let frame = Build.ipv4UDP()
        let first = XDPFlowCacheLISPEgressTests.hop()
        rig.publish([first])
        rig.miss(frame)
        #expect(rig.installer.entryCount == 1)
        var result = try rig.run(frame)
        #expect(result.action == XDPTestRun.redirect)
        #expect(result.frame == Rig.workers(frame, first), "RFC 9300 §5.3 headers as the workers write them")
        rig.installer.runOnce(fold: true)
        #expect(rig.installer.counters.encapsulated[9] == 1)
        #expect(rig.installer.counters.ports[9].txPackets == 1 && rig.installer.counters.ports[9].txBytes == UInt64(frame.count))
        #expect(rig.installer.counters.ports[4].txBytes == UInt64(frame.count + 36))

        // The neighbour's MAC changed (the resolver published a new next hop): when refresh
        // returns, the old entry is out and the flow's entry is back with the new template (the
        // workers' exact-match cache would keep the flow from missing again).
        let removedBefore = rig.installer.statistics.removed
        let moved = XDPFlowCacheLISPEgressTests.hop(neighbour: 0x0200_0000_00cc)
        rig.publish([moved])
        #expect(rig.installer.statistics.removed == removedBefore + 1)
        #expect(rig.installer.entryCount == 1)
        result = try rig.run(frame)
        #expect(result.frame == Rig.workers(frame, moved), "the new neighbour MAC at once")

        // The same next hop again: nothing changes, the entry stays.
        rig.publish([moved])
        #expect(rig.installer.entryCount == 1)

        // A smaller MTU: a new template (the punt threshold is the workers').
        rig.publish([XDPFlowCacheLISPEgressTests.hop(mtu: 60, neighbour: 0x0200_0000_00cc)])
        #expect(rig.installer.entryCount == 1)
        let before = rig.program.statistics().punted
        #expect(try rig.run(frame).frame == frame, "too big once encapsulated: left to the workers untouched")
        #expect(rig.program.statistics().punted == before + 1)

        // The egress device goes (no DEVMAP slot): the entry goes and is not reinstalled; the
        // flow's key waits, and comes back when a direct next hop is published again.
        rig.publish([moved])
        #expect(rig.installer.entryCount == 1)
        rig.publish([moved], targets: [])
        #expect(rig.installer.entryCount == 0)
        #expect(try rig.run(frame).action != XDPTestRun.redirect, "no entry to a device that is gone")
        rig.miss(frame)
        #expect(rig.installer.entryCount == 0, "no direct egress: not cacheable")
        #expect(rig.installer.statistics.notCacheable >= 1)
        rig.publish([first])
        #expect(rig.installer.entryCount == 1, "the waiting key installed once the egress is back")
        #expect(try rig.run(frame).frame == Rig.workers(frame, first))
    }

    @Test func aCaptureOnTheEgressDeviceKeepsTheLISPPortOutOfEntries() throws {
        let rig = try Rig()
        let frame = Build.ipv4UDP()
        rig.publish([XDPFlowCacheLISPEgressTests.hop()])
        rig.miss(frame)
        #expect(rig.installer.entryCount == 1)
        rig.installer.setCapturing(4, true)
        #expect(rig.installer.entryCount == 0)
        rig.miss(frame)
        #expect(rig.installer.entryCount == 0, "the capture on the underlay must see the encapsulated frames")
        // A new next hop while capturing: still out.
        rig.publish([XDPFlowCacheLISPEgressTests.hop(neighbour: 0x0200_0000_00dd)])
        #expect(rig.installer.entryCount == 0)
        rig.miss(frame)
        #expect(rig.installer.entryCount == 0)
        rig.installer.setCapturing(4, false)
        rig.miss(frame)
        #expect(rig.installer.entryCount == 1)
    }
}

/// The equivalence property (issue 17) with a LISP port: random frames through random flow tables
/// whose outputs go to a LISP port with a fixed IPv4 or IPv6 RLOC (random ttl/tos options, the
/// egress MTU 1500), each frame both ways — a real worker encapsulating (PipelineHarness,
/// `.encapsulate`: port 1 in on slot 0, LISP port 2 on slot 2, the underlay on slot 1) and the
/// installer's entry run by the real redirect program (BPF_PROG_RUN), its template filled by
/// `XDPFlowCacheLISPEgress` from the same next hop. Wherever the program hits, the outer frame is
/// byte for byte the worker's (RFC 9300 §5.3; the outer IPv4 identification is per CPU in XDP, so
/// the test gives the program the one the worker used) on the same device; rule counters, the
/// LISP port's `encapsulated` and tx packets and the underlay's tx packets with the cache on
/// (kernel path folded + the worker for what XDP left) equal those with it off.
@Suite(.serialized) struct XDPFlowCacheLISPEquivalenceTests {
    static let matches = ["", "ip", "ipv6", "tcp", "udp", "arp", "in_port=1", "in_port=1,ip", "ip,nw_src=0.0.0.0/1",
                          "tcp,tp_dst=0x0/0x1", "vlan_tci=0x0000/0x1000", "vlan_tci=0x1000/0x1000", "ip,nw_ttl=64"]
    static let actions = ["output:2", "output:2", "drop", "output:1", "NORMAL", "mod_dl_src:02:00:00:00:00:99,output:2",
                          "mod_nw_dst:10.9.9.9,output:2", "mod_tp_src:1234,output:2", "strip_vlan,output:2",
                          "push_vlan:0x8100,output:2", "dec_ttl,output:2", "mod_nw_tos:32,output:2", "mod_nw_ecn:1,output:2",
                          "set_tunnel:5,output:2", "mod_vlan_vid:7,output:2"]

    static func randomTable(_ rng: inout SplitMix64) -> [String] {
        (0..<Int(1 + rng.next() % 6)).map { _ in
            let match = matches[Int(rng.next() % UInt64(matches.count))]
            let action = actions[Int(rng.next() % UInt64(actions.count))]
            return "priority=\(rng.next() % 4)" + (match.isEmpty ? "" : "," + match) + ",actions=" + action
        }
    }

    @Test(arguments: [PipelineHarness.Underlay.ipv4, .ipv6(checksumOffload: false), .ipv6(checksumOffload: true)])
    func cacheOnAndOffEncapsulateTheSameBytesAndCountTheSame(underlay: PipelineHarness.Underlay) throws {
        var rng = SplitMix64(seed: TestSeed.resolve(0x17a9))
        let replay = TestSeed.replay(rng.seed)
        let rig = try XDPInstallerRig(capacity: 4096, outputs: [0, 1], inPort: 0)
        let (program, installer) = (rig.program, rig.installer)
        var (local, remote, offload) = (PipelineHarness.localRLOC, PipelineHarness.remoteRLOC, false)
        if case .ipv6(let o) = underlay { (local, remote, offload) = (PipelineHarness.localRLOC6, PipelineHarness.remoteRLOC6, o) }
        // The next hop the harness gives its worker, as the resolver would publish it.
        var hop = TunnelNextHop(remote: remote, local: IPAddress(), udpPort: LISP.udpPort, status: .resolved)
        hop.egressPort = 1
        hop.mtu = 1500
        hop.localRLOC = local
        hop.parameters = LISP.EncapsulationParameters(
            ethernetDestination: PipelineHarness.nextHopMAC, ethernetSource: PipelineHarness.deviceMAC,
            source: local, destination: remote, offloadUDPChecksum: offload)
        let slotOf: [OpenFlowPortNumber: PortSlot] = [1: 0, 2: 2]
        var hits = 0, encapsulated = 0
        for burst in 0..<16 {
            let fields = LISP.OuterFields(ttl: rng.next() % 2 == 0 ? nil : UInt8(1 + rng.next() % 255),
                                          tos: rng.next() % 2 == 0 ? nil : UInt8(truncatingIfNeeded: rng.next()) & 0xfc)
            let options = LISPPortOptions(remote: .address(remote), outerFields: fields)
            let ports: [UInt32: XDPCachePortInfo] = [
                1: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 0),
                2: XDPFlowCacheLISPEgress.portInfo(slot: 2, options: options, nextHops: [hop], redirectTargets: [0, 1]),
            ]
            let texts = Self.randomTable(&rng)
            let rules = try PipelineHarness.rules(texts)
            let table = try CompiledFlowTable(rules: rules, portSlot: { slotOf[$0] })
            installer.refresh(bridge: 0, table: table, ports: ports, ofport: [0: 1, 2: 2])
            var frames = (0..<40).map { _ in RandomFrames.next(&rng, minimumLength: 14) }
            // Some frames too big for the egress MTU once encapsulated (the workers fragment or answer).
            frames.append(Build.ipv4UDP(Array(repeating: 7, count: 1480)))
            let off = try PipelineHarness(packets: frames, rules: rules, batch: 1, tunnel: .encapsulate, underlay: underlay,
                                          underlayMTU: 1500, outerFields: fields)
            off.recordSentFrames = true
            var leftToWorkers: [[UInt8]] = []
            for (i, frame) in frames.enumerated() {
                let sentBefore = off.sentFrames.count
                _ = off.run(packets: 1)
                let sent = Array(off.sentFrames[sentBefore...])
                rig.miss(frame, version: table.classifier.version)
                // The worker's outer IPv4 identification, for the program's next one.
                if sent.count == 1, sent[0].bytes.count >= 20, sent[0].bytes[12] == 0x08, sent[0].bytes[13] == 0x00 {
                    try program.setNextIPIdentification(UInt16(sent[0].bytes[18]) << 8 | UInt16(sent[0].bytes[19]))
                }
                let before = program.statistics().hits
                let result = try XDPTestRun.run(programFD: program.programFD, frame: frame)
                guard program.statistics().hits > before else {
                    leftToWorkers.append(frame)
                    continue
                }
                hits += 1
                let context = "\(underlay) burst \(burst) frame \(i) table \(texts) \(replay)"
                if result.action == XDPTestRun.drop {
                    #expect(sent.isEmpty, "XDP dropped what the worker sent: \(context)")
                    continue
                }
                #expect(result.action == XDPTestRun.redirect, "\(context)")
                #expect(sent.count == 1, "XDP redirected what the worker sent \(sent.count) times: \(context)")
                guard sent.count == 1 else { continue }
                #expect(result.frame == sent[0].bytes, "bytes differ: \(context)")
                var key = FlowKey()
                frame.withUnsafeBytes { FlowExtractor.extract($0.baseAddress!, length: $0.count, inPort: 1, into: &key) }
                let entry = installer.snapshot().first { s in
                    (0..<FlowKey.wordCount).allSatisfy { key[word: $0] & s.entry.flow.mask[word: $0] == s.entry.flow.maskedKey[word: $0] }
                }
                let actions = entry?.xdpActions ?? []
                #expect(actions.last == .output(slot: sent[0].device == .input ? 0 : 1), "wrong port: \(context)")
                if actions.contains(.lispEncapsulate(template: 2)) { encapsulated += 1 }
            }
            let kernelRules = rules.map { installer.counters.rules[$0.counterSlot] }
            let kernelEncapsulated = installer.counters.encapsulated[2]
            let kernelTx = (lisp: installer.counters.ports[2].txPackets, underlay: installer.counters.ports[1].txPackets)
            installer.runOnce(fold: true)
            let on: PipelineHarness? = leftToWorkers.isEmpty ? nil : try PipelineHarness(
                packets: leftToWorkers, rules: rules, batch: 1, tunnel: .encapsulate, underlay: underlay, underlayMTU: 1500,
                outerFields: fields)
            for _ in leftToWorkers { _ = on?.run(packets: 1) }
            for (r, rule) in rules.enumerated() {
                let kernel = installer.counters.rules[rule.counterSlot]
                let worker = on?.ruleStatistics(counterSlot: rule.counterSlot) ?? RuleStatistics()
                let expected = off.ruleStatistics(counterSlot: rule.counterSlot)
                #expect(kernel.packets - kernelRules[r].packets + worker.packets == expected.packets, "rule \(texts[r]): \(underlay) burst \(burst) \(replay)")
                #expect(kernel.bytes - kernelRules[r].bytes + worker.bytes == expected.bytes, "rule \(texts[r]) bytes: \(underlay) burst \(burst) \(replay)")
            }
            let context = "\(underlay) burst \(burst) table \(texts) \(replay)"
            #expect(installer.counters.encapsulated[2] - kernelEncapsulated + (on?.tunnelStatistics.encapsulated ?? 0)
                    == off.tunnelStatistics.encapsulated, "encapsulated: \(context)")
            #expect(installer.counters.ports[2].txPackets - kernelTx.lisp + (on?.packetCounts(port: 2).tx ?? 0)
                    == off.packetCounts(port: 2).tx, "LISP port tx: \(context)")
            #expect(installer.counters.ports[1].txPackets - kernelTx.underlay + (on?.packetCounts(port: 1).tx ?? 0)
                    == off.packetCounts(port: 1).tx, "underlay tx: \(context)")
        }
        #expect(hits > 100, "too few frames hit an entry (\(hits))")
        #expect(encapsulated > 40, "too few frames encapsulated in XDP (\(encapsulated))")
    }
}
