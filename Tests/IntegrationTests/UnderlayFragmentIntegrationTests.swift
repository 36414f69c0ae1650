import Foundation
import Glibc
import Testing
import VSwiftTesting

/// Injects into host1's underlay wire (w1) the outer fragments `cut` makes of a LISP packet to
/// host1's `underlayInterface` (given its MAC) carrying a 1428-byte UDP datagram from 10.1.1.99 to
/// VM1's `port`, in `order`; then checks VM1 received that datagram once and whole, and host1
/// counted one reassembly and no bad header.
func expectFragmentedLISPDelivered(_ hosts: LISPHosts, underlayInterface: String, port: UInt16, reversed: Bool,
                                   cut: (_ mac: [UInt8], _ inner: [UInt8]) -> [[UInt8]]) throws {
    try hosts.waitForPath(from: hosts.vm1, to: "10.1.1.30")
    let receiver = try UDPSocket(namespace: hosts.vm1, bindPort: port)
    let payload = [UInt8]((0..<1400).map { UInt8(truncatingIfNeeded: $0 &* 13) })
    let datagram = Ref.be16(40000) + Ref.be16(port) + Ref.be16(UInt16(8 + payload.count)) + [0, 0] + payload
    var inner: [UInt8] = [0x45, 0, 0, 0, 0x77, 0x01, 0, 0, 64, 17, 0, 0, 10, 1, 1, 99, 10, 1, 1, 20]
    Ref.put16(&inner, 2, UInt16(20 + datagram.count))
    Ref.put16(&inner, 10, Ref.checksum(inner))
    let fragments = cut(try macAddress(namespace: hosts.host1, interface: underlayInterface), inner + datagram)
    #expect(fragments.count == 3)
    let injector = try PacketSocket(namespace: hosts.wire, interface: "w1")
    for f in reversed ? fragments.reversed() : fragments { injector.send(f) }
    let received = receiver.receiveAll(idleTimeout: 1.5)
    #expect(received == [payload], "\(received.map(\.count)) datagrams of \(payload.count) bytes expected once")
    let mtu = try lispMTUCounters(hosts.daemon1)
    #expect(mtu["reassembled"] == 1, "\(mtu)")
    #expect((try lispCounters(hosts.daemon1)["bad_header"] ?? 0) == 0)
}

/// A LISP packet with an IPv6 outer header (UDP checksum zero, RFC 6935/6936) around `inner`.
func lispFrameIPv6(destinationMAC: [UInt8], source: String, destination: String, iid: UInt32, inner: [UInt8]) -> [UInt8] {
    func bytes(_ text: String) -> [UInt8] {
        var raw = [UInt8](repeating: 0, count: 16)
        _ = inet_pton(AF_INET6, text, &raw)
        return raw
    }
    let udp: [UInt8] = [0xc3, 0x50, 0x10, 0xf5] + Ref.be16(UInt16(16 + inner.count)) + [0, 0]
    let lisp: [UInt8] = [0x88, 0, 0, 0, UInt8(iid >> 16 & 0xff), UInt8(iid >> 8 & 0xff), UInt8(iid & 0xff), 1]
    let ip: [UInt8] = [0x60, 0, 0, 0] + Ref.be16(UInt16(16 + inner.count)) + [17, 64] + bytes(source) + bytes(destination)
    return destinationMAC + [2, 0, 0, 0, 0, 0x99, 0x86, 0xdd] + ip + udp + lisp + inner
}

