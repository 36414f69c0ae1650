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

    /// OVS's ttl and tos options; both default to inherit (RFC 9300 §5.3: the outer TTL and DSCP
    /// SHOULD be copied from the inner header).
    @Test func ttlAndTOS() throws {
        let plain = try LISPPortOptions(options: ["remote_ip": "10.0.0.1"])
        #expect(plain.outerFields == LISP.OuterFields() && plain.outerFields.ttl == nil && plain.outerFields.tos == nil)
        let fixed = try LISPPortOptions(options: ["remote_ip": "10.0.0.1", "ttl": "1", "tos": "252"])
        #expect(fixed.outerFields.ttl == 1 && fixed.outerFields.tos == 252)
        let hex = try LISPPortOptions(options: ["remote_ip": "10.0.0.1", "ttl": "0xff", "tos": "0x2c"])
        #expect(hex.outerFields == LISP.OuterFields(ttl: 255, tos: 0x2c))
        let inherit = try LISPPortOptions(options: ["remote_ip": "10.0.0.1", "ttl": "inherit", "tos": "inherit"])
        #expect(inherit.outerFields == LISP.OuterFields())
        for (name, value) in [("ttl", "0"), ("ttl", "300"), ("ttl", ""), ("ttl", "x"), ("tos", "2"), ("tos", "256"), ("tos", "inherit ")] {
            #expect(throws: DatapathError.self, "\(name)=\(value)") {
                try LISPPortOptions(options: ["remote_ip": "10.0.0.1", name: value])
            }
        }
    }
}
