import Testing
import VSwiftClassifier
import VSwiftDatapath
import VSwiftPacket
import VSwiftProtocol

@testable import VSwiftControl

/// dump-xdp-cache and the path counts of dump-ports, from the datapath's XDPFlowCacheReport
/// (here the fake's), through the service.
@Suite struct XDPCacheServiceTests {
    private static func megaflow(port: UInt32, dst: UInt64) -> (mask: FlowKey, key: FlowKey) {
        var mask = FlowKey(), key = FlowKey()
        for (field, value) in [(FlowField.inPort, UInt64(port)), (.dlDst, dst), (.dlType, 0x0800), (.nwFrag, 0)] {
            mask.set(field, field.layout.valueMask)
            key.set(field, value)
        }
        return (mask, key)
    }

    private static func entry(_ bridge: String, port: UInt32, dst: UInt64, _ actions: [FlowAction]) -> XDPFlowCacheReport.Input.Entry {
        let flow = megaflow(port: port, dst: dst)
        return .init(bridge: bridge, mask: flow.mask, maskedKey: flow.key, actions: actions, ruleID: 1, packets: 2, bytes: 196,
                     installedAt: 1_000_000_000, lastUsed: 1_500_000_000)
    }

    private func harness() async throws -> Harness {
        let h = Harness()
        try await h.ok("add-br", ["bridge": "br0"])
        try await h.ok("add-port", ["bridge": "br0", "port": "eth1"])
        try await h.ok("add-port", ["bridge": "br0", "port": "eth2"])
        try await h.ok("add-br", ["bridge": "br2"])
        try await h.ok("add-port", ["bridge": "br2", "port": "vnet0"])
        return h
    }

    private static let input = XDPFlowCacheReport.Input(
        entries: [
            entry("br0", port: 1, dst: 0x5254_0000_0002, [.output(2)]),
            entry("br0", port: 2, dst: 0x5254_0000_0001, []),
            // A LISP encapsulation: the tunnel id, then the LISP port.
            entry("br2", port: 1, dst: 0x5254_001b_ead5, [.setTunnel(5), .output(2)]),
        ],
        ports: [
            .init(bridge: "br0", name: "eth1", counters: .init(hits: 10, misses: 2, punted: 1, failed: 0)),
            .init(bridge: "br0", name: "eth2", counters: .init(hits: 4, misses: 1)),
            .init(bridge: "br2", name: "vnet0", counters: .init(hits: 7)),
        ],
        statistics: .init(entries: 3, capacity: 4096, masks: 1, installed: 3, refused: ["full": 0]),
        now: 2_000_000_000)

    @Test func offIsAnAnswerNotAnError() async throws {
        let h = try await harness()
        let report = try await h.ok("dump-xdp-cache").decode(XDPCacheReport.self)
        #expect(report == XDPCacheReport(enabled: false))
        // dump-ports: no xdp_cache line, no field.
        let ports = try await h.ok("dump-ports", ["bridge": "br0"]).decode(DumpPortsReport.self)
        #expect(ports.ports.allSatisfy { $0.statistics.xdp == nil })
    }

    @Test func entriesWithActionsInFlowSyntax() async throws {
        let h = try await harness()
        h.datapath.xdpCache = Self.input
        let report = try await h.ok("dump-xdp-cache").decode(XDPCacheReport.self)
        #expect(report.enabled && report.entries == 3 && report.capacity == 4096 && report.maxMasks == 32)
        #expect(report.flows.map(\.actions) == ["output:2", "drop", "set_tunnel:0x5,output:2"])
        #expect(report.flows[0].match == "in_port(1),eth(dst=52:54:00:00:00:02),eth_type(0x0800),ipv4(frag=no)")
        #expect(report.flows[0].key == ["in_port": "1", "eth.dst": "52:54:00:00:00:02", "eth_type": "0x0800", "ipv4.frag": "no"])
        #expect(report.flows[0].used == 0.5 && report.flows[0].age == 1 && report.flows[0].packets == 2)
        #expect(report.totals == XDPPathReport(hits: 21, misses: 3, punted: 1))

        let br2 = try await h.ok("dump-xdp-cache", ["bridge": "br2"]).decode(XDPCacheReport.self)
        #expect(br2.flows.count == 1 && br2.ports.map(\.name) == ["vnet0"] && br2.totals == XDPPathReport(hits: 7))
        let counters = try await h.ok("dump-xdp-cache", ["flows": false]).decode(XDPCacheReport.self)
        #expect(counters.flows.isEmpty && counters.totals == report.totals)
    }

    @Test func hostileParams() async throws {
        let h = try await harness()
        h.datapath.xdpCache = Self.input
        #expect(await h.call("dump-xdp-cache", ["bridge": "br9"]) == .failure(.noSuchBridge("br9")))
        guard case .failure(let bad) = await h.call("dump-xdp-cache", ["bridge": "a/b"]) else {
            Issue.record("a bad name was accepted")
            return
        }
        #expect(bad.code == RPCError.invalidParams("").code)
        guard case .failure(let wrongType) = await h.call("dump-xdp-cache", ["flows": "yes"]) else {
            Issue.record("flows must be a boolean")
            return
        }
        #expect(wrongType.code == RPCError.invalidParams("").code)
    }

    @Test func dumpPortsPathCounts() async throws {
        let h = try await harness()
        h.datapath.xdpCache = Self.input
        let report = try await h.ok("dump-ports", ["bridge": "br0"]).decode(DumpPortsReport.self)
        let byName = Dictionary(uniqueKeysWithValues: report.ports.map { ($0.name, $0.statistics.xdp) })
        #expect(byName["eth1"] == XDPPathReport(hits: 10, misses: 2, punted: 1))
        #expect(byName["eth2"] == XDPPathReport(hits: 4, misses: 1))
        // The internal port has no XDP program: no line.
        #expect(byName["br0"] == .some(nil))
        let one = try await h.ok("dump-ports", ["bridge": "br2", "port": "vnet0"]).decode(DumpPortsReport.self)
        #expect(one.ports.map(\.statistics.xdp) == [XDPPathReport(hits: 7)])
    }
}
