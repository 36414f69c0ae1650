import Testing
import VSwiftProtocol

@Suite struct TextFormatTests {
    @Test func showLikeOVS() {
        let report = ShowReport(
            systemID: "390982aa-7bf6-4dfd-84eb-76fe7654e73d",
            bridges: [
                BridgeDescription(
                    name: "br2",
                    ports: [
                        PortDescription(name: "vnet0", ofport: 1),
                        PortDescription(name: "lisp0", ofport: 2, type: "lisp", options: ["remote_ip": "192.168.1.252"]),
                        PortDescription(name: "br2", ofport: ofportLocal, type: "internal"),
                    ])
            ])
        #expect(
            formatShow(report) == """
                390982aa-7bf6-4dfd-84eb-76fe7654e73d
                    Bridge "br2"
                        Port "vnet0"
                            Interface "vnet0"
                        Port "lisp0"
                            Interface "lisp0"
                                type: lisp
                                options: {remote_ip="192.168.1.252"}
                        Port "br2"
                            Interface "br2"
                                type: internal

                """)
    }

    @Test func showAddsDatapathModeAndSortsOptions() {
        let report = ShowReport(
            systemID: "id",
            bridges: [
                BridgeDescription(name: "br0", ports: []),
                BridgeDescription(
                    name: "br1",
                    ports: [
                        PortDescription(name: "veth0", ofport: 1, datapathMode: "xdp=native, bind=copy, queues=1"),
                        PortDescription(
                            name: "lisp1", ofport: 2, type: "lisp",
                            options: ["remote_ip": "10.0.0.2", "key": "5", "local_ip": "10.0.0.1"],
                            datapathMode: "encap"),
                    ]),
            ])
        #expect(
            formatShow(report) == """
                id
                    Bridge "br0"
                    Bridge "br1"
                        Port "veth0"
                            Interface "veth0"
                                datapath: xdp=native, bind=copy, queues=1
                        Port "lisp1"
                            Interface "lisp1"
                                type: lisp
                                options: {key="5", local_ip="10.0.0.1", remote_ip="10.0.0.2"}
                                datapath: encap

                """)
        #expect(formatShow(ShowReport(systemID: "id", bridges: [])) == "id\n")
    }

    @Test func dumpWorkersLikePMDStats() throws {
        // One worker, 100 packets, 10,000 accounted cycles.
        let reports = [
            WorkerReport(
                worker: 0, cpu: 1, rxPackets: 100, txPackets: 99, rounds: 7, busyCycles: 5_740, idleCycles: 1_000,
                systemCallCycles: 3_260)
        ]
        #expect(reports[0].busyCyclesPerPacket == 57.4)
        #expect(
            formatDumpWorkers(reports) == """
                worker 0 cpu 1:
                  packets received: 100
                  packets sent: 99
                  processing cycles: 5740 (57.40%)
                  idle cycles: 1000 (10.00%)
                  system call cycles: 3260 (32.60%)
                  rounds: 7
                  avg processing cycles per packet: 57.40

                """)
        // A worker that has done nothing yet: no shares, no per-packet figure.
        let idle = WorkerReport(worker: 1)
        #expect(formatDumpWorkers([idle]) == "worker 1:\n  packets received: 0\n  packets sent: 0\n  processing cycles: 0\n"
            + "  idle cycles: 0\n  system call cycles: 0\n  rounds: 0\n")
    }

    @Test func dumpPortsLikeOVS() {
        let report = DumpPortsReport(
            bridge: "br2",
            ports: [
                PortStatisticsEntry(
                    ofport: 1, name: "vnet0", statistics: PortStatisticsReport(rxPackets: 609, rxBytes: 58706, txPackets: 341, txBytes: 33418)),
                PortStatisticsEntry(
                    ofport: 12, name: "lisp0",
                    statistics: PortStatisticsReport(rxPackets: 1, rxBytes: 2, rxDropped: 3, rxErrors: 4, txPackets: 5, txBytes: 6, txDropped: 7, txErrors: 8)),
                PortStatisticsEntry(
                    ofport: ofportLocal, name: "br2", statistics: PortStatisticsReport(rxPackets: 6, rxBytes: 468, txPackets: 296, txBytes: 28032)),
            ])
        #expect(
            formatDumpPorts(report) == """
                OFPST_PORT reply (xid=0x2): 3 ports
                  port  1: rx pkts=609, bytes=58706, drop=0, errs=0, frame=0, over=0, crc=0
                           tx pkts=341, bytes=33418, drop=0, errs=0, coll=0
                  port 12: rx pkts=1, bytes=2, drop=3, errs=4, frame=0, over=0, crc=0
                           tx pkts=5, bytes=6, drop=7, errs=8, coll=0
                  port LOCAL: rx pkts=6, bytes=468, drop=0, errs=0, frame=0, over=0, crc=0
                           tx pkts=296, bytes=28032, drop=0, errs=0, coll=0

                """)
    }

    @Test func dumpPortsWithXSKStatistics() {
        let xsk = XSKStatisticsReport(
            rxDropped: 1, rxInvalidDescs: 2, txInvalidDescs: 3, rxRingFull: 4, rxFillRingEmptyDescs: 5, txRingEmptyDescs: 6)
        let report = DumpPortsReport(
            bridge: "br0",
            ports: [PortStatisticsEntry(ofport: 3, name: "veth0", statistics: PortStatisticsReport(rxPackets: .max, xsk: xsk))])
        #expect(
            formatDumpPorts(report) == """
                OFPST_PORT reply (xid=0x2): 1 ports
                  port  3: rx pkts=18446744073709551615, bytes=0, drop=0, errs=0, frame=0, over=0, crc=0
                           tx pkts=0, bytes=0, drop=0, errs=0, coll=0
                           xsk rx_dropped=1, rx_ring_full=4, rx_fill_empty=5, rx_invalid=2, tx_invalid=3, tx_ring_empty=6

                """)
    }

    @Test func dumpPortsPrintsTheLISPCounters() {
        let lisp = TunnelStatisticsReport(
            encapsulated: 582, decapsulated: 429, droppedBadInnerLength: 2, droppedEncrypted: 4, droppedCENotECT: 5,
            droppedTTLExpired: 6, refusedOffUnderlay: 3, droppedNoNeighbour: 1)
        let stats = PortStatisticsReport(rxPackets: 429, rxBytes: 42042, txPackets: 582, txBytes: 56532, tunnel: lisp)
        let text = formatDumpPorts(DumpPortsReport(bridge: "br2", ports: [PortStatisticsEntry(ofport: 2, name: "lisp0", statistics: stats)]))
        #expect(text == """
            OFPST_PORT reply (xid=0x2): 1 ports
              port  2: rx pkts=429, bytes=42042, drop=0, errs=0, frame=0, over=0, crc=0
                       tx pkts=582, bytes=56532, drop=0, errs=0, coll=0
                       lisp encap=582, decap=429, drop non_ip=0, bad_header=0, unknown_rloc=0, iid_mismatch=0, bad_inner_length=2, encrypted=4, ce_not_ect=5, ttl_expired=6, no_route=0, no_neighbour=1, too_big=0, map_miss=0, map_drop=0, map_native=0, not_decapsulated off_underlay=3

            """)
    }

    @Test func emptyDumpPorts() {
        #expect(formatDumpPorts(DumpPortsReport(bridge: "br0", ports: [])) == "OFPST_PORT reply (xid=0x2): 0 ports\n")
    }

    /// The seed's `ovs-ofctl dump-flows br2`, line for line (in the seed's order).
    @Test func dumpFlowsLikeOVS() {
        let report = DumpFlowsReport(bridge: "br2", flows: [
            FlowStatisticsEntry(
                duration: 1615.828, packets: 195, bytes: 19110, idleAge: 1378, priority: 3,
                match: "dl_dst=02:00:00:00:00:00", actions: "mod_dl_dst:52:54:00:b8:27:75,output:1"),
            FlowStatisticsEntry(duration: 1717.963, packets: 326, bytes: 31948, idleAge: 1539, priority: 0, match: "", actions: "NORMAL"),
            FlowStatisticsEntry(
                duration: 1519.394, packets: 101, bytes: 9898, idleAge: 1378, priority: 1,
                match: "ip,in_port=1,vlan_tci=0x0000,nw_src=10.1.1.0/24", actions: "output:2"),
            FlowStatisticsEntry(duration: 1667.873, packets: 0, bytes: 0, idleAge: 1667, priority: 2, match: "arp,in_port=1", actions: "NORMAL"),
        ])
        #expect(
            formatDumpFlows(report) == """
                NXST_FLOW reply (xid=0x4):
                 cookie=0x0, duration=1615.828s, table=0, n_packets=195, n_bytes=19110, idle_age=1378, priority=3,dl_dst=02:00:00:00:00:00 actions=mod_dl_dst:52:54:00:b8:27:75,output:1
                 cookie=0x0, duration=1717.963s, table=0, n_packets=326, n_bytes=31948, idle_age=1539, priority=0 actions=NORMAL
                 cookie=0x0, duration=1519.394s, table=0, n_packets=101, n_bytes=9898, idle_age=1378, priority=1,ip,in_port=1,vlan_tci=0x0000,nw_src=10.1.1.0/24 actions=output:2
                 cookie=0x0, duration=1667.873s, table=0, n_packets=0, n_bytes=0, idle_age=1667, priority=2,arp,in_port=1 actions=NORMAL

                """)
    }

    @Test func dumpFlowsWithTimeoutsCookieAndDefaultPriority() {
        let flows = [
            FlowStatisticsEntry(
                cookie: 0x1f, duration: 5.5, packets: 1, bytes: 60, idleTimeout: 60, hardTimeout: 600, idleAge: 2, hardAge: 3,
                priority: 32768, match: "in_port=1", actions: "drop"),
            // Default priority and an empty match: nothing between the stats and the actions.
            FlowStatisticsEntry(duration: 0.0004, packets: 0, bytes: 0, idleAge: 0, priority: 32768, match: "", actions: "drop"),
            // hard_age equal to the duration is not printed (the flow was not modified since).
            FlowStatisticsEntry(duration: 7.25, packets: 0, bytes: 0, hardTimeout: 9, idleAge: 7, hardAge: 7, priority: 0, match: "", actions: "NORMAL"),
        ]
        #expect(formatDumpFlows(DumpFlowsReport(bridge: "br0", flows: flows)) == """
            NXST_FLOW reply (xid=0x4):
             cookie=0x1f, duration=5.500s, table=0, n_packets=1, n_bytes=60, idle_timeout=60, hard_timeout=600, idle_age=2, hard_age=3, in_port=1 actions=drop
             cookie=0x0, duration=0.000s, table=0, n_packets=0, n_bytes=0, idle_age=0, actions=drop
             cookie=0x0, duration=7.250s, table=0, n_packets=0, n_bytes=0, hard_timeout=9, idle_age=7, priority=0 actions=NORMAL

            """)
        #expect(formatDumpFlows(DumpFlowsReport(bridge: "br0", flows: [])) == "NXST_FLOW reply (xid=0x4):\n")
    }

    @Test func showPrintsPortErrors() {
        let report = ShowReport(systemID: "id", bridges: [
            BridgeDescription(name: "br2", ports: [PortDescription(name: "vnet0", ofport: 1, error: "could not attach vnet0: gone")]),
        ])
        #expect(formatShow(report) == """
            id
                Bridge "br2"
                    Port "vnet0"
                        Interface "vnet0"
                            error: "could not attach vnet0: gone"

            """)
    }

    @Test func json() {
        #expect(formatJSON(["b": 1, "a": [true]]) == "{\n  \"a\": [\n    true\n  ],\n  \"b\": 1\n}\n")
    }
}
