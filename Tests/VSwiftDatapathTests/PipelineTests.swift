import Testing
import VSwiftClassifier
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftDatapath

/// The rules of flow texts (see `PipelineHarness.rules`).
func rules(_ texts: [String]) throws -> [DatapathRule] { try PipelineHarness.rules(texts) }

@Suite("Worker pipeline on in-memory rings")
struct PipelineTests {
    @Test func seedFlowsSendIPv4FromPort1ToPort2AndCountIt() throws {
        let seed = try rules([
            "priority=0,action=NORMAL",
            "priority=2,in_port=1,dl_type=0x0806,action=NORMAL",
            "priority=3,dl_dst=02:00:00:00:00:00,action=mod_dl_dst:52:54:00:B8:27:75,output:1",
            "priority=1,in_port=1,dl_type=0x0800,vlan_tci=0,nw_src=10.1.1.0/24,action=output:2",
        ])
        let harness = try PipelineHarness(packets: [udpFrame()], rules: seed)
        harness.recordSentFrames = true
        let result = harness.run(packets: 10_000)
        #expect(result.packets == 10_000)
        #expect(harness.transmitted == 10_000)
        // Every frame left by port 2, unchanged.
        #expect(harness.sentFramesDifference(from: Array(repeating: .init(.output, udpFrame()), count: 10_000)) == nil)
        #expect(harness.ruleStatistics(counterSlot: 3).packets == 10_000)
        #expect(harness.ruleStatistics(counterSlot: 3).bytes == UInt64(10_000 * udpFrame().count))
        #expect(harness.ruleStatistics(counterSlot: 0).packets == 0)
        // Bursts are classified whole: the first burst of the flow misses before it is inserted.
        #expect(harness.cacheHits >= 10_000 - 64)
        let census = harness.accounting()
        #expect(census.isConsistent, "\(census)")
    }

    @Test func normalWithoutAFlowTable() throws {
        let harness = try PipelineHarness(packets: [udpFrame()], rules: nil)
        _ = harness.run(packets: 5_000)
        #expect(harness.transmitted == 5_000)
        #expect(harness.accounting().isConsistent)
    }

    @Test func normalDecidesEachFrameOfABurstAlthoughRunsOfEqualFramesShareOneDecision() throws {
        // One burst from port 1 (B is known on port 2): A→B goes out; A→A is not reflected (A was
        // just learned on port 1); A→B goes out; C→B goes out and teaches C on port 1; X→C is then
        // not reflected either. A decision reused for a frame with another destination (A→A after
        // A→B) or another source (C→B after A→B: C never learned, X→C flooded) sends one more.
        let a: [UInt8] = [0x02, 0, 0, 0, 0, 0x0a], c: [UInt8] = [0x02, 0, 0, 0, 0, 0x0c], x: [UInt8] = [0x02, 0, 0, 0, 0, 0x0d]
        let b: [UInt8] = [0x02, 0, 0, 0, 0, 0x0b]
        func frame(from source: [UInt8], to destination: [UInt8]) -> [UInt8] {
            var f = udpFrame(destinationMAC: destination)
            f.replaceSubrange(6..<12, with: source)
            return f
        }
        let frames = [frame(from: a, to: b), frame(from: a, to: a), frame(from: a, to: b), frame(from: c, to: b), frame(from: x, to: c)]
        let harness = try PipelineHarness(packets: frames, rules: nil)
        harness.recordSentFrames = true
        _ = harness.run(packets: 5_000)
        #expect(harness.transmitted == 3_000)
        // Frame by frame: A→B, A→B and C→B out of port 2, in order; nothing back out of port 1.
        let once: [PipelineHarness.SentFrame] = [.init(.output, frames[0]), .init(.output, frames[2]), .init(.output, frames[3])]
        #expect(harness.sentFramesDifference(from: Array(Array(repeating: once, count: 1_000).joined())) == nil)
        #expect(harness.accounting().isConsistent)
    }

    @Test func aRunOfEqualFramesLongerThanAPortsStagingGoesOutWhole() throws {
        // 300-frame bursts of one flow: the port's 256 staging slots fill mid-burst, are flushed,
        // and the rest of the run is staged after them; nothing lost, nothing sent twice.
        let harness = try PipelineHarness(packets: [udpFrame()], rules: nil, batch: 300)
        _ = harness.run(packets: 3_000)
        #expect(harness.transmitted == 3_000)
        #expect(harness.accounting().isConsistent)
        let table = try PipelineHarness(packets: [udpFrame()], rules: try rules(["priority=0,actions=NORMAL"]), batch: 300)
        _ = table.run(packets: 3_000)
        #expect(table.transmitted == 3_000)
        #expect(table.ruleStatistics(counterSlot: 0).packets == 3_000)
        #expect(table.accounting().isConsistent)
    }

