import Testing
import VSwiftClassifier
import VSwiftFlowSyntax
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftControl

/// The frame a trace builds from a flow (as ofproto/trace does): it must match the flow it came
/// from, with valid checksums, whatever the flow names.
@Suite struct TraceFrameTests {
    static let flows = [
        "in_port=1,dl_src=52:54:00:b8:27:75,dl_dst=52:54:00:1b:ea:d5,icmp,nw_src=10.1.1.1,nw_dst=10.1.1.2,icmp_type=8",
        "in_port=2,tcp,nw_src=192.0.2.1,nw_dst=198.51.100.7,tp_src=40000,tp_dst=80,nw_tos=32,nw_ttl=9",
        "in_port=3,udp,dl_vlan=12,nw_dst=10.0.0.9,tp_dst=4341",
        "in_port=1,ipv6,ipv6_src=2001:db8::1,ipv6_dst=2001:db8::2,nw_proto=17,tp_src=5,tp_dst=6,ipv6_label=0x12345",
        "in_port=1,icmp6,ipv6_dst=ff02::1,icmpv6_type=135",
        "in_port=1,arp,arp_op=1,arp_spa=10.1.1.1,arp_tpa=10.1.1.2,arp_sha=52:54:00:00:00:01",
        "in_port=1,dl_type=0x88cc",
        "in_port=1,ip,nw_frag=later",
    ]

    @Test func theBuiltFrameMatchesItsFlow() throws {
        for text in Self.flows {
            let match = try FlowParser().parseMatch(text).match
            let frame = TraceFrame.build(from: match)
            #expect(frame.count >= 60, "\(text)")
            var key = FlowKey()
            frame.withUnsafeBytes {
                FlowExtractor.extract($0.baseAddress!, length: frame.count, inPort: UInt32(match.value(.inPort)), into: &key)
            }
            #expect(match.matches(key), "\(text): \(TraceFrame.hex(frame))")
            if Ref.u16(frame, 12) == 0x0800 {
                #expect(Ref.checksum(Array(frame[14..<34])) == 0, "\(text): IPv4 header checksum")
            }
        }
    }

    @Test func defaultsAreZeroAddressesAndTTL64() throws {
        let frame = TraceFrame.build(from: try FlowParser().parseMatch("in_port=1,udp").match)
        #expect(Array(frame[0..<12]) == [UInt8](repeating: 0, count: 12))
        #expect(frame[22] == 64 && frame[23] == 17)
    }

    @Test func hexIsReadLeniently() {
        #expect(TraceFrame.bytes(hex: "0x0a:0B 0c\n0d") == [0x0a, 0x0b, 0x0c, 0x0d])
        #expect(TraceFrame.bytes(hex: "abc") == nil)
        #expect(TraceFrame.bytes(hex: "zz") == nil)
        #expect(TraceFrame.hex([0, 0xff, 0x1a]) == "00ff1a")
    }
}
