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
