import Testing
import VSwiftProtocol
import VSwiftDatapath
@testable import VSwiftControl

/// The service as an actor: requests from many clients at once are handled one at a time.
@Suite struct SwitchServiceTests {
    @Test func concurrentRequestsNeverInterleave() async throws {
        let h = Harness()
        try await h.ok("add-br", ["bridge": "br0"])
        let count = 64
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<count {
                group.addTask { _ = await h.call("add-flow", ["bridge": "br0", "flow": .string("priority=5,udp,tp_dst=\(i),actions=drop")]) }
                group.addTask { _ = await h.call("dump-flows", ["bridge": "br0"]) }
            }
        }
        #expect(try await h.flows("br0").count == count + 1)
        // Each add-flow published a table the next one built on: none was lost on the way.
        let published = try #require(h.datapath.flowTables["br0"])
        #expect(published.count == count + 1)
        #expect(Set(published.map(\.counterSlot)).count == count + 1)
    }

    @Test func unknownMethodsAreNamed() async {
        let result = await Harness().service.handle(RPCRequest(id: 1, method: "add-bridge", params: nil))
        #expect(result.error == RPCError.methodNotFound("add-bridge"))
    }
}
