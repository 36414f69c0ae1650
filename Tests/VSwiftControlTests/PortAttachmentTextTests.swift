import Foundation
import Testing
import VSwiftDatapath
import VSwiftPacket
@testable import VSwiftControl

/// `show`'s wording of the datapath's port state: the same text the datapath used to build itself.
@Suite("Port attachment text")
struct PortAttachmentTextTests {
    let remote = IPAddress("192.0.2.2")!
    let gateway = IPAddress("10.0.0.1")!
    let source = IPAddress("10.0.0.2")!

    func attachment(_ json: String) throws -> PortAttachment {
        try JSONDecoder().decode(PortAttachment.self, from: Data(json.utf8))
    }

    @Test func tunnelRoutes() {
        #expect(TunnelRoute.noRoute(remote: remote).text == "no route to 192.0.2.2")
        #expect(TunnelRoute.notAPort(remote: remote, device: "eth9", ifindex: 7).text
            == "the route to 192.0.2.2 leaves by eth9, which is not a vswift port")
        #expect(TunnelRoute.notAPort(remote: remote, device: nil, ifindex: 7).text
            == "the route to 192.0.2.2 leaves by ifindex 7, which is not a vswift port")
        #expect(TunnelRoute.noSource(remote: remote, device: "ul0").text == "no source address for 192.0.2.2 on ul0")
        #expect(TunnelRoute.noEthernetAddress(device: "ul0").text == "ul0 has no Ethernet address")
        #expect(TunnelRoute.resolving(device: "ul0", gateway: nil, nextHop: remote).text == "ul0, resolving 192.0.2.2")
        #expect(TunnelRoute.resolving(device: "ul0", gateway: gateway, nextHop: gateway).text
            == "ul0 via 10.0.0.1, resolving 10.0.0.1")
        #expect(TunnelRoute.resolved(device: "ul0", gateway: nil, source: source, nextHopMAC: 0x0200_0000_000a, mtu: 0,
                                     checksumOffloaded: false).text
            == "ul0, source 10.0.0.2, next hop 02:00:00:00:00:0a")
        #expect(TunnelRoute.resolved(device: "ul0", gateway: gateway, source: source, nextHopMAC: 0xfeed_beef_0102, mtu: 1500,
                                     checksumOffloaded: true).text
            == "ul0 via 10.0.0.1, source 10.0.0.2, next hop fe:ed:be:ef:01:02, mtu 1500 (inner 1464), udp checksum offloaded")
    }

    @Test func tunnelStates() throws {
        #expect(TunnelState.remoteFromFlow(resolvedNextHops: 2).text == "remote from tun_dst (flow), 2 next hop(s) resolved")
        #expect(TunnelState.remoteFromMap(instanceID: 1000, entries: nil, resolvedNextHops: 0).text
            == "remote from the map-cache (instance 1000): no map-cache published yet, 0 next hop(s) resolved")
        #expect(TunnelState.remoteFromMap(instanceID: 7, entries: 3, resolvedNextHops: 2).text
            == "remote from the map-cache (instance 7): 3 map-cache entries, 2 next hop(s) resolved")
        #expect(TunnelState.remote(remote, nil).text == "remote 192.0.2.2: resolving")
        #expect(TunnelState.remote(remote, .noRoute(remote: remote)).text == "remote 192.0.2.2: no route to 192.0.2.2")
        var lisp = try attachment(#"{"kind":"lisp","queues":0}"#)
        #expect(lisp.summary == "lisp: resolving")
        lisp.tunnelState = .remote(remote, .noEthernetAddress(device: "ul0"))
        #expect(lisp.summary == "lisp: remote 192.0.2.2: ul0 has no Ethernet address")
    }

    @Test func deviceSummaries() throws {
        #expect(try attachment(#"{"kind":"afxdp","queues":2,"xdpMode":"native","bindMode":"copy"}"#).summary
            == "afxdp: xdp=native, bind=copy, queues=2")
        #expect(try attachment(#"{"kind":"internal","queues":1}"#).summary == "")
        #expect(try attachment(#"{"kind":"underlay","queues":1,"txChecksum":"software"}"#).summary
            == "underlay, afxdp: xdp=?, bind=?, queues=1, tx checksum: software (the driver offers no AF_XDP checksum offload)")
        #expect(try attachment(#"{"kind":"underlay","queues":1,"txChecksum":"kernel"}"#).summary
            == "underlay, afxdp: xdp=?, bind=?, queues=1, tx checksum: offloaded to the kernel (copy mode)")
    }
}
