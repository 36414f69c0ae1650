import Testing
import VSwiftClassifier
import VSwiftPacket

@testable import VSwiftDatapath

/// A megaflow from (field, value, mask) triples; mask nil: exact.
private func megaflow(_ fields: [(FlowField, UInt64, UInt64?)]) -> (mask: FlowKey, key: FlowKey) {
    var mask = FlowKey(), key = FlowKey()
    for (field, value, fieldMask) in fields {
        let m = fieldMask ?? field.layout.valueMask
        mask.set(field, mask.get(field) | m)
        key.set(field, value & m)
    }
    return (mask, key)
}

private func text(_ fields: [(FlowField, UInt64, UInt64?)]) -> String {
    let flow = megaflow(fields)
    return DatapathFlowText.match(DatapathFlowText.fields(mask: flow.mask, key: flow.key))
}

private let vm1: UInt64 = 0x5254_00b8_2775, vm2: UInt64 = 0x5254_001b_ead5

/// The megaflow text of `vswiftctl dump-xdp-cache`, as `ovs-appctl dpctl/dump-flows` writes
/// datapath flows (lib/odp-util.c): only what the mask keeps, value/mask where partial.
@Suite struct DatapathFlowTextTests {
    @Test func ipv4TCPExact() {
        #expect(text([(.inPort, 2, nil), (.dlSrc, vm1, nil), (.dlDst, vm2, nil), (.dlType, 0x0800, nil),
                      (.nwSrc, 0x0a01_0114, nil), (.nwDst, 0x0a01_011e, nil), (.nwProto, 6, nil), (.nwFrag, 0, nil),
                      (.tpSrc, 1234, nil), (.tpDst, 80, nil)])
            == "in_port(2),eth(src=52:54:00:b8:27:75,dst=52:54:00:1b:ea:d5),eth_type(0x0800),"
            + "ipv4(src=10.1.1.20,dst=10.1.1.30,proto=6,frag=no),tcp(src=1234,dst=80)")
    }

    @Test func partialMasksAreValueSlashMask() {
        #expect(text([(.inPort, 1, nil), (.dlDst, 0x0100_0000_0000, 0x0100_0000_0000), (.dlType, 0x0800, nil),
                      (.nwSrc, 0x0a01_0100, 0xffff_ff00), (.nwProto, 6, nil), (.nwTos, 0x10, 0xfc), (.nwFrag, 0, nil),
                      (.tpDst, 0x50, 0xfff0)])
            == "in_port(1),eth(dst=01:00:00:00:00:00/01:00:00:00:00:00),eth_type(0x0800),"
            + "ipv4(src=10.1.1.0/255.255.255.0,proto=6,tos=16/0xfc,frag=no),tcp(dst=80/0xfff0)")
        // Only in_port and the shape: nothing else written, no empty groups.
        #expect(text([(.inPort, 1, nil), (.dlType, 0x0800, nil), (.nwFrag, 0, nil)]) == "in_port(1),eth_type(0x0800),ipv4(frag=no)")
        // Fragments, and a protocol not matched exactly: no L4 group.
        #expect(text([(.inPort, 1, nil), (.dlType, 0x0800, nil), (.nwFrag, 3, nil), (.nwProto, 17, 0xf0), (.tpDst, 53, nil)])
            == "in_port(1),eth_type(0x0800),ipv4(proto=16/0xf0,frag=later)")
        #expect(text([(.inPort, 1, nil), (.dlType, 0x0800, nil), (.nwFrag, 1, 1)]) == "in_port(1),eth_type(0x0800),ipv4(frag=0x1/0x1)")
    }

    @Test func ipv6AndICMPv6() {
        #expect(text([(.inPort, 1, nil), (.dlType, 0x86dd, nil), (.ipv6SrcHigh, 0x2001_0db8_0000_0000, 0xffff_ffff_0000_0000),
                      (.ipv6DstHigh, 0xfe80_0000_0000_0000, nil), (.ipv6DstLow, 1, nil), (.nwProto, 58, nil), (.nwTTL, 255, nil),
                      (.nwFrag, 0, nil), (.tpSrc, 135, nil), (.tpDst, 0, nil)])
            == "in_port(1),eth_type(0x86dd),ipv6(src=2001:db8::/ffff:ffff::,dst=fe80::1,proto=58,hlimit=255,frag=no),"
            + "icmpv6(type=135,code=0)")
        // An IPv4-mapped IPv6 address stays IPv6 text.
        #expect(text([(.inPort, 1, nil), (.dlType, 0x86dd, nil), (.ipv6SrcHigh, 0, nil), (.ipv6SrcLow, 0xffff_0a00_0001, nil)])
            == "in_port(1),eth_type(0x86dd),ipv6(src=::ffff:10.0.0.1)")
    }

    @Test func arp() {
        #expect(text([(.inPort, 3, nil), (.dlDst, 0xffff_ffff_ffff, nil), (.dlType, 0x0806, nil), (.nwSrc, 0x0a01_0114, nil),
                      (.nwDst, 0x0a01_011e, nil), (.nwProto, 1, nil)])
            == "in_port(3),eth(dst=ff:ff:ff:ff:ff:ff),eth_type(0x0806),arp(sip=10.1.1.20,tip=10.1.1.30,op=1)")
    }

    @Test func vlanTagsAreEncapsulations() {
        // One tag, vid 100, pcp 0.
        #expect(text([(.inPort, 1, nil), (.vlanTCI, 0x1064, nil), (.dlType, 0x0800, nil), (.nwFrag, 0, nil)])
            == "in_port(1),vlan(vid=100,pcp=0),encap(eth_type(0x0800),ipv4(frag=no))")
        // QinQ: the outer tag first; the inner matched on vid only.
        let qinq = megaflow([(.inPort, 1, nil), (.vlanOuterTCI, 0x100a, nil), (.vlanTCI, 0x1014, 0x1fff), (.dlType, 0x0800, nil),
                             (.nwFrag, 0, nil)])
        let groups = DatapathFlowText.fields(mask: qinq.mask, key: qinq.key)
        #expect(DatapathFlowText.match(groups)
            == "in_port(1),vlan(vid=10,pcp=0),encap(vlan(vid=20),encap(eth_type(0x0800),ipv4(frag=no)))")
        let flat = groups.flatMap(\.flat)
        #expect(flat.map(\.name) == ["in_port", "vlan.vid", "vlan.pcp", "encap.vlan.vid", "encap.encap.eth_type", "encap.encap.ipv4.frag"])
        #expect(flat.map(\.value) == ["1", "10", "0", "20", "0x0800", "no"])
        // Untagged (the present bit matched as 0): no vlan group; a partial vid mask.
        #expect(text([(.inPort, 1, nil), (.vlanTCI, 0, 0x1000), (.dlType, 0x0806, nil)]) == "in_port(1),eth_type(0x0806)")
        #expect(text([(.inPort, 1, nil), (.vlanTCI, 0x1005, 0x100f)]) == "in_port(1),vlan(vid=5/0xf)")
    }

    @Test func tunnelLocalPortAndTCPFlags() {
        #expect(text([(.tunId, 5, nil), (.tunSrc, 0xc0a8_01f9, nil), (.inPort, UInt64(OpenFlowPort.local), nil)])
            == "tunnel(tun_id=0x5,src=192.168.1.249),in_port(LOCAL)")
        let base: [(FlowField, UInt64, UInt64?)] = [(.inPort, 1, nil), (.dlType, 0x0800, nil), (.nwProto, 6, nil)]
        #expect(text(base + [(.tcpFlags, 0x002, nil)]) == "in_port(1),eth_type(0x0800),ipv4(proto=6),tcp_flags(syn)")
        #expect(text(base + [(.tcpFlags, 0x012, nil)]) == "in_port(1),eth_type(0x0800),ipv4(proto=6),tcp_flags(syn|ack)")
        #expect(text(base + [(.tcpFlags, 0, nil)]) == "in_port(1),eth_type(0x0800),ipv4(proto=6),tcp_flags(0)")
        #expect(text(base + [(.tcpFlags, 0x002, 0x012)]) == "in_port(1),eth_type(0x0800),ipv4(proto=6),tcp_flags(+syn-ack)")
    }
}

