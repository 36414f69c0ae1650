import Testing
import VSwiftClassifier
import VSwiftPacket
@testable import VSwiftDatapath

/// A UDP/IPv4 frame 52:54:00:b8:27:75 → 52:54:00:1b:ea:d5, 10.1.1.20 → 10.1.1.30, with valid checksums.
func udpFrame(sourcePort: UInt16 = 1000, destinationMAC: [UInt8] = [0x52, 0x54, 0x00, 0x1b, 0xea, 0xd5], payload: Int = 18) -> [UInt8] {
    var f: [UInt8] = destinationMAC + [0x52, 0x54, 0x00, 0xb8, 0x27, 0x75, 0x08, 0x00]
    let ipLength = 20 + 8 + payload
    var ip: [UInt8] = [0x45, 0, UInt8(ipLength >> 8), UInt8(ipLength & 0xff), 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 1, 1, 20, 10, 1, 1, 30]
    let sum = ip.withUnsafeBytes { Checksum.ipv4Header($0.baseAddress!, headerLength: 20) }
    ip[10] = UInt8(sum >> 8)
    ip[11] = UInt8(sum & 0xff)
    f += ip
    f += [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xff), 0x10, 0xe1, 0, UInt8(8 + payload), 0, 0]
    f += [UInt8](repeating: 0xab, count: payload)
    return f
}

func rules(_ texts: [String]) throws -> [DatapathRule] {
    let parser = FlowParser()
    return try texts.enumerated().map { i, text in
        let rule = try parser.parseFlow(text)
        return DatapathRule(match: rule.match, priority: rule.priority, sequence: UInt64(i), actions: rule.actions, counterSlot: i)
    }
}

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
        let result = harness.run(packets: 10_000)
        #expect(result.packets == 10_000)
        #expect(harness.transmitted == 10_000)
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

    @Test func tableMissDropsAndDecTTLAtOneDrops() throws {
        let harness = try PipelineHarness(packets: [udpFrame()], rules: try rules(["priority=5,arp,actions=output:2"]))
        _ = harness.run(packets: 1_000)
        #expect(harness.transmitted == 0)
        #expect(harness.accounting().isConsistent)
    }

    @Test func outputToTheInputPortByNumberSendsNothing() throws {
        let harness = try PipelineHarness(packets: [udpFrame()], rules: try rules(["in_port=1,actions=output:1"]))
        _ = harness.run(packets: 1_000)
        #expect(harness.transmitted == 0)
        #expect(harness.ruleStatistics(counterSlot: 0).packets == 1_000)
        #expect(harness.accounting().isConsistent)
    }

    @Test func multipleOutputsCopyTheFrameAndKeepAccounting() throws {
        let harness = try PipelineHarness(packets: [udpFrame()], rules: try rules(["in_port=1,actions=output:2,mod_dl_dst:02:00:00:00:00:01,output:2"]))
        _ = harness.run(packets: 1_000)
        #expect(harness.transmitted == 2_000)
        #expect(harness.accounting().isConsistent)
    }

    @Test func manyFlowsMissTheCacheButStillClassify() throws {
        let packets = (0..<20_000).map { udpFrame(sourcePort: UInt16(1024 + $0)) }
        // A rule on the whole tp_src makes the cache key on the source port: 20,000 keys in 8,192
        // entries. (The cache keys only on bits some rule looks at, so a one-bit mask would not do.)
        let harness = try PipelineHarness(packets: packets, rules: try rules([
            "priority=2,udp,tp_src=1024,actions=output:2", "priority=1,udp,actions=output:2",
        ]))
        _ = harness.run(packets: 40_000)
        #expect(harness.transmitted == 40_000)
        #expect(harness.cacheMisses > 20_000)
        #expect(harness.ruleStatistics(counterSlot: 0).packets == 2)
        #expect(harness.ruleStatistics(counterSlot: 1).packets == 39_998)
        #expect(harness.accounting().isConsistent)
    }
}
