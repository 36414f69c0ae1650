import CXDP
import Foundation
import Glibc
import Testing
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftDatapath

// MARK: - Parsing (no privileges needed)

@Suite("Netlink parsing")
struct NetlinkParsingTests {
    @Test func addressesRoundTrip() throws {
        let v4 = try #require(NetlinkAddress("192.0.2.1"))
        #expect(v4.isIPv4 && v4.ipv4 == 0xc000_0201)
        #expect(v4 == NetlinkAddress(ipv4: 0xc000_0201))
        #expect(v4.networkBytes == [192, 0, 2, 1])
        #expect(v4.description == "192.0.2.1")
        let v6 = try #require(NetlinkAddress("2001:db8::2"))
        #expect(!v6.isIPv4)
        #expect(v6.high == 0x2001_0db8_0000_0000 && v6.low == 2)
        #expect(NetlinkAddress(networkBytes: v6.networkBytes[...]) == v6)
        #expect(v6.description == "2001:db8::2")
        #expect(NetlinkAddress("not an address") == nil)
        #expect(NetlinkAddress(networkBytes: [1, 2, 3]) == nil)
    }

    @Test func attributesStopAtTheFirstMalformedOne() {
        // type 1, 4-byte value; then type 2 claiming 12 bytes with only 6 present.
        let bytes: [UInt8] = [8, 0, 1, 0, 1, 2, 3, 4, 12, 0, 2, 0, 9, 9]
        let attributes = NetlinkAttribute.parse(bytes[...])
        #expect(attributes.count == 1)
        #expect(attributes.attribute(1)?.integer(UInt32.self) == 0x0403_0201)
        #expect(attributes.attribute(1)?.integer(UInt16.self) == nil)
        #expect(NetlinkAttribute.parse([4, 0][...]).isEmpty)
        #expect(NetlinkAttribute.parse([2, 0, 1, 0][...]).isEmpty)
        // An unpadded last attribute (length 5) is accepted, not read past.
        #expect(NetlinkAttribute.parse([5, 0, 3, 0, 7][...]).first?.value.count == 1)
    }

    @Test func truncatedMessagesAreDropped() {
        var request = NetlinkRequest("test", type: 20, header: UInt32(7))
        request.add(1, integer: UInt32(42))
        let encoded = request.encoded(sequence: 9)
        #expect(encoded.count == 16 + 4 + 8)
        let messages = NetlinkMessage.parse(encoded[...])
        #expect(messages.count == 1)
        #expect(messages.first?.sequence == 9 && messages.first?.header(UInt32.self) == 7)
        #expect(messages.first?.attributes(after: UInt32.self).attribute(1)?.integer(UInt32.self) == 42)
        for cut in 0..<encoded.count {
            #expect(NetlinkMessage.parse(encoded[0..<cut]).isEmpty)
        }
        // A message whose payload is shorter than the family header it should carry.
        let short = NetlinkMessage(type: 20, sequence: 1, payload: [1, 2][...])
        #expect(short.header(UInt32.self) == nil)
        #expect(short.attributes(after: UInt32.self).isEmpty)
    }
}

// MARK: - Against the kernel, in namespaces


@Suite("Underlay netlink", .serialized, .enabled(if: TestMachine.isCI || geteuid() == 0, "needs root and network namespaces"))
struct UnderlayNetlinkTests {
    @Test func routesOnLinkViaGatewayAndUnreachable() throws {
        try withPair { pair in
            let (routes, ifindex) = try inNamespace(pair.a) { () throws -> ([RouteAnswer?], UInt32) in
                let destinations = ["192.0.2.2", "198.51.100.7", "203.0.113.1", "2001:db8::2", "2001:db8:1::7", "2001:db8:ff::1"]
                return (try destinations.map { try Netlink.route(to: NetlinkAddress($0)!) }, if_nametoindex("vsnla"))
            }
            #expect(ifindex != 0)
            #expect(routes[0] == RouteAnswer(ifindex: ifindex, source: NetlinkAddress("192.0.2.1"), gateway: nil))
            #expect(routes[1] == RouteAnswer(ifindex: ifindex, source: NetlinkAddress("192.0.2.1"), gateway: NetlinkAddress("192.0.2.2")))
            #expect(routes[2] == nil)
            #expect(routes[3] == RouteAnswer(ifindex: ifindex, source: NetlinkAddress("2001:db8::1"), gateway: nil))
            #expect(routes[4] == RouteAnswer(ifindex: ifindex, source: NetlinkAddress("2001:db8::1"), gateway: NetlinkAddress("2001:db8::2")))
            #expect(routes[5] == nil)
        }
    }

