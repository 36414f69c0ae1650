import Foundation
import Glibc
import Testing
import VSwiftProtocol
import VSwiftTesting

/// The `lisp_mtu` line of dump-ports (path MTU and reassembly counters), as numbers by name; empty
/// while every counter is zero (the line is not printed).
func lispMTUCounters(_ daemon: Daemon, bridge: String = "br2", port: String = "2") throws -> [String: UInt64] {
    let text = try daemon.ctl("dump-ports", bridge, port).stdout
    guard let line = text.split(separator: "\n").first(where: { $0.contains("lisp_mtu ") }) else { return [:] }
    var counters: [String: UInt64] = [:]
    for field in line.split(whereSeparator: { $0 == " " || $0 == "," }) {
        let pair = field.split(separator: "=")
        if pair.count == 2, let value = UInt64(pair[1]) { counters[String(pair[0])] = value }
    }
    return counters
}

extension Integration {
@Suite("LISP path MTU and outer reassembly end to end")
struct PathMTUIntegrationTests {
    /// RFC 9300 §7.1 / RFC 1191 across the seed: a 1500-byte IP packet with DF is 1536 bytes
    /// encapsulated, over the 1500-byte underlay: VM1 hears "Frag needed" with the tunnel's MTU,
    /// 1500 - 36 = 1464, and a ping of that size passes.
    @Test("ping -M do -s 1472 across the seed gets Frag needed (mtu = 1464), and -s 1436 passes")
    func fragmentationNeededAcrossTheSeed() throws {
        let hosts = try LISPHosts(underlay: .bridge)
        defer { hosts.destroy() }
        try hosts.waitForPath(from: hosts.vm1, to: "10.1.1.30")
        let big = try run(["ip", "netns", "exec", hosts.vm1, "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1472", "10.1.1.30"],
                          check: false)
        #expect(big.status != 0)
        #expect(big.stdout.contains("Frag needed") && big.stdout.contains("mtu = 1464"), "\(big.stdout)\(big.stderr)")
        let fits = try run(["ip", "netns", "exec", hosts.vm1, "ping", "-c", "3", "-i", "0.2", "-W", "2", "-M", "do", "-s", "1436",
                            "10.1.1.30"], check: false)
        #expect(fits.status == 0, "\(fits.stdout)\(fits.stderr)")
        let mtu = try lispMTUCounters(hosts.daemon1)
        #expect((mtu["icmp_sent"] ?? 0) >= 1, "\(mtu)")
        #expect((try lispCounters(hosts.daemon1)["too_big"] ?? 0) >= 1)
    }

    /// RFC 9300 §7: an ETR reassembles outer fragments. A LISP packet carrying a 1428-byte UDP
    /// datagram, cut into three outer fragments sent last first on host1's underlay wire, reaches
    /// VM1 once and whole.
    @Test("a fragmented LISP packet injected on the underlay is delivered once, whole")
    func outerFragmentsAreReassembled() throws {
        let hosts = try LISPHosts(underlay: .bridge)
        defer { hosts.destroy() }
        // Outer fragments of 504 payload bytes (DF clear), last first.
        try expectFragmentedLISPDelivered(hosts, underlayInterface: "br1", port: 9015, reversed: true) { mac, inner in
            Fragments.ipv4(lispFrame(destinationMAC: mac, source: [192, 168, 1, 252], destination: [192, 168, 1, 249], flags: 0x88,
                                     iid: 0, inner: inner), l3: 14, size: 504, id: 0x4f15)
        }
    }
}
}
