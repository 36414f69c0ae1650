import Testing
import VSwiftProtocol
@testable import VSwiftControl

/// capture-start/read/stop refuse what they must before touching the datapath: hostile names,
/// ports that are not there or not on the named bridge, absurd snap lengths, unknown sessions.
/// (The capture itself runs on the real datapath: PortCaptureTests, CaptureIntegrationTests.)
@Suite struct CaptureRequestTests {
    @Test func badRequestsAreRefusedWithTheirReason() async throws {
        let h = Harness()
        try await h.ok("add-br", ["bridge": "br0"])
        try await h.ok("add-port", ["bridge": "br0", "port": "eth1"])
        try await h.ok("add-br", ["bridge": "br1"])

        #expect(await h.call("capture-start", ["port": "nope", "direction": "rx"]).error?.code == RPCError.noSuchPort("nope").code)
        #expect(await h.call("capture-start", ["bridge": "br1", "port": "eth1", "direction": "rx"]).error?.message
            == RPCError.noSuchPort("eth1\" on bridge \"br1").message)
        #expect(await h.call("capture-start", ["bridge": "br9", "port": "eth1", "direction": "rx"]).error == RPCError.noSuchBridge("br9"))
        #expect(await h.call("capture-start", ["port": "a/b", "direction": "rx"]).error?.code == RPCError.invalidParams("").code)
        #expect(await h.call("capture-start", ["port": "eth1", "direction": "sideways"]).error?.code == RPCError.invalidParams("").code)
        #expect(await h.call("capture-start", ["port": "eth1", "direction": "rx", "snapLength": 0]).error?.code == RPCError.invalidParams("").code)
        #expect(await h.call("capture-start", ["port": "eth1", "direction": "rx", "snapLength": 70000]).error?.code == RPCError.invalidParams("").code)
        // A datapath that cannot capture (the fake) says so.
        #expect(await h.call("capture-start", ["bridge": "br0", "port": "eth1", "direction": "both"]).error?.code == RPCError.datapathFailure("").code)

        for method in ["capture-read", "capture-stop"] {
            let error = await h.call(method, ["id": 7]).error
            #expect(error?.code == RPCError.invalidParams("").code && error?.message.contains("no capture 7") == true, "\(method): \(String(describing: error))")
        }
    }
}
