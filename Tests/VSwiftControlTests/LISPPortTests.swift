import Foundation
import Testing
import VSwiftDatapath
import VSwiftPacket
import VSwiftProtocol
@testable import VSwiftControl

@Suite("LISP ports and underlay devices in the control plane")
struct LISPPortTests {
    func addLISP(_ h: Harness, _ options: [String: String], port: String = "lisp0") async -> Result<JSONValue, RPCError> {
        await h.call("add-port", [
            "bridge": "br2", "port": .string(port), "type": "lisp",
            "options": .object(options.mapValues { .string($0) }),
        ])
    }

    @Test func theSeedsPortIsAddedAndShownAsOVSDoes() async throws {
        let h = Harness()
        try await h.ok("add-br", ["bridge": "br2"])
        try await h.ok("add-port", ["bridge": "br2", "port": "vnet0"])
        _ = try await addLISP(h, ["remote_ip": "192.168.1.252"]).get()
        #expect(h.datapath.tunnelOptions["lisp0"] == LISPPortOptions(remote: .address(IPAddress("192.168.1.252")!)))
        let text = formatShow(await h.service.show())
        #expect(text.contains("""
                    Port "lisp0"
                        Interface "lisp0"
                            type: lisp
                            options: {remote_ip="192.168.1.252"}

            """), "\(text)")
        #expect(h.datapath.portNumbers["br2"]?["lisp0"] == 2)
        // Saved with type and options, so a restart brings it back.
        let saved = await h.service.configuration().bridges[0].ports
        #expect(saved.last == PortConfig(name: "lisp0", ofport: 2, type: "lisp", options: ["remote_ip": "192.168.1.252"]))
    }

    @Test(arguments: [
        ([:], "options:remote_ip"),
        (["remote_ip": "10.0.0.300"], "10.0.0.300"),
        (["remote_ip": "224.0.0.1"], "unicast"),
        (["remote_ip": "0.0.0.0"], "unicast"),
        (["remote_ip": "10.0.0.1", "key": "16777216"], "24 bits"),
        (["remote_ip": "10.0.0.1", "key": "-1"], "instance id"),
        (["remote_ip": "10.0.0.1", "dst_port": "0"], "UDP port"),
        (["remote_ip": "10.0.0.1", "dst_port": "70000"], "UDP port"),
        (["remote_ip": "10.0.0.1", "local_ip": "fd00::1"], "families"),
        (["remote_ip": "10.0.0.1", "csum": "true"], "no option \"csum\""),
        (["remote_ip": "10.0.0.1", "ttl": "0"], "options:ttl=\"0\" is not a TTL"),
        (["remote_ip": "10.0.0.1", "ttl": "256"], "1 to 255"),
        (["remote_ip": "10.0.0.1", "ttl": "Inherit"], "options:ttl"),
        (["remote_ip": "10.0.0.1", "tos": "1"], "ECN is always inherited"),
        (["remote_ip": "10.0.0.1", "tos": "0x103"], "options:tos"),
        (["remote_ip": "10.0.0.1", "tos": "-4"], "options:tos"),
    ] as [([String: String], String)])
    func badOptionsAreRefusedByName(_ options: [String: String], _ expected: String) async throws {
        let h = Harness()
        try await h.ok("add-br", ["bridge": "br2"])
        let result = await addLISP(h, options)
        guard case .failure(let error) = result else {
            Issue.record("accepted \(options)")
            return
        }
        #expect(error.message.contains(expected), "\(error.message)")
        #expect(error.message.contains("lisp0"))
        // Nothing half-added.
        #expect(h.datapath.ports["lisp0"] == nil)
        #expect(await h.service.show().bridges[0].ports.map(\.name) == ["br2"])
    }

    /// OVS's `options:ttl` and `options:tos`: applied to the datapath's port, shown, saved with the
    /// port and brought back by a restore; a configuration saved before they existed loads with
    /// both inherited (RFC 9300 §5.3).
    @Test func ttlAndTOSOptionsAreAppliedShownSavedAndRestored() async throws {
        let h = Harness()
        try await h.ok("add-br", ["bridge": "br2"])
        _ = try await addLISP(h, ["remote_ip": "192.168.1.252", "ttl": "5", "tos": "0xb8"]).get()
        _ = try await addLISP(h, ["remote_ip": "192.168.1.253", "ttl": "inherit", "tos": "inherit"], port: "lisp1").get()
        #expect(h.datapath.tunnelOptions["lisp0"]?.outerFields == LISP.OuterFields(ttl: 5, tos: 0xb8))
        #expect(h.datapath.tunnelOptions["lisp1"]?.outerFields == LISP.OuterFields())
        let text = formatShow(await h.service.show())
        #expect(text.contains(#"options: {remote_ip="192.168.1.252", tos="0xb8", ttl="5"}"#), "\(text)")
        let config = await h.service.configuration()
        #expect(config.bridges[0].ports.first { $0.name == "lisp0" }?.options
            == ["remote_ip": "192.168.1.252", "ttl": "5", "tos": "0xb8"])
        let restored = Harness()
        try await restored.service.restore(config)
        #expect(restored.datapath.tunnelOptions["lisp0"] == h.datapath.tunnelOptions["lisp0"])
        #expect(restored.datapath.tunnelOptions["lisp1"] == h.datapath.tunnelOptions["lisp1"])
        let old = SwitchConfig(systemID: "id", bridges: [
            BridgeConfig(name: "br2", nextOfport: 2,
                         ports: [PortConfig(name: "lisp0", ofport: 1, type: "lisp", options: ["remote_ip": "192.168.1.252"])],
                         flows: []),
        ])
        let older = Harness()
        try await older.service.restore(old)
        #expect(older.datapath.tunnelOptions["lisp0"]?.outerFields == LISP.OuterFields())
    }

    @Test func underlayDevicesAreAddedShownSavedAndRemoved() async throws {
        let h = Harness()
        try await h.ok("add-underlay", ["device": "eth1"])
        #expect(h.datapath.ports["eth1"] == "")
        #expect(await h.service.show().underlays.map(\.name) == ["eth1"])
        #expect(formatShow(await h.service.show()).contains("    Underlay \"eth1\"\n"))
        #expect(await h.service.configuration().underlays == ["eth1"])
        // Not twice, not a missing device, not as a bridge port as well.
        await #expect(throws: RPCError.self) { try await h.ok("add-underlay", ["device": "eth1"]) }
        await #expect(throws: RPCError.self) { try await h.ok("add-underlay", ["device": "nosuch"]) }
        try await h.ok("add-br", ["bridge": "br2"])
        await #expect(throws: RPCError.self) { try await h.ok("add-port", ["bridge": "br2", "port": "eth1"]) }
        try await h.ok("del-underlay", ["device": "eth1"])
        #expect(h.datapath.ports["eth1"] == nil)
        #expect(await h.service.configuration().underlays.isEmpty)
        await #expect(throws: RPCError.self) { try await h.ok("del-underlay", ["device": "eth1"]) }
    }

    @Test func aConfigurationWithUnderlaysRoundTripsAndOldFilesStillLoad() async throws {
        let config = SwitchConfig(systemID: "id", bridges: [], underlays: ["eth1", "eth2"])
        let h = Harness()
        try await h.service.restore(config)
        #expect(await h.service.configuration().underlays == config.underlays)
        let old = #"{"bridges": [], "systemID": "id", "version": 1}"#
        let decoded = try JSONDecoder().decode(SwitchConfig.self, from: Data(old.utf8))
        #expect(decoded.underlays.isEmpty)
    }
}
