import Testing
import VSwiftPacket
import VSwiftClassifier
import VSwiftDatapath
import VSwiftFlowSyntax
import VSwiftProtocol
@testable import VSwiftControl

/// The seed scenario's bridge: br2 with vnet0 (port 1) and eth1 (port 2), standing in for lisp0.
func seedBridge() async throws -> Harness {
    let h = Harness()
    try await h.ok("add-br", ["bridge": "br2"])
    try await h.ok("add-port", ["bridge": "br2", "port": "vnet0"])
    try await h.ok("add-port", ["bridge": "br2", "port": "eth1"])
    return h
}

let seedFlows = [
    "priority=0,action=NORMAL",
    "priority=2,in_port=1,dl_type=0x0806,action=NORMAL",
    "priority=3,dl_dst=02:00:00:00:00:00,action=mod_dl_dst:52:54:00:B8:27:75,output:1",
    "priority=1,in_port=1,dl_type=0x0800,vlan_tci=0,nw_src=10.1.1.0/24,action=output:2",
]

@Suite struct FlowTableTests {
    @Test func newBridgeStartsWithNormal() async throws {
        let h = Harness()
        try await h.ok("add-br", ["bridge": "br0"])
        #expect(try await h.flows("br0") == ["priority=0 actions=NORMAL"])
        let rules = h.datapath.flowTables["br0"] ?? []
        #expect(rules.count == 1)
        #expect(rules.first?.actions == [.normal])
        #expect(rules.first?.priority == 0)
        #expect(h.datapath.portNumbers["br0"] == ["br0": ofportLocal])
    }

