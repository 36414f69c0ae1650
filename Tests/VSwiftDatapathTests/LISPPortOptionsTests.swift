import Testing
import VSwiftPacket
import VSwiftDatapath

/// A LISP port's options as ovs-vsctl spells them (`options:remote_ip=…`), read into the datapath's
/// LISPPortOptions. (How the control plane refuses bad ones, naming the port: LISPPortTests.)
@Suite("LISP port options")
struct LISPPortOptionsTests {
    @Test func everyOptionIsRead() throws {
        let options = try LISPPortOptions(options: ["remote_ip": "2001:db8::2", "local_ip": "2001:db8::1", "key": "0x10", "dst_port": "8472"])
        #expect(options.remote == .address(IPAddress("2001:db8::2")!))
        #expect(options.local == IPAddress("2001:db8::1"))
        #expect(options.key == .id(16))
        #expect(options.udpPort == 8472)
        let flow = try LISPPortOptions(options: ["remote_ip": "flow", "key": "flow"])
        #expect(flow.remote == .flow && flow.key == .flow && flow.udpPort == 4341 && flow.local == nil)
        #expect(try LISPPortOptions(options: ["remote_ip": "10.0.0.1"]).key == .id(0))
    }
}
