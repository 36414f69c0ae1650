import Foundation
import Testing
@testable import VSwiftControl

@Suite struct ZZBigTmp {
    @Test func million() throws {
        guard ProcessInfo.processInfo.environment["VSWIFT_BIG"] != nil else { return }
        let n = Int(ProcessInfo.processInfo.environment["VSWIFT_BIG"]!)!
        var t = Date()
        func lap(_ what: String) { print("\(what): \(String(format: "%.2f", Date().timeIntervalSince(t))) s"); t = Date() }
        var lines: [String] = []
        lines.reserveCapacity(n)
        for i in 0..<n {
            lines.append("priority=\(i % 100 + 1),ip,in_port=1,nw_src=\(10 + (i >> 16) & 0xff).\((i >> 8) & 0xff).\(i & 0xff).0/24,actions=mod_dl_dst:52:54:00:b8:27:75,output:2")
        }
        lap("generate")
        let params = FlowLinesParams(bridge: "br2", flows: lines).jsonValue
        let bytes = RPCCodec.encodeRequest(id: 1, method: "add-flows", params: params)
        lap("client encode \(bytes.count) bytes")
        let request = try RPCCodec.decodeRequest(bytes.dropLast()).get()
        lap("server decode")
        let directory = NSTemporaryDirectory() + "big-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let h = Harness(devices: ["vnet0", "eth1"], store: ConfigStore(path: directory + "/db.json"), counterSlots: 1 << 21)
        try h.ok("add-br", ["bridge": "br2"])
        try h.ok("add-port", ["bridge": "br2", "port": "vnet0"])
        try h.ok("add-port", ["bridge": "br2", "port": "eth1"])
        lap("setup")
        let p = try FlowLinesParams(from: request.params)
        lap("params")
        let result = h.service.perform(request)
        lap("perform (parse+add+publish+save)")
        #expect(result.error == nil)
        _ = RPCCodec.encodeResponse(id: 1, result: result)
        let dump = h.call("dump-flows", ["bridge": "br2"])
        lap("dump-flows")
        let text = RPCCodec.encodeResponse(id: 1, result: dump)
        lap("encode dump \(text.count)")
        try h.addFlow("br2", "priority=5000,actions=drop")
        lap("one add-flow on top")
        _ = p
    }
}
