import Testing

@testable import VSwiftProtocol

/// `vswiftctl dump-xdp-cache` and the XDP path lines of dump-ports and dump-workers.
@Suite struct XDPCacheTextFormatTests {
    private let report = XDPCacheReport(
        enabled: true, entries: 3, capacity: 65536, masks: 2, maxMasks: 32, installed: 5,
        refused: ["stale": 1, "duplicate": 2, "full": 3], removed: ["revalidation": 2], handoverRingFull: 4,
        forgetOverflow: 6,
        totals: XDPPathReport(hits: 115, misses: 7, punted: 1, failed: 1),
        ports: [XDPCachePortEntry(bridge: "br0", name: "vp1", path: XDPPathReport(hits: 115, misses: 7, punted: 1, failed: 1))],
        flows: [
            XDPCacheFlowEntry(bridge: "br0", match: "in_port(1),eth(dst=52:54:00:1b:ea:d5),eth_type(0x0800),ipv4(frag=no)",
                              key: ["in_port": "1", "eth.dst": "52:54:00:1b:ea:d5", "eth_type": "0x0800", "ipv4.frag": "no"],
                              actions: "output:2", ruleID: 7, packets: 12, bytes: 1176, used: 0.532, age: 3),
            XDPCacheFlowEntry(bridge: "br0", match: "in_port(2),eth_type(0x0806)", key: ["in_port": "2", "eth_type": "0x0806"],
                              actions: "drop", age: 0.25),
            XDPCacheFlowEntry(bridge: "br2", match: "in_port(1),eth_type(0x0800),ipv4(dst=10.1.2.0/255.255.255.0,frag=no)",
                              key: [:], actions: "set_tunnel:0x5,output:2", packets: 1, bytes: 98, used: 0, age: 1.5),
        ])

    @Test func offSaysSo() {
        #expect(formatDumpXDPCache(XDPCacheReport(enabled: false)) == "xdp cache: off (vswiftd --xdp-cache on enables it)\n")
        #expect(formatXDPWorkerTotals(XDPCacheReport(enabled: false)) == "xdp cache: off\n")
    }