@Suite struct XDPFlowCacheReportTests {
    private func entry(_ bridge: String, port: UInt32, dst: UInt64, actions: [FlowAction], packets: UInt64 = 0,
                       installedAt: UInt64 = 1_000_000_000, lastUsed: UInt64 = 0) -> XDPFlowCacheReport.Input.Entry {
        let flow = megaflow([(.inPort, UInt64(port), nil), (.dlDst, dst, nil), (.dlType, 0x0800, nil), (.nwFrag, 0, nil)])
        return .init(bridge: bridge, mask: flow.mask, maskedKey: flow.key, actions: actions, ruleID: 7,
                     packets: packets, bytes: packets * 98, installedAt: installedAt, lastUsed: lastUsed)
    }

    private var input: XDPFlowCacheReport.Input {
        XDPFlowCacheReport.Input(
            entries: [
                entry("br2", port: 2, dst: vm1, actions: [.output(1)]),
                entry("br0", port: 2, dst: vm2, actions: [], packets: 3, lastUsed: 2_500_000_000),
                entry("br0", port: 1, dst: vm2, actions: [.output(2)], packets: 12, lastUsed: 3_468_000_000),
            ],
            ports: [
                .init(bridge: "br2", name: "vnet0", counters: .init(hits: 100, misses: 1)),
                .init(bridge: "br0", name: "vp2", counters: .init(hits: 3, misses: 2, punted: 1, failed: 0)),
                .init(bridge: "br0", name: "vp1", counters: .init(hits: 12, misses: 4, punted: 0, failed: 1)),
            ],
            statistics: .init(entries: 3, capacity: 8, masks: 1, installed: 5, refused: ["duplicate": 2], removed: ["idle": 2]),
            now: 4_000_000_000)
    }

