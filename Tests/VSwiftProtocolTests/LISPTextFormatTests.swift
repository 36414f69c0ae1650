import Testing
@testable import VSwiftProtocol

/// show-lisp and dump-map-cache text, the RLOC argument, and the params' JSON names.
@Suite struct LISPTextFormatTests {
    @Test func rlocArgument() throws {
        #expect(try parseRLOCArgument("192.0.2.1") == RLOCParams(address: "192.0.2.1"))
        #expect(try parseRLOCArgument("2001:db8::1,priority=2,weight=30") == RLOCParams(address: "2001:db8::1", priority: 2, weight: 30))
        #expect(try parseRLOCArgument("192.0.2.1,weight=0,priority=255") == RLOCParams(address: "192.0.2.1", priority: 255, weight: 0))
        for bad in ["", ",priority=1", "192.0.2.1,priority", "192.0.2.1,priority=256", "192.0.2.1,weight=-1",
                    "192.0.2.1,weight=+1", "192.0.2.1,priority=1,priority=2", "192.0.2.1,colour=red", "192.0.2.1,"] {
            #expect(throws: PortArgumentError.self, "\(bad)") { try parseRLOCArgument(bad) }
        }
    }

    @Test func paramsUseTheDocumentedNames() throws {
        let eid = try JSONValue(encoding: EIDParams(instanceID: 1000, prefix: "10.1.0.0/16", rlocs: [RLOCParams(address: "192.0.2.1", priority: 1)]))
        #expect(String(decoding: eid.jsonText(), as: UTF8.self)
            == #"{"instance_id":1000,"prefix":"10.1.0.0/16","rlocs":[{"address":"192.0.2.1","priority":1}]}"#)
        let server = try JSONValue(encoding: AddMapServerParams(address: "192.0.2.1", key: "k", keyID: 1))
        #expect(String(decoding: server.jsonText(), as: UTF8.self) == #"{"address":"192.0.2.1","key":"k","key_id":1}"#)
        let named = try JSONValue(encoding: AddMapServerParams(address: "192.0.2.1", key: "k", keyID: 7, algorithm: "hmac-sha-1-96"))
        #expect(String(decoding: named.jsonText(), as: UTF8.self) == #"{"address":"192.0.2.1","algorithm":"hmac-sha-1-96","key":"k","key_id":7}"#)
        #expect(ControlMethod(rawValue: "add-map-server")?.changesConfiguration == true)
        #expect(ControlMethod(rawValue: "show-lisp")?.changesConfiguration == false)
        #expect(ControlMethod.allCases.filter(\.isLISPChange).map(\.rawValue) == [
            "add-map-server", "del-map-server", "add-map-resolver", "del-map-resolver", "add-eid", "del-eid", "add-map-cache", "del-map-cache",
        ])
        #expect(ControlMethod.allCases.allSatisfy { !$0.isLISPChange || !$0.isFlowChange })
    }

    @Test func showLISPText() {
        let report = ShowLISPReport(
            controlPort: 4342,
            mapServers: [
                MapServerReport(address: "192.0.2.1", keyID: 0, state: "registered", lastNotifyAge: 12.7, registersSent: 5, notifiesAccepted: 4),
                MapServerReport(address: "2001:db8::1", keyID: 7, algorithmID: 1, algorithm: "hmac-sha-1-96"),
            ],
            mapResolvers: ["192.0.2.1"],
            localEIDs: [
                LocalEIDReport(instanceID: 1000, prefix: "10.1.0.0/16", rlocs: [RLOCReport(address: "192.0.2.10", priority: 1, weight: 100)], defaultRLOCs: true),
                LocalEIDReport(instanceID: 1000, prefix: "fd00:1::/48", rlocs: [RLOCReport(address: "2001:db8::10", priority: 2, weight: 50)]),
                LocalEIDReport(instanceID: 7, prefix: "10.7.0.0/16", rlocs: [], defaultRLOCs: true),
            ],
            staticMapCache: [LocalEIDReport(instanceID: 1000, prefix: "10.2.0.0/16", rlocs: [RLOCReport(address: "192.0.2.20", priority: 1, weight: 100)])],
            sent: ["map-register": 5, "map-request": 2], received: ["map-notify": 4], refused: ["authentication": 1],
            socket: ["datagrams_received": 5])
        #expect(formatShowLISP(report) == """
            LISP control: udp port 4342, IPv4 and IPv6
                Map-Server 192.0.2.1
                    key id: 0, algorithm: hmac-sha-256-128 (2)
                    state: registered (last Map-Notify 12s ago), registers sent 5, notifies accepted 4
                Map-Server 2001:db8::1
                    key id: 7, algorithm: hmac-sha-1-96 (1)
                Map-Resolver 192.0.2.1
                EID [1000] 10.1.0.0/16
                    rloc 192.0.2.10 priority 1 weight 100 (the host's address toward a map-server)
                EID [1000] fd00:1::/48
                    rloc 2001:db8::10 priority 2 weight 50
                EID [7] 10.7.0.0/16
                    rloc: none yet (the host's address toward a map-server: no route found)
                Map-Cache [1000] 10.2.0.0/16 (static)
                    rloc 192.0.2.20 priority 1 weight 100
                sent: map-register=5 map-request=2
                received: map-notify=4
                refused: authentication=1
                socket: datagrams_received=5

            """)
        #expect(formatShowLISP(ShowLISPReport()) == "LISP control: off (nothing configured)\n")
        #expect(formatShowLISP(ShowLISPReport(controlError: "cannot bind UDP port 4342 on all addresses: Address already in use"))
            == "LISP control: not listening: cannot bind UDP port 4342 on all addresses: Address already in use\n")
    }

    /// `show` carries the LISP section under the system id, indented as a bridge is: the
    /// configuration and registration state, no counters, static map-cache entries counted.
    @Test func showCarriesTheLISPSection() throws {
        var lisp = ShowLISPReport(
            controlPort: 4342,
            mapServers: [MapServerReport(address: "192.0.2.1", keyID: 0, algorithmID: 1, algorithm: "hmac-sha-1-96", state: "registered", lastNotifyAge: 3.2, registersSent: 2, notifiesAccepted: 2)],
            mapResolvers: ["192.0.2.1"],
            localEIDs: [LocalEIDReport(instanceID: 1000, prefix: "10.1.0.0/16", rlocs: [RLOCReport(address: "192.0.2.10", priority: 1, weight: 100)])])
        lisp.staticMapCacheCount = 100_000
        let report = ShowReport(
            systemID: "id", bridges: [BridgeDescription(name: "br0", ports: [])],
            underlays: [UnderlayDescription(name: "eth0", datapathMode: "")], lisp: lisp)
        #expect(formatShow(report) == """
            id
                Bridge "br0"
                Underlay "eth0"
                LISP control: udp port 4342, IPv4 and IPv6
                    Map-Server 192.0.2.1
                        key id: 0, algorithm: hmac-sha-1-96 (1)
                        state: registered (last Map-Notify 3s ago), registers sent 2, notifies accepted 2
                    Map-Resolver 192.0.2.1
                    EID [1000] 10.1.0.0/16
                        rloc 192.0.2.10 priority 1 weight 100
                    Map-Cache: 100000 static entries (show-lisp lists them)

            """)
        // No LISP configured: `show` is OVS's, unchanged.
        #expect(formatShow(ShowReport(systemID: "id", bridges: [])) == "id\n")
        // The JSON names, and a report from before the section decodes as nothing configured.
        let json = String(decoding: try JSONValue(encoding: report).jsonText(), as: UTF8.self)
        #expect(json.contains(#""static_map_cache_count":100000"#) && json.contains(#""lisp":{"#))
        let old = try JSONValue(encoding: ShowReport(systemID: "id", bridges: []))
        #expect(!String(decoding: old.jsonText(), as: UTF8.self).contains("lisp"))
        #expect(try old.decode(ShowReport.self).lisp == nil)
    }

    @Test func dumpMapCacheText() throws {
        let report = DumpMapCacheReport(entries: [
            MapCacheEntryReport(
                instanceID: 1000, eidPrefix: "10.2.0.0/16",
                rlocs: [.init(address: "192.0.2.20", priority: 1, weight: 60, status: "up"), .init(address: "192.0.2.21", priority: 1, weight: 40, status: "down")],
                ttlLeft: 1439, ttlMinutes: 1440, source: "map-reply", idle: 3),
            MapCacheEntryReport(instanceID: 1000, eidPrefix: "10.3.0.0/16", rlocs: [], action: "natively-forward", ttlLeft: 59, ttlMinutes: 1,
                                source: "map-reply", idle: 0, refreshAttempts: 2),
            MapCacheEntryReport(instanceID: 1000, eidPrefix: "fd00:2::/48", rlocs: [.init(address: "2001:db8::2", priority: 1, weight: 100, status: "up")],
                                ttlLeft: nil, ttlMinutes: 0, source: "static", idle: 9),
        ])
        #expect(formatDumpMapCache(report) == """
            [1000] 10.2.0.0/16 map-reply ttl 1439s left of 1440m idle 3s
                rloc 192.0.2.20 priority 1 weight 60 up
                rloc 192.0.2.21 priority 1 weight 40 down
            [1000] 10.3.0.0/16 map-reply negative natively-forward ttl 59s left of 1m idle 0s refreshing (2 requests)
            [1000] fd00:2::/48 static ttl never idle 9s
                rloc 2001:db8::2 priority 1 weight 100 up

            """)
        // The JSON keys are those of the server's MapCacheReportEntry.
        let text = String(decoding: try JSONValue(encoding: report).jsonText(), as: UTF8.self)
        #expect(text.contains(#""eid_prefix":"10.2.0.0/16""#) && text.contains(#""ttl_left":1439"#) && text.contains(#""refresh_attempts":2"#))
        #expect(try JSONValue(encoding: report).decode(DumpMapCacheReport.self) == report)
    }
}