    @Test func headerThenEntriesAsDpctlDumpFlows() {
        #expect(formatDumpXDPCache(report) == """
            xdp cache: on, entries=3/65536, masks=2/32, installed=5, refused (duplicate=2, full=3, stale=1), removed (revalidation=2), handover_ring_full=4, forget_overflow=6
            xdp path: hit=115, miss=7, punt=1, fail=1
            bridge br0:
              in_port(1),eth(dst=52:54:00:1b:ea:d5),eth_type(0x0800),ipv4(frag=no), packets:12, bytes:1176, used:0.532s, age:3.000s, actions:output:2
              in_port(2),eth_type(0x0806), packets:0, bytes:0, used:never, age:0.250s, actions:drop
            bridge br2:
              in_port(1),eth_type(0x0800),ipv4(dst=10.1.2.0/255.255.255.0,frag=no), packets:1, bytes:98, used:0.000s, age:1.500s, actions:set_tunnel:0x5,output:2

            """)
        var cut = report
        cut.flows = []
        cut.truncated = true
        #expect(formatDumpXDPCache(cut).hasSuffix("xdp path: hit=115, miss=7, punt=1, fail=1\n(more entries than the cache's capacity: the rest left out)\n"))
    }

    @Test func jsonCarriesTheSameFields() throws {
        let json = try JSONValue(encoding: report)
        #expect(try json.decode(XDPCacheReport.self) == report)
        guard case .object(let top) = json, case .array(let flows)? = top["flows"], case .object(let first)? = flows.first,
              case .object(let totals)? = top["totals"] else {
            Issue.record("not the expected shape: \(json)")
            return
        }
        #expect(Set(top.keys) == ["enabled", "entries", "capacity", "masks", "maxMasks", "installed", "refused", "removed",
                                  "handoverRingFull", "forgetOverflow", "totals", "ports", "flows", "truncated"])
        // A full cache and full hand-over rings apart (DESIGN.md, the report seam).
        #expect(try top["handoverRingFull"]?.decode(UInt64.self) == 4)
        #expect(try top["forgetOverflow"]?.decode(UInt64.self) == 6)
        #expect(try top["refused"]?.decode([String: UInt64].self)["full"] == 3)
        #expect(Set(first.keys) == ["bridge", "match", "key", "actions", "ruleID", "packets", "bytes", "used", "age"])
        #expect(Set(totals.keys) == ["hits", "misses", "punted", "failed"])
        // Never hit: no `used`.
        guard case .object(let second) = flows[1] else { return }
        #expect(second["used"] == nil)
    }

    /// A newer vswiftctl reads an older vswiftd's report: the counters added since the first
    /// release (handoverRingFull, forgetOverflow) decode as 0 when absent; the encoded form keeps them.
    @Test func countersAddedLaterDecodeAsZeroWhenAbsent() throws {
        guard case .object(var older) = try JSONValue(encoding: report) else {
            Issue.record("not an object")
            return
        }
        older["handoverRingFull"] = nil
        older["forgetOverflow"] = nil
        var expected = report
        expected.handoverRingFull = 0
        expected.forgetOverflow = 0
        #expect(try JSONValue.object(older).decode(XDPCacheReport.self) == expected)
        // A key of the first release is still required.
        older["installed"] = nil
        #expect(throws: (any Error).self) { try JSONValue.object(older).decode(XDPCacheReport.self) }
        // Round trip: the same value, the same JSON.
        let json = try JSONValue(encoding: report)
        let decoded = try json.decode(XDPCacheReport.self)
        #expect(decoded == report)
        #expect(try JSONValue(encoding: decoded) == json)
    }

    @Test func dumpPortsAddsOneLinePerDevicePort() throws {
        var stats = PortStatisticsReport(rxPackets: 123, txPackets: 5)
        stats.xdp = XDPPathReport(hits: 115, misses: 7, punted: 1)
        let text = formatDumpPorts(DumpPortsReport(bridge: "br0", ports: [
            PortStatisticsEntry(ofport: 1, name: "vp1", statistics: stats),
            PortStatisticsEntry(ofport: ofportLocal, name: "br0", statistics: PortStatisticsReport()),
        ]))
        #expect(text == """
            OFPST_PORT reply (xid=0x2): 2 ports
              port  1: rx pkts=123, bytes=0, drop=0, errs=0, frame=0, over=0, crc=0
                       tx pkts=5, bytes=0, drop=0, errs=0, coll=0
                       xdp_cache hit=115, miss=7, punt=1, fail=0
              port LOCAL: rx pkts=0, bytes=0, drop=0, errs=0, frame=0, over=0, crc=0
                       tx pkts=0, bytes=0, drop=0, errs=0, coll=0

            """)
        // Without the cache the field is absent from the JSON (older readers see what they saw).
        #expect(try JSONValue(encoding: PortStatisticsReport()).decode(PortStatisticsReport.self).xdp == nil)
    }

    @Test func dumpWorkersTotals() {
        #expect(formatXDPWorkerTotals(report) == """
            xdp cache (in the kernel, every device port):
              packets forwarded in XDP: 115
              packets sent to the workers: 8 (misses 7, punted 1)
              packets dropped in XDP: 1
              misses not handed over (hand-over rings full): 4
              forgets not sent back (forget rings full): 6

            """)
    }

    @Test func methodAndParams() throws {
        #expect(ControlMethod(rawValue: "dump-xdp-cache") == .dumpXDPCache)
        #expect(!ControlMethod.dumpXDPCache.changesConfiguration && !ControlMethod.dumpXDPCache.isFlowChange)
        #expect(try JSONValue.object([:]).decode(DumpXDPCacheParams.self) == DumpXDPCacheParams())
        #expect(try JSONValue(encoding: DumpXDPCacheParams(bridge: "br0", flows: false))
            == .object(["bridge": .string("br0"), "flows": .bool(false)]))
    }
}