    @Test func theWorkerAccountsItsRoundsInCycles() throws {
        let harness = try PipelineHarness(packets: [udpFrame()], rules: nil)
        #expect(harness.cycles == WorkerCycles())
        _ = harness.run(packets: 6_400)
        let cycles = harness.cycles
        // 64-frame bursts: at least 100 rounds received something; each took some cycles, and
        // transmitting asked the (in-memory) kernel through sendto.
        #expect(cycles.rounds >= 100)
        #expect(cycles.busy > 0)
        #expect(cycles.systemCalls > 0)
        #expect((cycles + cycles) - cycles == cycles)
    }

    @Test func aTableWhoseRulesLookAtNoFieldDecidesEachBurstWithOneLookup() throws {
        // A new bridge's table: every frame goes to NORMAL without a key or the cache.
        let fresh = try PipelineHarness(packets: [udpFrame()], rules: try rules(["priority=0,actions=NORMAL"]))
        _ = fresh.run(packets: 1_000)
        #expect(fresh.transmitted == 1_000)
        #expect(fresh.ruleStatistics(counterSlot: 0).packets == 1_000)
        #expect(fresh.cacheHits + fresh.cacheMisses == 0)
        // Of several catch-alls the highest priority wins; a table miss still drops.
        let two = try PipelineHarness(packets: [udpFrame()], rules: try rules(["priority=0,actions=drop", "priority=5,actions=output:2"]))
        _ = two.run(packets: 1_000)
        #expect(two.transmitted == 1_000)
        #expect(two.ruleStatistics(counterSlot: 1).packets == 1_000)
        #expect(two.ruleStatistics(counterSlot: 0).packets == 0)
        #expect(two.accounting().isConsistent)
        // One rule that looks at a field turns the shortcut off.
        let looking = try PipelineHarness(packets: [udpFrame()], rules: try rules(["priority=0,actions=NORMAL", "priority=9,tcp,actions=drop"]))
        _ = looking.run(packets: 1_000)
        #expect(looking.transmitted == 1_000)
        #expect(looking.cacheHits + looking.cacheMisses == 1_000)
    }

    @Test func tableMissDropsAndDecTTLAtOneDrops() throws {
        let harness = try PipelineHarness(packets: [udpFrame()], rules: try rules(["priority=5,arp,actions=output:2"]))
        harness.recordSentFrames = true
        _ = harness.run(packets: 1_000)
        #expect(harness.transmitted == 0)
        #expect(harness.sentFrames.isEmpty, "nothing out of either port")
        #expect(harness.accounting().isConsistent)
    }

    @Test func outputToTheInputPortByNumberSendsNothing() throws {
        let harness = try PipelineHarness(packets: [udpFrame()], rules: try rules(["in_port=1,actions=output:1"]))
        harness.recordSentFrames = true
        _ = harness.run(packets: 1_000)
        #expect(harness.transmitted == 0)
        #expect(harness.sentFrames.isEmpty, "nothing out of either port")
        #expect(harness.ruleStatistics(counterSlot: 0).packets == 1_000)
        #expect(harness.accounting().isConsistent)
    }

    @Test func multipleOutputsCopyTheFrameAndKeepAccounting() throws {
        let harness = try PipelineHarness(packets: [udpFrame()], rules: try rules(["in_port=1,actions=output:2,mod_dl_dst:02:00:00:00:00:01,output:2"]))
        harness.recordSentFrames = true
        _ = harness.run(packets: 1_000)
        #expect(harness.transmitted == 2_000)
        // Each frame twice, in action order: as it came, then with the new destination (the copy
        // taken for the first output did not see the later rewrite, nor the frame the earlier copy).
        let rewritten = [0x02, 0, 0, 0, 0, 0x01] + udpFrame()[6...]
        let once: [PipelineHarness.SentFrame] = [.init(.output, udpFrame()), .init(.output, rewritten)]
        #expect(harness.sentFramesDifference(from: Array(Array(repeating: once, count: 1_000).joined())) == nil)
        #expect(harness.accounting().isConsistent)
    }