    @Test func linkAddressAndMTUMatchIpLink() throws {
        try withPair { pair in
            try run(["ip", "-n", pair.a, "link", "set", "vsnla", "mtu", "1400"])
            let shown = try run(["ip", "-n", pair.a, "-o", "link", "show", "vsnla"]).stdout
            let words = shown.split(separator: " ")
            let text = try #require(words.firstIndex(of: "link/ether").map { words[$0 + 1] })
            let expected = UInt64(text.replacingOccurrences(of: ":", with: ""), radix: 16)
            let link = try inNamespace(pair.a) { try Netlink.link(ifindex: if_nametoindex("vsnla")) }
            #expect(link.address != nil && link.address == expected)
            #expect(link.mtu == 1400)
            let details = try run(["ip", "-n", pair.a, "-d", "-o", "link", "show", "vsnla"]).stdout.split(separator: " ")
            let queues = try #require(details.firstIndex(of: "numrxqueues").flatMap { Int(details[$0 + 1]) })
            #expect(try inNamespace(pair.a) { Netlink.rxQueueCount(ifindex: if_nametoindex("vsnla")) } == queues)
            #expect(throws: SystemError.self) { try inNamespace(pair.a) { try Netlink.link(ifindex: 9999) } }
        }
    }

    @Test func localAddressesHaveBothFamilies() throws {
        try withPair { pair in
            let addresses = try inNamespace(pair.a) { try Netlink.localAddresses() }
            #expect(addresses.contains(NetlinkAddress("192.0.2.1")!))
            #expect(addresses.contains(NetlinkAddress("2001:db8::1")!))
            #expect(addresses.contains(NetlinkAddress("127.0.0.1")!))
            #expect(!addresses.contains(NetlinkAddress("192.0.2.2")!))
        }
    }

    @Test(arguments: ["192.0.2.2", "2001:db8::2"])
    func solicitResolvesFromAnEmptyTable(_ peer: String) throws {
        try withPair { pair in
            let address = NetlinkAddress(peer)!
            let peerMAC = try inNamespace(pair.b) { try Netlink.link(ifindex: if_nametoindex("vsnlb")).address }
            let (before, after) = try inNamespace(pair.a) { () throws -> (NeighbourAnswer?, NeighbourAnswer?) in
                let ifindex = if_nametoindex("vsnla")
                let before = try Netlink.neighbour(address, ifindex: ifindex)
                try Netlink.solicit(address, ifindex: ifindex)
                let deadline = Date().addingTimeInterval(2)
                var answer = try Netlink.neighbour(address, ifindex: ifindex)
                while answer?.isUsable != true && Date() < deadline {
                    usleep(20_000)
                    answer = try Netlink.neighbour(address, ifindex: ifindex)
                }
                return (before, answer)
            }
            #expect(before == nil)
            #expect(after?.isUsable == true)
            #expect(after?.mac != nil && after?.mac == peerMAC)
        }
    }

    @Test func unresolvedNeighbourIsNotUsable() {
        #expect(!NeighbourAnswer(mac: nil, state: UInt16(NUD_INCOMPLETE)).isUsable)
        #expect(!NeighbourAnswer(mac: 0x0200_0000_0001, state: UInt16(NUD_FAILED)).isUsable)
        #expect(NeighbourAnswer(mac: 0x0200_0000_0001, state: UInt16(NUD_STALE)).isUsable)
        #expect(NeighbourAnswer(mac: 0x0200_0000_0001, state: UInt16(NUD_PERMANENT)).isUsable)
    }