extension Integration {
/// On an underlay *device* (vswiftctl add-underlay) the XDP program steers only UDP to (local
/// address, LISP port); later outer fragments carry no UDP header and follow their first fragment
/// through the program's map of fragmented datagrams (bpf/vswift_redirect.bpf.c).
@Suite("Outer fragments on an underlay device")
struct UnderlayFragmentIntegrationTests {
    /// RFC 9300 §7 / RFC 8200 §4.5: a LISP packet carrying a 1428-byte UDP datagram, cut into
    /// three outer fragments (first fragment first) and injected on host1's underlay wire, reaches
    /// VM1 once and whole, for an IPv4 and an IPv6 outer header.
    @Test("a fragmented LISP packet arriving on an underlay device is delivered once, whole", arguments: ["IPv4", "IPv6"])
    func outerFragmentsOnAnUnderlayDevice(family: String) throws {
        let ipv6 = family == "IPv6"
        let hosts = try LISPHosts(underlay: .device, rlocs: ipv6 ? ("fd00:f6::1", "fd00:f6::2") : ("192.168.46.1", "192.168.46.2"))
        defer { hosts.destroy() }
        try expectFragmentedLISPDelivered(hosts, underlayInterface: "ul0", port: 9016, reversed: false) { mac, inner in
            ipv6
                ? Fragments.ipv6(lispFrameIPv6(destinationMAC: mac, source: "fd00:f6::2", destination: "fd00:f6::1", iid: 0, inner: inner),
                                 l3: 14, size: 504, id: 0xf600_0001)
                : Fragments.ipv4(lispFrame(destinationMAC: mac, source: [192, 168, 46, 2], destination: [192, 168, 46, 1], flags: 0x88,
                                           iid: 0, inner: inner), l3: 14, size: 504, id: 0xf601)
        }
    }

    /// The known limit (DESIGN.md): on an underlay device a later fragment that arrives before its
    /// first finds no entry in the XDP map and goes to the host's kernel; the worker holds the rest
    /// until its timeout, counted `timeout` (swept when the next fragment arrives).
    @Test("a later fragment before its first on an underlay device goes to the kernel; the datagram times out, counted")
    func aLaterFragmentBeforeItsFirstTimesOut() throws {
        let hosts = try LISPHosts(underlay: .device, rlocs: ("192.168.46.1", "192.168.46.2"))
        defer { hosts.destroy() }
        try hosts.waitForPath(from: hosts.vm1, to: "10.1.1.30")
        let mac = try macAddress(namespace: hosts.host1, interface: "ul0")
        let frame = lispFrame(destinationMAC: mac, source: [192, 168, 46, 2], destination: [192, 168, 46, 1], flags: 0x88, iid: 0,
                              inner: icmpEcho(from: [10, 1, 1, 99], to: [10, 1, 1, 20]))
        let pieces = Fragments.ipv4(frame, l3: 14, size: 32, id: 0xf602)
        #expect(pieces.count == 3)
        let injector = try PacketSocket(namespace: hosts.wire, interface: "w1")
        for f in [pieces[2], pieces[0], pieces[1]] { injector.send(f) }
        sleep(4)
        injector.send(Fragments.ipv4(frame, l3: 14, size: 32, id: 0xf603)[0])
        usleep(500_000)
        let mtu = try lispMTUCounters(hosts.daemon1)
        #expect(mtu["timeout"] == 1 && (mtu["reassembled"] ?? 0) == 0, "\(mtu)")
    }

    /// The host keeps its own fragmented traffic on the device: a fragmented ping to the host's
    /// address, and a fragmented UDP datagram to a port that is not LISP's, reach its stack.
    @Test("non-LISP fragments to the host still reach the host's stack", arguments: ["IPv4", "IPv6"])
    func hostFragmentsStillReachTheHost(family: String) throws {
        let ipv6 = family == "IPv6"
        let hosts = try LISPHosts(underlay: .device, rlocs: ipv6 ? ("fd00:f6::1", "fd00:f6::2") : ("192.168.46.1", "192.168.46.2"))
        defer { hosts.destroy() }
        let ping = try run(["ip", "netns", "exec", hosts.host2, "ping", "-c", "3", "-i", "0.2", "-W", "2", "-s", "3000",
                            ipv6 ? "fd00:f6::1" : "192.168.46.1"], check: false)
        #expect(ping.status == 0, "\(ping.stdout)\(ping.stderr)")
        if !ipv6 {
            let listener = try UDPSocket(namespace: hosts.host1, bindPort: 9017)
            let sender = try UDPSocket(namespace: hosts.host2)
            let big = [UInt8]((0..<1800).map { UInt8(truncatingIfNeeded: $0 &* 3) })
            #expect(sender.send(big, to: "192.168.46.1", port: 9017))
            let received = listener.receiveAll(idleTimeout: 1.5)
            #expect(received == [big], "\(received.map(\.count))")
        }
    }
}
}
