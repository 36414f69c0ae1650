import Testing
import VSwiftProtocol
import VSwiftPacket
import VSwiftClassifier
import VSwiftDatapath
@testable import VSwiftControl

/// Flow timeouts (idle, hard, expiry) and the counter slots flows hold, through the service.
@Suite struct FlowTimeoutAndSlotTests {
    @Test func bulkAddThatFailsPutsTheTableBackWithItsTimeouts() async throws {
        let h = try await seedBridge()
        let start = h.clock.now
        try await h.addFlow("br2", "hard_timeout=10,priority=5,in_port=1,actions=NORMAL")
        let timed = try #require(h.datapath.rule("br2", priority: 5))
        h.datapath.counters[timed.counterSlot] = RuleStatistics(packets: 7, bytes: 420, lastUsed: 0)
        let before = try await h.flows("br2")
        h.datapath.failNextFlowTable = .unsupported("table full")
        let error = await h.addFlows("br2", ["priority=5,in_port=1,actions=drop", "priority=6,actions=drop", "priority=7,actions=drop"]).error
        #expect(error == .datapathFailure("table full"))
        #expect(try await h.flows("br2") == before)
        // The replaced flow came back as it was: same slot, and its hard timeout still runs.
        #expect(try await h.dump("br2").flows.first { $0.priority == 5 }?.packets == 7)
        h.clock.now = start + 10
        await h.service.expireFlows()
        #expect(try await h.flows("br2") == ["priority=0 actions=NORMAL"])
    }

    @Test func bulkAddReplacingATimedFlowStopsItsExpiry() async throws {
        let h = try await seedBridge()
        let start = h.clock.now
        try await h.addFlow("br2", "hard_timeout=10,priority=5,in_port=1,actions=NORMAL")
        let result = await h.addFlows("br2", [
            "priority=6,actions=drop", "priority=5,in_port=1,actions=drop", "idle_timeout=3,priority=6,actions=output:1",
        ])
        #expect(try result.get().decode(FlowChangeReport.self) == FlowChangeReport(added: 3))
        h.clock.now = start + 20
        await h.service.expireFlows()
        // The idle priority=6 flow expired, the replacement of the timed priority=5 one did not.
        #expect(try await h.flows("br2") == ["priority=5,in_port=1 actions=drop", "priority=0 actions=NORMAL"])
    }

    @Test func repeatedFlowsInOneFileTakeOneCounterSlot() async throws {
        let h = Harness(counterSlots: 4)
        try await h.ok("add-br", ["bridge": "br0"])  // 1 slot: the NORMAL flow
        let lines = ["priority=1,actions=drop", "priority=1,actions=output:1", "priority=2,actions=drop", "priority=1,actions=output:2"]
        #expect(try await h.addFlows("br0", lines).get().decode(FlowChangeReport.self) == FlowChangeReport(added: 4))
        #expect(try await h.flows("br0") == ["priority=2 actions=drop", "priority=1 actions=output:2", "priority=0 actions=NORMAL"])
        let slots = Set(h.datapath.flowTables["br0", default: []].map(\.counterSlot))
        #expect(slots == [0, 1, 2])
        // One slot left: replace-flows with repeats needs no more slots than distinct new flows either.
        let replacement = ["priority=3,actions=drop", "priority=3,actions=output:1", "priority=2,actions=drop"]
        let replaced = try await h.ok("replace-flows", ["bridge": "br0", "flows": .array(replacement.map(JSONValue.string))])
        #expect(try replaced.decode(FlowChangeReport.self) == FlowChangeReport(added: 1, deleted: 2))
        #expect(try await h.flows("br0") == ["priority=3 actions=output:1", "priority=2 actions=drop"])
        // Every slot not in the table is free again: two more flows fit, three do not.
        let more = ["priority=4,actions=drop", "priority=5,actions=drop", "priority=6,actions=drop"]
        #expect(await h.addFlows("br0", more).error?.code == RPCError.resourceUnavailable("").code)
        // Refused whole: not one of the three went in.
        #expect(try await h.flows("br0") == ["priority=3 actions=output:1", "priority=2 actions=drop"])
        #expect(try await h.addFlows("br0", Array(more.prefix(2))).get().decode(FlowChangeReport.self) == FlowChangeReport(added: 2))
        #expect(try await h.flows("br0") == ["priority=5 actions=drop", "priority=4 actions=drop", "priority=3 actions=output:1", "priority=2 actions=drop"])
    }

