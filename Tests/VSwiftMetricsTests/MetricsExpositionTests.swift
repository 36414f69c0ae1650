import Testing
import VSwiftControl
import VSwiftMetrics
import VSwiftProtocol

@Suite("Metrics exposition")
struct MetricsExpositionTests {
    static let snapshot = MetricsSnapshot(
        bridges: [.init(name: "br2", ports: 3, flows: 4)],
        ports: [
            .init(
                bridge: "br2", name: "vnet0", type: "",
                statistics: PortStatisticsReport(
                    rxPackets: 10, rxBytes: 980, rxDropped: 1, txPackets: 9, txBytes: 882,
                    xsk: XSKStatisticsReport(rxRingFull: 2, rxFillRingEmptyDescs: 3))),
            .init(
                bridge: "br2", name: "lisp0", type: "lisp",
                statistics: PortStatisticsReport(
                    tunnel: TunnelStatisticsReport(encapsulated: 7, decapsulated: 6, refusedOffUnderlay: 4, droppedNoNeighbour: 5))),
            .init(bridge: "", name: "eth9", type: "underlay", statistics: PortStatisticsReport(rxPackets: 1)),
        ],
        workers: [.init(worker: 0, cpu: 1, rxPackets: 20, txPackets: 19, rounds: 100, busyCycles: 5000, idleCycles: 9000, systemCallCycles: 700, cacheHits: 15, cacheMisses: 5)],
        topFlows: [
            .init(bridge: "br2", priority: 3, cookie: 0x20, match: "dl_dst=02:00:00:00:00:00", packets: 6, bytes: 588),
            .init(bridge: "br2", priority: 0, cookie: 0, match: "", packets: 2, bytes: 84),
        ])

    static func lines(_ snapshot: MetricsSnapshot = snapshot) -> Set<String> {
        Set(String(decoding: MetricsExposition.render(snapshot), as: UTF8.self).split(separator: "\n").map(String.init))
    }

    @Test("ports: rx/tx packets, bytes, drops, errors and the AF_XDP ring statistics, labelled by bridge, port and type")
    func ports() {
        let lines = Self.lines()
        #expect(lines.contains(#"vswift_port_rx_packets_total{bridge="br2",port="vnet0",type=""} 10"#))
        #expect(lines.contains(#"vswift_port_rx_bytes_total{bridge="br2",port="vnet0",type=""} 980"#))
        #expect(lines.contains(#"vswift_port_rx_dropped_total{bridge="br2",port="vnet0",type=""} 1"#))
        #expect(lines.contains(#"vswift_port_tx_packets_total{bridge="br2",port="vnet0",type=""} 9"#))
        #expect(lines.contains(#"vswift_port_xsk_rx_ring_full_total{bridge="br2",port="vnet0",type=""} 2"#))
        #expect(lines.contains(#"vswift_port_xsk_rx_fill_ring_empty_total{bridge="br2",port="vnet0",type=""} 3"#))
        #expect(lines.contains(#"vswift_port_rx_packets_total{bridge="",port="eth9",type="underlay"} 1"#))
        #expect(lines.contains("# TYPE vswift_port_rx_packets_total counter"))
        // A port without AF_XDP sockets has no ring series.
        #expect(!lines.contains { $0.hasPrefix("vswift_port_xsk_") && $0.contains(#"port="lisp0""#) })
    }

    @Test("LISP: encap/decap and one series per drop reason, under dump-ports' names")
    func lisp() {
        let lines = Self.lines()
        #expect(lines.contains(#"vswift_lisp_encapsulated_packets_total{bridge="br2",port="lisp0"} 7"#))
        #expect(lines.contains(#"vswift_lisp_decapsulated_packets_total{bridge="br2",port="lisp0"} 6"#))
        #expect(lines.contains(#"vswift_lisp_dropped_packets_total{bridge="br2",port="lisp0",reason="no_neighbour"} 5"#))
        #expect(lines.contains(#"vswift_lisp_not_decapsulated_packets_total{bridge="br2",port="lisp0",reason="off_underlay"} 4"#))
        for (reason, _) in TunnelStatisticsReport.dropReasons {
            #expect(lines.contains { $0.hasPrefix(#"vswift_lisp_dropped_packets_total{bridge="br2",port="lisp0",reason="\#(reason)"}"#) })
        }
    }

    @Test("LISP control: messages sent, received and refused by name, and the map-cache size")
    func lispControl() {
        var snapshot = Self.snapshot
        #expect(!Self.lines().contains { $0.hasPrefix("vswift_lisp_control_") })
        snapshot.lispControl = .init(sent: ["map-register": 3], received: ["map-notify": 2], refused: ["authentication": 1], mapCacheEntries: 5)
        let lines = Self.lines(snapshot)
        #expect(lines.contains(#"vswift_lisp_control_sent_total{message="map-register"} 3"#))
        #expect(lines.contains(#"vswift_lisp_control_received_total{message="map-notify"} 2"#))
        #expect(lines.contains(#"vswift_lisp_control_refused_total{reason="authentication"} 1"#))
        #expect(lines.contains { $0.hasPrefix("vswift_lisp_map_cache_entries 5") })
    }