    @Test func manyFlowsMissTheCacheButStillClassify() throws {
        let packets = (0..<20_000).map { udpFrame(sourcePort: UInt16(1024 + $0)) }
        // A rule on the whole tp_src makes the cache key on the source port: 20,000 keys in 8,192
        // entries. (The cache keys only on bits some rule looks at, so a one-bit mask would not do.)
        let harness = try PipelineHarness(packets: packets, rules: try rules([
            "priority=2,udp,tp_src=1024,actions=output:2", "priority=1,udp,actions=output:2",
        ]))
        harness.recordSentFrames = true
        _ = harness.run(packets: 40_000)
        #expect(harness.transmitted == 40_000)
        // Each flow's frame went out as it came, in the order the frames came.
        #expect(harness.sentFrames.map(\.bytes) == packets + packets)
        #expect(harness.sentFrames.allSatisfy { $0.device == .output })
        #expect(harness.cacheMisses > 20_000)
        #expect(harness.ruleStatistics(counterSlot: 0).packets == 2)
        #expect(harness.ruleStatistics(counterSlot: 1).packets == 39_998)
        #expect(harness.accounting().isConsistent)
    }

    @Test func ecnAndDSCPAreRewrittenOnTheWireWithAValidHeaderChecksum() throws {
        let harness = try PipelineHarness(packets: [udpFrame()], rules: try rules([
            "ip,in_port=1,actions=mod_nw_ecn:3,set_field:46->ip_dscp,output:2",
        ]))
        _ = harness.run(packets: 1_000)
        #expect(harness.transmitted == 1_000)
        let out = harness.lastTransmittedFrame
        var expected = udpFrame()
        expected[15] = 46 << 2 | 3
        let stored = UInt16(out[24]) << 8 | UInt16(out[25])
        let computed = out.withUnsafeBytes { Checksum.ipv4Header($0.baseAddress! + 14, headerLength: 20) }
        #expect(stored == computed)
        // Only the TOS byte and the header checksum differ from the frame that came in.
        expected[24] = out[24]
        expected[25] = out[25]
        #expect(out == expected)
        #expect(harness.accounting().isConsistent)
    }

    @Test func arpFieldsAreRewrittenOnTheWire() throws {
        // An ARP request 10.1.1.20 (52:54:00:b8:27:75) asks for 10.1.1.30.
        let request: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0xb8, 0x27, 0x75, 0x08, 0x06,
                                0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, 0x52, 0x54, 0x00, 0xb8, 0x27, 0x75, 10, 1, 1, 20,
                                0, 0, 0, 0, 0, 0, 10, 1, 1, 30] + [UInt8](repeating: 0, count: 18)
        let harness = try PipelineHarness(packets: [request], rules: try rules([
            "arp,in_port=1,arp_op=1,actions=set_field:2->arp_op,set_field:52:54:00:1b:ea:d5->arp_sha,"
                + "set_field:10.1.1.30->arp_spa,set_field:52:54:00:b8:27:75->arp_tha,set_field:10.1.1.20->arp_tpa,output:2",
        ]))
        _ = harness.run(packets: 100)
        #expect(harness.transmitted == 100)
        let reply: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0xb8, 0x27, 0x75, 0x08, 0x06,
                              0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02, 0x52, 0x54, 0x00, 0x1b, 0xea, 0xd5, 10, 1, 1, 30,
                              0x52, 0x54, 0x00, 0xb8, 0x27, 0x75, 10, 1, 1, 20] + [UInt8](repeating: 0, count: 18)
        #expect(harness.lastTransmittedFrame == reply)
        #expect(harness.accounting().isConsistent)
    }

    @Test func ipv6FlowLabelAndECNAreRewrittenOnTheWire() throws {
        // UDP over IPv6 with a zero UDP checksum (none to update: neither field is in the pseudo-header).
        var frame: [UInt8] = [0x52, 0x54, 0x00, 0x1b, 0xea, 0xd5, 0x52, 0x54, 0x00, 0xb8, 0x27, 0x75, 0x86, 0xdd]
        frame += [0x60, 0x00, 0x00, 0x00, 0x00, 12, 17, 64] + [UInt8](repeating: 0x20, count: 16) + [UInt8](repeating: 0x30, count: 16)
        frame += [0x03, 0xe8, 0x10, 0xe1, 0x00, 12, 0x00, 0x00, 1, 2, 3, 4]
        let harness = try PipelineHarness(packets: [frame], rules: try rules([
            "ipv6,in_port=1,actions=set_field:0xabcde->ipv6_label,set_field:2->nw_ecn,output:2",
        ]))
        _ = harness.run(packets: 100)
        var expected = frame
        expected.replaceSubrange(14..<18, with: [0x60, 0x2a, 0xbc, 0xde])
        #expect(harness.lastTransmittedFrame == expected)
    }
}
