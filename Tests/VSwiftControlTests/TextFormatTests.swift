import Testing
import VSwiftControl
import VSwiftDatapath

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

    @Test func dumpPortsLikeOVS() {
        let report = DumpPortsReport(
            bridge: "br2",
            ports: [
                PortStatisticsEntry(
                    ofport: 1, name: "vnet0", statistics: PortStatistics(rxPackets: 609, rxBytes: 58706, txPackets: 341, txBytes: 33418)),
                PortStatisticsEntry(
                    ofport: 12, name: "lisp0",
                    statistics: PortStatistics(rxPackets: 1, rxBytes: 2, rxDropped: 3, rxErrors: 4, txPackets: 5, txBytes: 6, txDropped: 7, txErrors: 8)),
                PortStatisticsEntry(
                    ofport: ofportLocal, name: "br2", statistics: PortStatistics(rxPackets: 6, rxBytes: 468, txPackets: 296, txBytes: 28032)),
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
        let xsk = XSKStatistics(
            rxDropped: 1, rxInvalidDescs: 2, txInvalidDescs: 3, rxRingFull: 4, rxFillRingEmptyDescs: 5, txRingEmptyDescs: 6)
        let report = DumpPortsReport(
            bridge: "br0",
            ports: [PortStatisticsEntry(ofport: 3, name: "veth0", statistics: PortStatistics(rxPackets: .max, xsk: xsk))])
        #expect(
            formatDumpPorts(report) == """
                OFPST_PORT reply (xid=0x2): 1 ports
                  port  3: rx pkts=18446744073709551615, bytes=0, drop=0, errs=0, frame=0, over=0, crc=0
                           tx pkts=0, bytes=0, drop=0, errs=0, coll=0
                           xsk rx_dropped=1, rx_ring_full=4, rx_fill_empty=5, rx_invalid=2, tx_invalid=3, tx_ring_empty=6

                """)
    }

    @Test func emptyDumpPorts() {
        #expect(formatDumpPorts(DumpPortsReport(bridge: "br0", ports: [])) == "OFPST_PORT reply (xid=0x2): 0 ports\n")
    }

    @Test func json() {
        #expect(formatJSON(["b": 1, "a": [true]]) == "{\n  \"a\": [\n    true\n  ],\n  \"b\": 1\n}\n")
    }
}