    @Test func counterSlotsRunOutAndComeBack() async throws {
        let h = Harness(counterSlots: 3)
        try await h.ok("add-br", ["bridge": "br0"])  // 1 slot: the NORMAL flow
        try await h.addFlow("br0", "priority=1,actions=drop")
        let error = await h.addFlows("br0", ["priority=2,actions=drop", "priority=3,actions=drop"]).error
        #expect(error?.code == RPCError.resourceUnavailable("").code)
        #expect(try await h.flows("br0").count == 2)
        try await h.addFlow("br0", "priority=2,actions=drop")
        try await h.ok("del-flows", ["bridge": "br0", "match": "priority=1", "strict": true])
        try await h.addFlow("br0", "priority=3,actions=drop")
        #expect(try await h.flows("br0").count == 3)
        // Deleting the bridge frees its slots.
        try await h.ok("del-br", ["bridge": "br0"])
        try await h.ok("add-br", ["bridge": "br1"])
        try await h.addFlow("br1", "priority=1,actions=drop")
        try await h.addFlow("br1", "priority=2,actions=drop")
    }

    @Test func hardTimeoutCountsFromInstallation() async throws {
        let h = try await seedBridge()
        let start = h.clock.now
        try await h.addFlow("br2", "hard_timeout=10,priority=5,in_port=1,actions=NORMAL")
        let line = try formatFlowLine(#require(await h.dump("br2").flows.first))
        #expect(line.contains("n_bytes=0, hard_timeout=10, idle_age=0, priority=5,in_port=1 actions=NORMAL"))
        let rule = try #require(h.datapath.rule("br2", priority: 5))
        h.datapath.counters[rule.counterSlot] = RuleStatistics(packets: 1, bytes: 60, lastUsed: UInt64(start) + 9)
        h.clock.now = start + 9.9
        await h.service.expireFlows()
        #expect(try await h.flows("br2").count == 2)
        h.clock.now = start + 10
        await h.service.expireFlows()
        #expect(try await h.flows("br2") == ["priority=0 actions=NORMAL"])
        #expect(h.datapath.flowTables["br2"]?.count == 1)
    }

    @Test func idleTimeoutCountsFromLastUse() async throws {
        let h = try await seedBridge()
        let start = h.clock.now  // 1000
        try await h.addFlow("br2", "idle_timeout=5,priority=5,in_port=1,actions=NORMAL")
        try await h.addFlow("br2", "idle_timeout=5,priority=6,in_port=2,actions=NORMAL")
        let used = try #require(h.datapath.rule("br2", priority: 5))
        // Last used during second 1003 (at most 1004): idle from 1004, expires at 1009.
        h.datapath.counters[used.counterSlot] = RuleStatistics(packets: 3, bytes: 180, lastUsed: UInt64(start) + 3)
        h.clock.now = start + 5
        await h.service.expireFlows()
        // The unused one expired 5 s after installation.
        #expect(try await h.flows("br2") == ["priority=5,in_port=1 actions=NORMAL", "priority=0 actions=NORMAL"])
        #expect(try await h.dump("br2").flows.first?.idleAge == 2)
        h.clock.now = start + 8.9
        await h.service.expireFlows()
        #expect(try await h.flows("br2") == ["priority=5,in_port=1 actions=NORMAL", "priority=0 actions=NORMAL"])
        h.clock.now = start + 9
        await h.service.expireFlows()
        #expect(try await h.flows("br2") == ["priority=0 actions=NORMAL"])
    }

    @Test func modFlowsRestartsTheHardTimeoutButKeepsIt() async throws {
        let h = try await seedBridge()
        let start = h.clock.now
        try await h.addFlow("br2", "hard_timeout=10,priority=5,in_port=1,actions=NORMAL")
        h.clock.now = start + 8
        try await h.ok("mod-flows", ["bridge": "br2", "flow": "in_port=1,actions=drop"])
        h.clock.now = start + 12
        await h.service.expireFlows()
        let flow = try #require(await h.dump("br2").flows.first)
        #expect(flow.hardTimeout == 10 && flow.actions == "drop")
        #expect(flow.hardAge == 4 && flow.duration == 12)
        h.clock.now = start + 18
        await h.service.expireFlows()
        #expect(try await h.flows("br2") == ["priority=0 actions=NORMAL"])
    }
}