    @Test func seedScenarioDumpsLikeOVS() async throws {
        let h = try await seedBridge()
        let installedAt = h.clock.now
        for flow in seedFlows {
            try await h.addFlow("br2", flow)
            h.clock.now += 10
        }
        // The add-flow of "priority=0,action=NORMAL" replaced the bridge's initial flow.
        #expect(try await h.flows("br2") == [
            "priority=3,dl_dst=02:00:00:00:00:00 actions=mod_dl_dst:52:54:00:b8:27:75,output:1",
            "priority=2,arp,in_port=1 actions=NORMAL",
            "priority=1,ip,in_port=1,vlan_tci=0x0000,nw_src=10.1.1.0/24 actions=output:2",
            "priority=0 actions=NORMAL",
        ])
        #expect(h.datapath.flowTables["br2"]?.count == 4)
        #expect(h.datapath.portNumbers["br2"] == ["vnet0": 1, "eth1": 2, "br2": ofportLocal])

        // Counters come from the rule's slot; idle_age from its last use.
        let rule = try #require(h.datapath.rule("br2", priority: 3))
        h.datapath.counters[rule.counterSlot] = RuleStatistics(packets: 195, bytes: 19110, lastUsed: UInt64(installedAt) + 100)
        h.clock.now = installedAt + 20 + 1615.8285
        let report = try await h.dump("br2")
        let first = try #require(report.flows.first)
        #expect(first.packets == 195 && first.bytes == 19110)
        #expect(first.duration == 1615.828)
        #expect(first.idleAge == 1535)  // now 1635.8 s after install, last used at 100 s
        #expect(formatFlowLine(first) == " cookie=0x0, duration=1615.828s, table=0, n_packets=195, n_bytes=19110, idle_age=1535, priority=3,dl_dst=02:00:00:00:00:00 actions=mod_dl_dst:52:54:00:b8:27:75,output:1")
        // Never used: idle since installation.
        let arp = report.flows[1]
        #expect(arp.idleAge == UInt64(arp.duration))
        #expect(arp.packets == 0)
    }

    /// Which changes the datapath may apply in place: adding a few new flows, and strictly
    /// deleting a flow no other flow shares its match with. Everything else republishes the table.
    @Test func fewAdditionsAndStrictDeletionsArePublishedInPlace() async throws {
        let h = Harness()
        try await h.ok("add-br", ["bridge": "br0"])
        _ = try await h.addFlows("br0", (1...8).map { "priority=5,udp,tp_dst=\($0),actions=drop" }).get()
        #expect(h.datapath.additionsInPlace == 0)  // 8 flows onto 1: a whole new table
        try await h.addFlow("br0", "priority=6,udp,tp_dst=1,actions=drop")  // same match as one of priority 5
        #expect(h.datapath.additionsInPlace == 1)
        try await h.addFlow("br0", "priority=5,udp,tp_dst=2,actions=output:1")  // replaces a flow
        #expect(h.datapath.additionsInPlace == 1)
        try await h.ok("del-flows", ["bridge": "br0", "match": "priority=5,udp,tp_dst=3", "strict": true])
        #expect(h.datapath.removalsInPlace == 1)
        try await h.ok("del-flows", ["bridge": "br0", "match": "priority=6,udp,tp_dst=1", "strict": true])  // shares its match
        #expect(h.datapath.removalsInPlace == 1)
        try await h.ok("del-flows", ["bridge": "br0", "match": "udp,tp_dst=4"])  // not strict
        #expect(h.datapath.removalsInPlace == 1)
        let expected = [
            "priority=5,udp,tp_dst=1 actions=drop", "priority=5,udp,tp_dst=5 actions=drop",
            "priority=5,udp,tp_dst=6 actions=drop", "priority=5,udp,tp_dst=7 actions=drop",
            "priority=5,udp,tp_dst=8 actions=drop", "priority=5,udp,tp_dst=2 actions=output:1",
            "priority=0 actions=NORMAL",
        ]
        #expect(try await h.flows("br0") == expected)
        #expect(Set(h.datapath.flowTables["br0"]!.map(\.counterSlot)).count == expected.count)
    }

    /// dump-flows with `text`: the same flows as text lines, formatted by the service.
    @Test func dumpFlowsAsTextLines() async throws {
        let h = try await seedBridge()
        for flow in seedFlows { try await h.addFlow("br2", flow) }
        let rule = try #require(h.datapath.rule("br2", priority: 3))
        h.datapath.counters[rule.counterSlot] = RuleStatistics(packets: 7, bytes: 700, lastUsed: 1)
        h.clock.now += 2.5
        for match: JSONValue? in [nil, "in_port=1"] {
            var params: [String: JSONValue] = ["bridge": "br2", "text": true]
            params["match"] = match
            let lines = try await h.ok("dump-flows", params)
            let expected = try await h.dump("br2", match.flatMap { if case .string(let m) = $0 { m } else { nil } }).flows
            #expect(lines == .object(["bridge": "br2", "lines": .array(expected.map { .string(formatFlowLine($0)) })]))
        }
        #expect(await h.call("dump-flows", ["bridge": "nope", "text": true]).error?.code == RPCError.noSuchBridge("").code)
    }

    @Test func addFlowReplacesSameMatchAndPriorityAndResetsCounters() async throws {
        let h = try await seedBridge()
        try await h.addFlow("br2", "priority=5,in_port=1,actions=output:2")
        let old = try #require(h.datapath.rule("br2", priority: 5))
        h.datapath.counters[old.counterSlot] = RuleStatistics(packets: 7, bytes: 700, lastUsed: 1000)
        h.clock.now += 30
        try await h.addFlow("br2", "priority=5,in_port=1,actions=drop")
        // A different priority is another flow. It gets the replaced flow's slot, zeroed.
        h.datapath.resets = []
        try await h.addFlow("br2", "priority=6,in_port=1,actions=drop")
        #expect(h.datapath.rule("br2", priority: 6)?.counterSlot == old.counterSlot)
        #expect(h.datapath.resets == [old.counterSlot])
        #expect(try await h.flows("br2") == [
            "priority=6,in_port=1 actions=drop", "priority=5,in_port=1 actions=drop", "priority=0 actions=NORMAL",
        ])
        let replaced = try #require(await h.dump("br2").flows.first { $0.priority == 5 })
        #expect(replaced.packets == 0 && replaced.bytes == 0)
        #expect(replaced.duration == 0)
        let new = try #require(h.datapath.rule("br2", priority: 5))
        #expect(new.actions == [])
        #expect(new.sequence > old.sequence)
        #expect(new.counterSlot != old.counterSlot)
    }

    @Test func portNamesResolveThroughTheBridge() async throws {
        let h = try await seedBridge()
        try await h.addFlow("br2", "priority=9,in_port=vnet0,actions=output:eth1,output:br2")
        try await h.addFlow("br2", "priority=8,in_port=LOCAL,actions=output:vnet0")
        let rule = try #require(h.datapath.rule("br2", priority: 9))
        #expect(rule.match.value(.inPort) == 1)
        #expect(rule.actions == [.output(2), .output(ofportLocal)] || rule.actions == [.output(2), .local])
        #expect(h.datapath.rule("br2", priority: 8)?.match.value(.inPort) == UInt64(ofportLocal))
        // A name that is no port of this bridge is an error.
        let result = await h.call("add-flow", ["bridge": "br2", "flow": "in_port=nosuch,actions=drop"])
        #expect(result.error?.code == RPCError.invalidParams("").code)
    }

    @Test func modFlowsNonStrictChangesEveryFlowAtLeastAsSpecificAndKeepsCounters() async throws {
        let h = try await seedBridge()
        for flow in seedFlows { try await h.addFlow("br2", flow) }
        try await h.addFlow("br2", "priority=7,in_port=2,actions=NORMAL")
        let ip = try #require(h.datapath.rule("br2", priority: 1))
        h.datapath.counters[ip.counterSlot] = RuleStatistics(packets: 101, bytes: 9898, lastUsed: 1000)
        h.clock.now += 60

        let result = try await h.ok("mod-flows", ["bridge": "br2", "flow": "in_port=1,actions=drop"]).decode(FlowChangeReport.self)
        #expect(result == FlowChangeReport(modified: 2))  // the arp and ip flows, whatever their priority
        #expect(try await h.flows("br2") == [
            "priority=7,in_port=2 actions=NORMAL",
            "priority=3,dl_dst=02:00:00:00:00:00 actions=mod_dl_dst:52:54:00:b8:27:75,output:1",
            "priority=2,arp,in_port=1 actions=drop",
            "priority=1,ip,in_port=1,vlan_tci=0x0000,nw_src=10.1.1.0/24 actions=drop",
            "priority=0 actions=NORMAL",
        ])
        let modified = try #require(await h.dump("br2").flows.first { $0.priority == 1 })
        #expect(modified.packets == 101 && modified.bytes == 9898)
        #expect(modified.duration == 60)  // kept
        #expect(modified.hardAge == 0)
        #expect(formatFlowLine(modified).contains("idle_age=0, hard_age=0, priority=1,"))
        let same = try #require(h.datapath.rule("br2", priority: 1))
        #expect(same.counterSlot == ip.counterSlot && same.sequence == ip.sequence)

        // Nothing selected and no cookie mask: the flow is added, as OVS's modify does.
        let none = try await h.ok("mod-flows", ["bridge": "br2", "flow": "in_port=3,actions=drop"]).decode(FlowChangeReport.self)
        #expect(none == FlowChangeReport(added: 1))
        #expect(try await h.flows("br2").count == 6)
    }

    @Test func modFlowsStrictChangesOnlyTheIdenticalFlow() async throws {
        let h = try await seedBridge()
        try await h.addFlow("br2", "priority=5,in_port=1,actions=NORMAL")
        try await h.addFlow("br2", "priority=6,in_port=1,actions=NORMAL")
        try await h.addFlow("br2", "priority=5,in_port=1,dl_type=0x0806,actions=NORMAL")
        let result = try await h.ok("mod-flows", ["bridge": "br2", "flow": "priority=5,in_port=1,actions=output:2", "strict": true])
        #expect(try result.decode(FlowChangeReport.self) == FlowChangeReport(modified: 1))
        #expect(try await h.flows("br2") == [
            "priority=6,in_port=1 actions=NORMAL",
            "priority=5,in_port=1 actions=output:2",
            "priority=5,arp,in_port=1 actions=NORMAL",
            "priority=0 actions=NORMAL",
        ])
        // Strict without a priority means the default one, which no flow has here: added.
        let none = try await h.ok("mod-flows", ["bridge": "br2", "flow": "in_port=1,actions=drop", "strict": true])
        #expect(try none.decode(FlowChangeReport.self) == FlowChangeReport(added: 1))
        #expect(try await h.flows("br2").contains("in_port=1 actions=drop"))
    }

    @Test func modFlowsWithACookieSetsItOrAddsTheFlow() async throws {
        let h = try await seedBridge()
        try await h.addFlow("br2", "priority=5,in_port=1,actions=NORMAL")
        try await h.ok("mod-flows", ["bridge": "br2", "flow": "cookie=0x7,in_port=1,actions=drop"])
        #expect(try await h.dump("br2").flows.first?.cookie == 7)
        let added = try await h.ok("mod-flows", ["bridge": "br2", "flow": "cookie=0x8,priority=4,in_port=2,actions=drop"])
        #expect(try added.decode(FlowChangeReport.self) == FlowChangeReport(added: 1))
        #expect(try await h.flows("br2").contains("priority=4,in_port=2 actions=drop"))
    }

    @Test func delFlowsNonStrictDeletesFlowsAtLeastAsSpecific() async throws {
        let h = try await seedBridge()
        for flow in [
            "priority=10,ip,nw_src=10.1.1.0/24,actions=drop",  // narrower than 10.1.0.0/16: goes
            "priority=11,ip,nw_src=10.0.0.0/8,actions=drop",  // wider: stays
            "priority=12,ip,actions=drop",  // does not constrain nw_src: stays
            "priority=13,ip,in_port=1,nw_src=10.1.2.3,actions=drop",  // narrower, more fields: goes
            "priority=14,ip,nw_src=10.2.0.0/16,actions=drop",  // other value: stays
            "priority=15,arp,actions=drop",
        ] {
            try await h.addFlow("br2", flow)
        }
        let result = try await h.ok("del-flows", ["bridge": "br2", "match": "ip,nw_src=10.1.0.0/16"]).decode(FlowChangeReport.self)
        #expect(result == FlowChangeReport(deleted: 2))
        #expect(try await h.flows("br2").map { $0.prefix(11) } == [
            "priority=15", "priority=14", "priority=12", "priority=11", "priority=0 ",
        ])
        // "ip" takes every IPv4 flow; the empty match would take all.
        try await h.ok("del-flows", ["bridge": "br2", "match": "ip"])
        #expect(try await h.flows("br2") == ["priority=15,arp actions=drop", "priority=0 actions=NORMAL"])
        // dump-flows selects the same way.
        #expect(try await h.flows("br2", "arp") == ["priority=15,arp actions=drop"])
    }

    @Test func delFlowsStrictDeletesOnlyTheIdenticalFlow() async throws {
        let h = try await seedBridge()
        try await h.addFlow("br2", "priority=5,in_port=1,actions=NORMAL")
        try await h.addFlow("br2", "priority=6,in_port=1,actions=NORMAL")
        try await h.addFlow("br2", "priority=5,in_port=1,dl_type=0x0806,actions=NORMAL")
        let result = try await h.ok("del-flows", ["bridge": "br2", "match": "priority=5,in_port=1", "strict": true])
        #expect(try result.decode(FlowChangeReport.self) == FlowChangeReport(deleted: 1))
        #expect(try await h.flows("br2") == [
            "priority=6,in_port=1 actions=NORMAL", "priority=5,arp,in_port=1 actions=NORMAL", "priority=0 actions=NORMAL",
        ])
        // Strict with an empty match is the catch-all at the default priority: none here.
        let none = try await h.ok("del-flows", ["bridge": "br2", "strict": true])
        #expect(try none.decode(FlowChangeReport.self) == FlowChangeReport())
    }

    @Test func delFlowsWithoutMatchLeavesNoFlowsAtAll() async throws {
        let h = try await seedBridge()
        for flow in seedFlows { try await h.addFlow("br2", flow) }
        let slots = Set((h.datapath.flowTables["br2"] ?? []).map(\.counterSlot))
        let result = try await h.ok("del-flows", ["bridge": "br2"]).decode(FlowChangeReport.self)
        #expect(result == FlowChangeReport(deleted: 4))
        #expect(try await h.flows("br2") == [])
        // Published as an empty table: the bridge drops everything, as OVS does.
        #expect(h.datapath.flowTables["br2"].map(\.isEmpty) == true)
        // The freed slots are reused, and zeroed before reuse.
        h.datapath.resets = []
        try await h.addFlow("br2", "actions=NORMAL")
        let slot = try #require(h.datapath.flowTables["br2"]?.first?.counterSlot)
        #expect(slots.contains(slot))
        #expect(h.datapath.resets == [slot])
    }

    @Test func delFlowsByCookie() async throws {
        let h = try await seedBridge()
        try await h.addFlow("br2", "cookie=0x12,priority=5,in_port=1,actions=NORMAL")
        try await h.addFlow("br2", "cookie=0x22,priority=6,in_port=1,actions=NORMAL")
        try await h.ok("del-flows", ["bridge": "br2", "match": "cookie=0x20/0xf0"])
        #expect(try await h.flows("br2") == ["priority=5,in_port=1 actions=NORMAL", "priority=0 actions=NORMAL"])
    }

    @Test func outPortSelectsFlowsWithAnOutputToThePort() async throws {
        let h = try await seedBridge()  // vnet0 is port 1, eth1 port 2
        for flow in [
            "priority=10,in_port=1,actions=output:2",
            "priority=11,in_port=1,actions=mod_dl_dst:52:54:00:00:00:01,output:1,eth1",
            "priority=12,in_port=2,actions=output:1",
            "priority=13,in_port=2,actions=drop",
            "priority=14,arp,actions=NORMAL",
            "priority=15,ip,actions=FLOOD",
            "priority=16,ip,in_port=1,actions=LOCAL",
            "priority=17,ip,in_port=2,actions=output:br2",
            "priority=18,ip,in_port=2,actions=ALL,IN_PORT",
        ] {
            try await h.addFlow("br2", flow)
        }
        func priorities(_ filter: String) async throws -> [String] { try await h.flows("br2", filter).map { String($0.prefix(11)) } }
        #expect(try await priorities("out_port=2") == ["priority=11", "priority=10"])
        #expect(try await priorities("out_port=eth1") == ["priority=11", "priority=10"])
        // OVS compares the output action's port: NORMAL, FLOOD and ALL select only by their own numbers.
        #expect(try await priorities("out_port=1") == ["priority=12", "priority=11"])
        #expect(try await priorities("out_port=NORMAL") == ["priority=14", "priority=0 "])
        #expect(try await priorities("out_port=FLOOD") == ["priority=15"])
        #expect(try await priorities("out_port=ALL") == ["priority=18"])
        #expect(try await priorities("out_port=IN_PORT") == ["priority=18"])
        #expect(try await priorities("out_port=LOCAL") == ["priority=17", "priority=16"])
        #expect(try await priorities("out_port=br2") == ["priority=17", "priority=16"])
        #expect(try await priorities("out_port=7") == [])
        // With a match: both must hold. NONE is no filter.
        #expect(try await priorities("in_port=2,out_port=1") == ["priority=12"])
        #expect(try await h.flows("br2", "out_port=NONE").count == 10)

        // del-flows: only the flows that output there go; strict needs the identical flow as well.
        let strictMiss = try await h.ok("del-flows", ["bridge": "br2", "match": "priority=12,in_port=2,out_port=2", "strict": true])
        #expect(try strictMiss.decode(FlowChangeReport.self) == FlowChangeReport())
        let strictHit = try await h.ok("del-flows", ["bridge": "br2", "match": "priority=12,in_port=2,out_port=1", "strict": true])
        #expect(try strictHit.decode(FlowChangeReport.self) == FlowChangeReport(deleted: 1))
        let deleted = try await h.ok("del-flows", ["bridge": "br2", "match": "out_port=2"]).decode(FlowChangeReport.self)
        #expect(deleted == FlowChangeReport(deleted: 2))
        #expect(try await priorities("") == ["priority=18", "priority=17", "priority=16", "priority=15", "priority=14",
                                         "priority=13", "priority=0 "])

        // mod-flows takes no out_port (OVS: only del-flows and dump-flows do); a bad port is named.
        let mod = await h.call("mod-flows", ["bridge": "br2", "flow": "out_port=1,actions=drop"])
        #expect(mod.error?.code == RPCError.invalidParams("").code)
        #expect(mod.error?.message.contains("out_port is not allowed here") == true)
        let bad = await h.call("dump-flows", ["bridge": "br2", "match": "out_port=nosuch"])
        #expect(bad.error?.message.contains("bad value \"nosuch\" for out_port") == true)
    }

    @Test func cookieMasksSelectFlowsInDumpDelAndModFlows() async throws {
        let h = try await seedBridge()
        try await h.addFlow("br2", "cookie=0x12,priority=5,in_port=1,actions=NORMAL")
        try await h.addFlow("br2", "cookie=0x22,priority=6,in_port=1,actions=NORMAL")
        try await h.addFlow("br2", "cookie=0x23,priority=7,in_port=2,actions=NORMAL")
        func priorities(_ filter: String) async throws -> [UInt16] { try await h.dump("br2", filter).flows.map(\.priority) }
        func cookies() async throws -> [UInt16: UInt64] {
            Dictionary(uniqueKeysWithValues: try await h.dump("br2").flows.map { ($0.priority, $0.cookie) })
        }
        // cookie & mask == value & mask.
        #expect(try await priorities("cookie=0x20/0xf0") == [7, 6])
        #expect(try await priorities("cookie=0x22/-1") == [6])
        #expect(try await priorities("cookie=0x22/0xffffffffffffffff") == [6])
        #expect(try await priorities("cookie=0x2/0xf") == [6, 5])
        #expect(try await priorities("cookie=0x5/0") == [7, 6, 5, 0])
        #expect(try await priorities("in_port=1,cookie=0x20/0xf0") == [6])
        // A cookie without a mask sets one: not in a filter (OVS: "cannot set cookie"); add-flow takes no mask.
        for (method, params) in [
            ("dump-flows", ["match": "cookie=0x12"]), ("del-flows", ["match": "cookie=0x12"]),
            ("add-flow", ["flow": "cookie=0x1/0x1,actions=drop"]),
        ] as [(String, [String: JSONValue])] {
            var all = params
            all["bridge"] = "br2"
            #expect(await h.call(method, all).error?.code == RPCError.invalidParams("").code, "\(method)")
        }

        // mod-flows: the mask selects and a plain cookie is the new one; nothing is added when a
        // mask selects nothing.
        let both = try await h.ok("mod-flows", ["bridge": "br2", "flow": "cookie=0x20/0xf0,cookie=0x99,actions=drop"])
        #expect(try both.decode(FlowChangeReport.self) == FlowChangeReport(modified: 2))
        #expect(try await cookies() == [7: 0x99, 6: 0x99, 5: 0x12, 0: 0])
        #expect(try await h.flows("br2", "cookie=0x99/-1") == ["priority=7,in_port=2 actions=drop", "priority=6,in_port=1 actions=drop"])
        let keep = try await h.ok("mod-flows", ["bridge": "br2", "flow": "cookie=0x10/0xf0,actions=output:2"])
        #expect(try keep.decode(FlowChangeReport.self) == FlowChangeReport(modified: 1))
        #expect(try await cookies()[5] == 0x12)
        #expect(try await h.flows("br2", "cookie=0x12/-1") == ["priority=5,in_port=1 actions=output:2"])
        let none = try await h.ok("mod-flows", ["bridge": "br2", "flow": "cookie=0x40/0xf0,in_port=3,actions=drop"])
        #expect(try none.decode(FlowChangeReport.self) == FlowChangeReport())
        // Without a mask the modified flows take the request's cookie, 0 when it has none (ovs-ofctl
        // sends one with every modify).
        try await h.ok("mod-flows", ["bridge": "br2", "flow": "in_port=2,actions=NORMAL"])
        #expect(try await cookies() == [7: 0, 6: 0x99, 5: 0x12, 0: 0])

        // del-flows by mask.
        let deleted = try await h.ok("del-flows", ["bridge": "br2", "match": "cookie=0x90/0xf0"]).decode(FlowChangeReport.self)
        #expect(deleted == FlowChangeReport(deleted: 1))
        #expect(try await priorities("") == [7, 5, 0])
    }

    @Test func replaceFlowsKeepsUnchangedFlowsAndTheirCounters() async throws {
        let h = try await seedBridge()
        for flow in seedFlows { try await h.addFlow("br2", flow) }
        let kept = try #require(h.datapath.rule("br2", priority: 3))
        let changed = try #require(h.datapath.rule("br2", priority: 1))
        h.datapath.counters[kept.counterSlot] = RuleStatistics(packets: 195, bytes: 19110, lastUsed: 1000)
        h.datapath.counters[changed.counterSlot] = RuleStatistics(packets: 101, bytes: 9898, lastUsed: 1000)
        h.clock.now += 100

        let file = [
            "# the new table",
            "priority=3,dl_dst=02:00:00:00:00:00,actions=mod_dl_dst:52:54:00:b8:27:75,output:1",  // same
            "",
            "priority=1,in_port=1,ip,vlan_tci=0,nw_src=10.1.1.0/24,actions=output:2,output:LOCAL",  // other actions
            "priority=4,in_port=2,actions=output:1   # new",
        ]
        let result = try await h.ok("replace-flows", ["bridge": "br2", "flows": .array(file.map(JSONValue.string))])
        #expect(try result.decode(FlowChangeReport.self) == FlowChangeReport(added: 2, deleted: 2))
        #expect(try await h.flows("br2") == [
            "priority=4,in_port=2 actions=output:1",
            "priority=3,dl_dst=02:00:00:00:00:00 actions=mod_dl_dst:52:54:00:b8:27:75,output:1",
            "priority=1,ip,in_port=1,vlan_tci=0x0000,nw_src=10.1.1.0/24 actions=output:2,LOCAL",
        ])
        let report = try await h.dump("br2")
        #expect(report.flows[1].packets == 195 && report.flows[1].duration == 100)
        #expect(report.flows[2].packets == 0 && report.flows[2].duration == 0)
        #expect(h.datapath.rule("br2", priority: 3)?.counterSlot == kept.counterSlot)
        #expect(h.datapath.rule("br2", priority: 1)?.counterSlot != changed.counterSlot)
    }

    @Test func addFlowsWithABadLineNamesItAndChangesNothing() async throws {
        let h = try await seedBridge()
        try await h.addFlow("br2", "priority=5,in_port=1,actions=NORMAL")
        let before = try await h.flows("br2")
        let publishes = h.datapath.publishCount
        let result = await h.addFlows("br2", [
            "# comment",
            "priority=7,in_port=2,actions=drop",
            "priority=1,ip,nw_src=10.1.1.0/33,actions=output:2",
            "priority=8,in_port=1,actions=drop",
        ])
        let error = try #require(result.error)
        #expect(error.code == -32602)
        #expect(error.message.hasPrefix(#"line 3: bad value "10.1.1.0/33" for nw_src"#))
        #expect(error.data?["line"] == 3)
        #expect(try await h.flows("br2") == before)
        #expect(h.datapath.publishCount == publishes)
    }

    @Test func bigFilesAreParsedInChunksAndTheFirstBadLineIsNamed() async throws {
        let h = try await seedBridge()
        var lines = (0..<40_000).map { i in "priority=\(i % 7 + 1),ip,in_port=1,nw_src=10.\(i >> 8 & 0xff).\(i & 0xff).0/24,actions=output:2" }
        lines[25_000] = "priority=1,ip,nw_src=10.0.0.0/33,actions=drop"
        lines[9_000] = "priority=1,in_port=9x,actions=drop"
        lines[35_000] = "bogus"
        let error = try #require(await h.addFlows("br2", lines).error)
        #expect(error.message.hasPrefix("line 9001: "))
        #expect(try await h.flows("br2") == ["priority=0 actions=NORMAL"])
        lines[9_000] = "# fine now"
        lines[25_000] = ""
        lines[35_000] = "priority=1,in_port=2,actions=drop"
        let result = try await h.addFlows("br2", lines).get().decode(FlowChangeReport.self)
        #expect(result == FlowChangeReport(added: 39_998))
        #expect(h.datapath.flowTables["br2"]?.count == 39_999)
        let report = try await h.dump("br2")
        #expect(report.flows.count == 39_999)
        // Installation order among equal priorities.
        let sevens = report.flows.filter { $0.priority == 7 }.map(\.match)
        #expect(sevens.first == "ip,in_port=1,nw_src=10.0.6.0/24")
        #expect(sevens.count == 5_714)
    }

    @Test func addFlowsSkipsCommentsAndLaterLinesWin() async throws {
        let h = try await seedBridge()
        let result = await h.addFlows("br2", [
            "  # comment", "", "priority=7,in_port=2,actions=drop", "\t", "priority=7,in_port=2,actions=output:1 # again",
        ])
        #expect(try result.get().decode(FlowChangeReport.self) == FlowChangeReport(added: 2))
        #expect(try await h.flows("br2") == ["priority=7,in_port=2 actions=output:1", "priority=0 actions=NORMAL"])
        #expect(h.datapath.flowTables["br2"]?.count == 2)
    }

    @Test func badFlowTextIsInvalidParams() async throws {
        let h = try await seedBridge()
        for (method, params) in [
            ("add-flow", ["flow": JSONValue.string("in_port=1")]),  // no actions
            ("add-flow", ["flow": "nw_src=10.1.1.1,actions=drop"]),  // no ip prerequisite
            ("del-flows", ["match": "in_port=1,actions=drop"]),
            ("mod-flows", ["flow": "in_port=x y,actions=drop"]),
            ("dump-flows", ["match": "nosuch=1"]),
        ] {
            var params = params
            params["bridge"] = "br2"
            let error = await h.call(method, params).error
            #expect(error?.code == -32602, "\(method) \(params)")
            #expect(error?.message.isEmpty == false)
        }
        #expect(try await h.flows("br2") == ["priority=0 actions=NORMAL"])
    }

    @Test func unknownBridge() async throws {
        let h = try await seedBridge()
        for method in ["add-flow", "add-flows", "replace-flows", "del-flows", "mod-flows", "dump-flows"] {
            let params: [String: JSONValue] = ["bridge": "br9", "flow": "actions=drop", "flows": ["actions=drop"]]
            #expect(await h.call(method, params).error == .noSuchBridge("br9"), "\(method)")
        }
    }

    @Test func datapathFailureChangesNothing() async throws {
        let h = try await seedBridge()
        try await h.addFlow("br2", "priority=5,in_port=1,actions=NORMAL")
        let before = try await h.flows("br2")
        h.datapath.failNextFlowTable = .unsupported("table full")
        let error = await h.addFlows("br2", ["priority=6,actions=drop", "priority=5,in_port=1,actions=drop"]).error
        #expect(error == .datapathFailure("table full"))
        #expect(try await h.flows("br2") == before)
        h.datapath.failNextFlowTable = .unsupported("table full")
        #expect(await h.call("del-flows", ["bridge": "br2"]).error == .datapathFailure("table full"))
        #expect(try await h.flows("br2") == before)
        // And it works afterwards.
        try await h.addFlow("br2", "priority=6,actions=drop")
        #expect(try await h.flows("br2").count == 3)
    }

    @Test func portChangesRepublishNumbersAndTable() async throws {
        let h = Harness()
        try await h.ok("add-br", ["bridge": "br2"])
        let publishes = h.datapath.publishCount
        try await h.ok("add-port", ["bridge": "br2", "port": "vnet0"])
        #expect(h.datapath.portNumbers["br2"] == ["vnet0": 1, "br2": ofportLocal])
        #expect(h.datapath.publishCount == publishes + 1)
        try await h.ok("del-port", ["port": "vnet0"])
        #expect(h.datapath.portNumbers["br2"] == ["br2": ofportLocal])
        #expect(h.datapath.publishCount == publishes + 2)
    }
}
