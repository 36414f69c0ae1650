import Testing
import VSwiftProtocol
@testable import VSwiftControl

/// Issue 13, defect 6: names follow the kernel's rule (dev_valid_name) before anything else.
@Suite struct NameValidationTests {
    @Test func theKernelsRule() async {
        for good in ["br0", "a", "veth-1_x.y", String(repeating: "n", count: 15), "é0"] {
            #expect(InterfaceName.problem(good) == nil, "\(good)")
        }
        for bad in [
            "", ".", "..", String(repeating: "n", count: 16), "z\u{0}y", "a/b", "a:1", "a b", "a\tb", "a\nb",
            "a\u{7F}", "a\u{1}", "eth%d", "a\u{A0}",
        ] {
            #expect(InterfaceName.problem(bad) != nil, "\(InterfaceName.quoted(bad))")
        }
        // 15 bytes, not 15 characters: "é" takes two.
        #expect(InterfaceName.problem(String(repeating: "é", count: 8)) != nil)
    }

    /// The attack: "z\u0000y" became kernel device "z" while saved as "z\u0000y".
    @Test func aNULInABridgeNameIsRefusedNamingIt() async throws {
        let h = Harness()
        guard case .failure(let error) = await h.call("add-br", ["bridge": "z\u{0}y"]) else {
            Issue.record("add-br accepted a name with a NUL")
            return
        }
        #expect(error.code == RPCError.invalidParams("").code)
        #expect(error.message.contains(#""z\u0000y""#), "\(error.message)")
        #expect(try await h.show().bridges.isEmpty)
    }

    /// The attack: a NUL suffix got past the duplicate-port check and attached the device twice.
    @Test func aNULSuffixDoesNotGetPastTheDuplicatePortCheck() async throws {
        let h = Harness()
        try await h.ok("add-br", ["bridge": "br0"])
        try await h.ok("add-br", ["bridge": "br1"])
        try await h.ok("add-port", ["bridge": "br0", "port": "vnet0"])
        for method in ["add-port", "del-port"] {
            let result = await h.call(method, ["bridge": "br1", "port": "vnet0\u{0}x"])
            #expect(throws: RPCError.self, "\(method)") { try result.get() }
            if case .failure(let error) = result { #expect(error.code == RPCError.invalidParams("").code) }
        }
        await #expect(throws: RPCError.self) { try await h.call("add-port", ["bridge": "br0\u{0}", "port": "eth1"]).get() }
        await #expect(throws: RPCError.self) { try await h.call("add-underlay", ["device": "eth1\u{0}"]).get() }
        await #expect(throws: RPCError.self) { try await h.call("add-flow", ["bridge": "br0\u{0}", "flow": "actions=drop"]).get() }
        let show = try await h.show()
        #expect(show.bridges.map { $0.ports.map(\.name) } == [["vnet0", "br0"], ["br1"]])
    }

    /// The configuration file is input too.
    @Test func restoreRefusesBadNames() async {
        let badPort = SwitchConfig(systemID: "id", bridges: [
            BridgeConfig(name: "br2", nextOfport: 2, ports: [PortConfig(name: "vnet0\u{0}", ofport: 1)], flows: []),
        ])
        await #expect(throws: RestoreError.self) { try await Harness().service.restore(badPort) }
        let badBridge = SwitchConfig(systemID: "id", bridges: [BridgeConfig(name: "b:r", nextOfport: 1, ports: [], flows: [])])
        await #expect(throws: RestoreError.self) { try await Harness().service.restore(badBridge) }
        let badUnderlay = SwitchConfig(systemID: "id", underlays: ["eth1 "])
        await #expect(throws: RestoreError.self) { try await Harness().service.restore(badUnderlay) }
    }
}
