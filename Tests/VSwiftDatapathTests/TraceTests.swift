import Testing
import VSwiftClassifier
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftDatapath

/// Flow trace (Worker+Trace.swift): a trace-mode worker runs one frame through the workers' own
/// pipeline code and reports rules, outputs, NORMAL's decision, LISP stages and drops, changing
/// nothing of the live worker and sending nothing.
@Suite("Flow trace through the real pipeline")
struct TraceTests {
    let seed = [
        "priority=0,action=NORMAL",
        "priority=2,in_port=1,dl_type=0x0806,action=NORMAL",
        "priority=3,dl_dst=02:00:00:00:00:00,action=mod_dl_dst:52:54:00:B8:27:75,output:1",
        "priority=1,in_port=1,dl_type=0x0800,vlan_tci=0,nw_src=10.1.1.0/24,action=output:2",
    ]

    /// `inner` wrapped as the harness's peer would send it (remote RLOC to local RLOC).
    func lisp(_ inner: [UInt8], flags: UInt8 = 0x48) -> [UInt8] {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 512 + inner.count, alignment: 64)
        defer { buffer.deallocate() }
        var start = buffer + 256
        inner.withUnsafeBytes { start.copyMemory(from: $0.baseAddress!, byteCount: inner.count) }
        var length = inner.count
        _ = LISP.encapsulate(&start, length: &length, headroom: 256, instanceID: 0,
                             parameters: PipelineHarness.encapsulationToHarness, ipIdentification: 7)
        var frame = Array(UnsafeRawBufferPointer(start: start, count: length))
        frame[14 + 20 + 8] = flags
        return frame
    }

    @Test func aRuleHitWithRewritesNamesTheRuleAndTheChangedFrame() throws {
        let harness = try PipelineHarness(packets: [udpFrame()], rules: try rules([
            "priority=5,in_port=2,actions=drop",
            "priority=10,in_port=1,udp,actions=mod_dl_dst:02:00:00:00:00:aa,set_field:10.9.9.9->nw_dst,mod_tp_dst:99,output:2",
        ]))
        let trace = try harness.trace(udpFrame(), inPort: 0)
        #expect(trace.stages.count == 1)
        let stage = try #require(trace.stages.first)
        #expect(stage.entry == .received && stage.bridge == "br0" && stage.inPort == "slot0" && stage.inPortNumber == 1)
        #expect(stage.key.get(.nwDst) == 0x0a01_011e && stage.key.get(.tpSrc) == 1000)
        #expect(stage.hits.map(\.counterSlot) == [1])
        #expect(stage.outputs.count == 1)
        let out = try #require(stage.outputs.first)
        #expect(out.port == "slot1" && out.ofport == 2)
        #expect(Array(out.frame[0..<6]) == [2, 0, 0, 0, 0, 0xaa])
        #expect(Array(out.frame[30..<34]) == [10, 9, 9, 9])
        #expect(Ref.u16(out.frame, 36) == 99)
        #expect(Ref.checksum(Array(out.frame[14..<34])) == 0, "the IPv4 checksum was updated")
        #expect(stage.events.isEmpty)
    }

    @Test func aMissIsDroppedAndCountedOnTheTraceWorker() throws {
        let harness = try PipelineHarness(packets: [udpFrame()], rules: try rules(["priority=10,in_port=2,actions=output:1"]))
        let stage = try #require(try harness.trace(udpFrame(), inPort: 0).stages.first)
        #expect(stage.hasFlowTable && stage.hits.isEmpty && stage.outputs.isEmpty)
        #expect(stage.events == [.init(port: "slot0", counter: "rx_dropped", count: 1)])
    }

    @Test func normalSendsToTheLearnedPortOrFloods() throws {
        // The harness learns the first packet's destination (52:54:00:1b:ea:d5) on slot 1.
        for table in [nil, try rules(["priority=0,actions=NORMAL"])] {
            let harness = try PipelineHarness(packets: [udpFrame()], rules: table)
            let known = try #require(try harness.trace(udpFrame(), inPort: 0).stages.first)
            #expect(known.hasFlowTable == (table != nil))
            #expect(known.hits.map(\.counterSlot) == (table == nil ? [] : [0]))
            #expect(known.normal?.learnedPort == "slot1" && known.normal?.isGroup == false)
            #expect(known.outputs.map(\.port) == ["slot1"])
            let unknown = try #require(try harness.trace(udpFrame(destinationMAC: [2, 0, 0, 0, 0, 0x77]), inPort: 0).stages.first)
            #expect(unknown.normal?.learnedPort == nil && unknown.normal?.floodPorts == ["slot1"])
            #expect(unknown.outputs.map(\.port) == ["slot1"])
            let broadcast = try #require(try harness.trace(udpFrame(destinationMAC: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), inPort: 0).stages.first)
            #expect(broadcast.normal?.isGroup == true && broadcast.outputs.map(\.port) == ["slot1"])
        }
    }

    @Test func aDropRuleSendsNothing() throws {
        let harness = try PipelineHarness(packets: [udpFrame()], rules: try rules(["priority=10,actions=drop"]))
        let stage = try #require(try harness.trace(udpFrame(), inPort: 0).stages.first)
        #expect(stage.hits.map(\.counterSlot) == [0] && stage.outputs.isEmpty && stage.events.isEmpty)
    }

    @Test func lispEncapsulationShowsTheOuterPacketOnTheUnderlay() throws {
        let harness = try PipelineHarness(packets: [udpFrame()], rules: try rules(seed), tunnel: .encapsulate)
        let trace = try harness.trace(udpFrame(), inPort: 0, names: [0: "vnet0", 1: "em1", 2: "lisp0"])
        #expect(trace.stages.count == 1)
        let stage = try #require(trace.stages.first)
        #expect(stage.hits.map(\.counterSlot) == [3])
        #expect(stage.events == [.init(port: "lisp0", counter: "encapsulated", count: 1)])
        let out = try #require(stage.outputs.first)
        #expect(out.port == "em1" && out.bridge == nil)
        #expect(Array(out.frame[0..<6]) == [2, 0, 0, 0, 0, 2], "the next hop's MAC")
        #expect(Array(out.frame[26..<34]) == [192, 0, 2, 1, 192, 0, 2, 2])
        #expect(Ref.u16(out.frame, 36) == 4341)
        #expect(Array(out.frame[50...]) == Array(udpFrame()[14...]))
    }

    @Test func lispDecapsulationReentersTheBridgeAsAStageOfItsOwn() throws {
        let inner = udpFrame(destinationMAC: [2, 0, 0, 0, 0, 0])
        let harness = try PipelineHarness(packets: [lisp(inner)], rules: try rules(seed), tunnel: .decapsulate)
        let trace = try harness.trace(lisp(inner), inPort: 0, names: [0: "em1", 1: "vnet0", 2: "lisp0"])
        #expect(trace.stages.count == 2)
        guard trace.stages.count == 2 else { return }
        let outer = trace.stages[0], decapsulated = trace.stages[1]
        #expect(outer.bridge == nil && outer.handoffs == 1 && outer.outputs.isEmpty)
        #expect(outer.events == [.init(port: "lisp0", counter: "decapsulated", count: 1)])
        #expect(decapsulated.entry == .decapsulated && decapsulated.lispPort == "lisp0" && decapsulated.bridge == "br0")
        #expect(decapsulated.inPort == "lisp0" && decapsulated.tunnelSource == 0xc000_0202)
        #expect(decapsulated.key.get(.tunSrc) == 0xc000_0202 && decapsulated.key.get(.dlDst) == 0x0200_0000_0000)
        #expect(decapsulated.hits.map(\.counterSlot) == [2])
        #expect(decapsulated.outputs.map(\.port) == ["vnet0"])
        #expect(decapsulated.outputs.first.map { Array($0.frame[0..<6]) } == [0x52, 0x54, 0x00, 0xb8, 0x27, 0x75])
    }

    /// An encapsulated packet whose route leaves by a bridge's internal port re-enters that bridge
    /// (here the VM's own, which floods it back to the LISP port): each pass is a stage, one
    /// deeper, until the nesting limit drops it (`Worker.maxTunnelDepth`).
    @Test func encapsulationIntoABridgeIsTracedStageByStageToTheNestingLimit() throws {
        let harness = try PipelineHarness(packets: [udpFrame()], rules: try rules(seed), tunnel: .encapsulate)
        harness.moveUnderlay(localRLOC: PipelineHarness.localRLOC, egressPort: 0, egressBridge: 0)
        let trace = try harness.trace(udpFrame(), inPort: 0, names: [0: "vnet0", 1: "em1", 2: "lisp0"])
        #expect(trace.stages.map(\.entry) == [.received, .reentered, .reentered, .reentered])
        #expect(trace.stages.map(\.depth) == [0, 1, 2, 3])
        #expect(trace.stages.dropFirst().allSatisfy { $0.lispPort == "lisp0" && $0.inPort == "vnet0" })
        #expect(trace.stages.last?.events.contains(.init(port: "lisp0", counter: "tx_errors", count: 1)) == true)
        #expect(trace.stages.allSatisfy { $0.outputs.isEmpty })
    }

    @Test func malformedFramesAreReportedNotCrashedOn() throws {
        let harness = try PipelineHarness(packets: [udpFrame()], rules: try rules(seed))
        let short = try #require(try harness.trace([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], inPort: 0).stages.first)
        #expect(short.outputs.isEmpty && short.events == [.init(port: "slot0", counter: "rx_errors", count: 1)])
        // IPv4 claiming 60 bytes of header in a 20-byte packet: classified on its L2 fields.
        var bad = udpFrame()
        bad[14] = 0x4f
        _ = try harness.trace(bad, inPort: 0)
        _ = try harness.trace([UInt8](repeating: 0xff, count: 9000), inPort: 0)
        let decap = try PipelineHarness(packets: [udpFrame()], rules: try rules(seed), tunnel: .decapsulate)
        // KK = 11: an encrypted payload (RFC 8061), counted as such, not as a bad header.
        let encrypted = try #require(try decap.trace(lisp(udpFrame(), flags: 0x4f), inPort: 0).stages.first)
        #expect(encrypted.events == [.init(port: "slot2", counter: "encrypted", count: 1)])
    }

    @Test func aTraceChangesNoCounterLearnsNothingAndSendsNothing() throws {
        for tunnel in [PipelineHarness.Tunnel.none, .encapsulate, .decapsulate] {
            let frame = tunnel == .decapsulate ? lisp(udpFrame(destinationMAC: [2, 0, 0, 0, 0, 0])) : udpFrame()
            let harness = try PipelineHarness(packets: [frame], rules: try rules(seed), tunnel: tunnel)
            _ = harness.run(packets: 100)
            let before = harness.stateSnapshot
            for probe in [frame, udpFrame(destinationMAC: [2, 0, 0, 0, 0, 0x77]), [UInt8](repeating: 0, count: 12),
                          udpFrame(destinationMAC: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])] {
                for slot: UInt16 in [0, 1] { _ = try harness.trace(probe, inPort: slot) }
            }
            #expect(harness.stateSnapshot == before, "\(tunnel)")
            #expect(harness.accounting().isConsistent)
            _ = harness.run(packets: 100)
            #expect(harness.transmitted == 200, "\(tunnel): forwarding goes on as before")
        }
    }
}