    @Test func monitorReportsNeighbourAndAddressChanges() throws {
        try withPair { pair in
            let monitor = try inNamespace(pair.a) { try NetlinkMonitor() }
            _ = monitor.drain()
            try run(["ip", "-n", pair.a, "neigh", "add", "192.0.2.50", "lladdr", "02:00:00:00:00:01", "dev", "vsnla"])
            #expect(waitForNotification(monitor))
            try run(["ip", "-n", pair.a, "addr", "add", "192.0.2.77/32", "dev", "vsnla"])
            #expect(waitForNotification(monitor))
            let neighbour = try inNamespace(pair.a) {
                try Netlink.neighbour(NetlinkAddress("192.0.2.50")!, ifindex: if_nametoindex("vsnla"))
            }
            #expect(neighbour == NeighbourAnswer(mac: 0x0200_0000_0001, state: UInt16(NUD_PERMANENT)))
        }
    }

    @Test func vethAndLoopbackHaveNoXskTxChecksum() throws {
        try withPair { pair in
            let (family, missing, veth, lo) = try inNamespace(pair.a) { () throws -> (UInt16?, UInt16?, Bool, Bool) in
                (try Netlink.genericFamily("netdev"), try Netlink.genericFamily("vswift-no-such"),
                 Netlink.xskTxChecksumSupported(ifindex: if_nametoindex("vsnla")),
                 Netlink.xskTxChecksumSupported(ifindex: if_nametoindex("lo")))
            }
            #expect(family != nil)
            #expect(missing == nil)
            #expect(!veth && !lo)
            #expect(!Netlink.xskTxChecksumSupported(ifindex: 0))
        }
    }

    // MARK: helpers

    private func waitForNotification(_ monitor: NetlinkMonitor) -> Bool {
        var descriptor = pollfd(fd: monitor.fd, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, 2000) > 0 else { return false }
        return monitor.drain()
    }
}

/// Two namespaces joined by veth vsnla (192.0.2.1, 2001:db8::1) — vsnlb (.2, ::2), with routes
/// from a to 198.51.100.0/24 and 2001:db8:1::/64 via b. Removed afterwards, even on failure.
private struct Pair {
    let a: String
    let b: String
}

private func withPair(_ body: (Pair) throws -> Void) throws {
    let tag = "vsnl-\(getpid())-\(String(UInt32.random(in: 0..<0xFFFFF), radix: 16))"
    let pair = Pair(a: tag + "-a", b: tag + "-b")
    defer {
        _ = try? run(["ip", "netns", "del", pair.a], check: false)
        _ = try? run(["ip", "netns", "del", pair.b], check: false)
    }
    for ns in [pair.a, pair.b] {
        try run(["ip", "netns", "add", ns])
        // A settled underlay: the kernel sends no neighbour solicitation of its own (solicit())
        // while the link-local source is still tentative, so skip DAD on devices made from here on.
        try run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"])
    }
    try run(["ip", "link", "add", "vsnla", "netns", pair.a, "type", "veth", "peer", "vsnlb", "netns", pair.b])
    for (ns, device, host) in [(pair.a, "vsnla", "1"), (pair.b, "vsnlb", "2")] {
        try run(["ip", "-n", ns, "link", "set", "lo", "up"])
        try run(["ip", "-n", ns, "addr", "add", "192.0.2.\(host)/24", "dev", device])
        try run(["ip", "-n", ns, "addr", "add", "2001:db8::\(host)/64", "dev", device, "nodad"])
        try run(["ip", "-n", ns, "link", "set", device, "up"])
    }
    try run(["ip", "-n", pair.a, "route", "add", "198.51.100.0/24", "via", "192.0.2.2"])
    try run(["ip", "-n", pair.a, "-6", "route", "add", "2001:db8:1::/64", "via", "2001:db8::2"])
    try body(pair)
}