    @Test func offReportsNothing() {
        let off = XDPFlowCacheReport.off
        #expect(!off.enabled && off.flows.isEmpty && off.ports.isEmpty && off.totals == .init())
    }

    @Test func entriesOrderedWithTimesInSeconds() {
        let report = XDPFlowCacheReport(input)
        #expect(report.enabled && !report.truncated)
        #expect(report.flows.map(\.bridge) == ["br0", "br0", "br2"])
        #expect(report.flows.map { $0.maskedKey.get(.inPort) } == [1, 2, 2])
        #expect(report.flows[0].match == "in_port(1),eth(dst=52:54:00:1b:ea:d5),eth_type(0x0800),ipv4(frag=no)")
        #expect(report.flows[0].used == 0.532 && report.flows[0].age == 3)
        #expect(report.flows[1].used == 1.5 && report.flows[1].actions.isEmpty)
        #expect(report.flows[2].used == nil)  // never hit
        #expect(report.flows[0].packets == 12 && report.flows[0].bytes == 1176 && report.flows[0].ruleID == 7)
        #expect(report.ports.map(\.name) == ["vp1", "vp2", "vnet0"])
        #expect(report.totals == .init(hits: 115, misses: 7, punted: 1, failed: 1))
        #expect(report.statistics.refused == ["duplicate": 2])
    }

    @Test func oneBridgeAndCountersOnly() {
        let br0 = XDPFlowCacheReport(input, bridge: "br0")
        #expect(br0.flows.count == 2 && br0.ports.count == 2)
        #expect(br0.totals == .init(hits: 15, misses: 6, punted: 1, failed: 1))
        let counters = XDPFlowCacheReport(input, bridge: "br2", flows: false)
        #expect(counters.flows.isEmpty && counters.totals == .init(hits: 100, misses: 1))
        #expect(XDPFlowCacheReport(input, bridge: "nosuch").flows.isEmpty)
    }

    /// A clock that went backwards (or an entry stamped after `now`) gives 0, not a huge age.
    @Test func timesNeverNegative() {
        var late = input
        late.now = 0
        let report = XDPFlowCacheReport(late)
        #expect(report.flows.allSatisfy { $0.age == 0 && ($0.used ?? 0) == 0 })
    }

    /// The cache cannot hold more than its capacity, and the report never says more: an owner
    /// that hands over more (a bug) gets a cut report, marked.
    @Test func boundedByCapacity() {
        var big = input
        big.statistics.capacity = 2
        big.entries += (0..<1000).map { entry("br1", port: 1, dst: UInt64($0), actions: [.output(2)]) }
        let report = XDPFlowCacheReport(big)
        #expect(report.flows.count == 2 && report.truncated)
        big.statistics.capacity = 0
        #expect(XDPFlowCacheReport(big).flows.isEmpty)
    }
}