    // Gauges are written as swift-prometheus writes doubles ("4.0"), counters as integers.
    @Test("workers: packets, rounds, cycles by kind, exact-match cache hits and misses; bridges; top flows; version")
    func workersBridgesFlows() {
        let lines = Self.lines()
        #expect(lines.contains(#"vswift_worker_cycles_total{kind="busy",worker="0"} 5000"#) || lines.contains(#"vswift_worker_cycles_total{worker="0",kind="busy"} 5000"#))
        #expect(lines.contains { $0.hasPrefix("vswift_worker_cycles_total{") && $0.contains(#"kind="system_call""#) && $0.hasSuffix(" 700") })
        #expect(lines.contains(#"vswift_worker_cache_hits_total{worker="0"} 15"#))
        #expect(lines.contains(#"vswift_worker_cache_misses_total{worker="0"} 5"#))
        #expect(lines.contains(#"vswift_worker_cpu{worker="0"} 1.0"#))
        #expect(lines.contains(#"vswift_bridge_flows{bridge="br2"} 4.0"#))
        #expect(lines.contains(#"vswift_bridge_ports{bridge="br2"} 3.0"#))
        #expect(lines.contains { $0.hasPrefix("vswift_flow_packets_total{") && $0.contains(#"match="dl_dst=02:00:00:00:00:00""#) && $0.hasSuffix(" 6") })
        #expect(lines.contains { $0.hasPrefix("vswift_flow_bytes_total{") && $0.contains(#"cookie="0x20""#) && $0.hasSuffix(" 588") })
        #expect(lines.contains(#"vswift_build_info{version="\#(VSwiftVersion.current)"} 1.0"#))
    }

    @Test("every series has HELP and TYPE; a name a port may have (quote, backslash) is escaped in its label")
    func helpTypeAndEscaping() {
        // The kernel allows " and \ in interface names (dev_valid_name), so a label value may hold them.
        let hostile = MetricsSnapshot(ports: [.init(bridge: "b", name: #"a"b\c"#, type: "", statistics: PortStatisticsReport(rxPackets: 1))])
        let lines = Self.lines(hostile)
        #expect(lines.contains(#"vswift_port_rx_packets_total{bridge="b",port="a\"b\\c",type=""} 1"#))
        let all = Self.lines()
        let names = Set(all.filter { !$0.hasPrefix("#") }.map { String($0.prefix { $0 != "{" && $0 != " " }) })
        for name in names {
            #expect(all.contains { $0.hasPrefix("# HELP \(name) ") }, "no HELP for \(name)")
            #expect(all.contains { $0.hasPrefix("# TYPE \(name) ") }, "no TYPE for \(name)")
        }
        for line in all where line.hasPrefix("# TYPE ") && line.hasSuffix(" counter") {
            #expect(line.split(separator: " ")[2].hasSuffix("_total"), "counter without _total: \(line)")
        }
    }

    @Test("a deleted port's series end: each scrape renders only what the snapshot holds")
    func freshEachScrape() {
        _ = Self.lines()
        let lines = Self.lines(MetricsSnapshot())
        #expect(!lines.contains { $0.contains("vnet0") })
    }
}

@Suite("Metrics address (--metrics)")
struct MetricsAddressTests {
    @Test("HOST:PORT and [IPv6]:PORT")
    func valid() throws {
        #expect(try MetricsAddress("127.0.0.1:9477") == MetricsAddress("127.0.0.1:9477"))
        let v4 = try MetricsAddress("0.0.0.0:9477")
        #expect(v4.host == "0.0.0.0" && v4.port == 9477)
        let v6 = try MetricsAddress("[::1]:80")
        #expect(v6.host == "::1" && v6.port == 80)
        #expect(try MetricsAddress("localhost:65535").host == "localhost")
    }

    @Test("no port, a bad port, no host, an unbracketed IPv6 address are refused with a reason")
    func invalid() {
        #expect(throws: MetricsAddress.Problem.noPort("9477")) { try MetricsAddress("9477") }
        #expect(throws: MetricsAddress.Problem.badPort("h:0")) { try MetricsAddress("h:0") }
        #expect(throws: MetricsAddress.Problem.badPort("h:65536")) { try MetricsAddress("h:65536") }
        #expect(throws: MetricsAddress.Problem.badPort("h:x")) { try MetricsAddress("h:x") }
        #expect(throws: MetricsAddress.Problem.noHost(":9477")) { try MetricsAddress(":9477") }
        #expect(throws: MetricsAddress.Problem.unbracketedIPv6("::1:9477")) { try MetricsAddress("::1:9477") }
    }
}
