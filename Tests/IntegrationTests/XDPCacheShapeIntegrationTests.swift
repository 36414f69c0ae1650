import Foundation
import Glibc
import Testing
import VSwiftTesting
import VSwiftProtocol

/// vswiftd with `--xdp-cache on`, flows that look at in_port and dl_type only (as the seed's IP
/// flow does not look at nw_proto): a ping, then UDP between the same hosts, each get an XDP entry
/// of its own (their megaflows differ in nw_proto). Before the workers' exact-match cache keyed
/// on the megaflow shape, the UDP flow hit the ping's exact-match entry, was never handed over
/// and stayed on the workers (DESIGN.md, "Megaflows and revalidation", *Hand-over*). Names k17.
extension Integration {
@Suite("XDP flow cache: the exact-match cache keyed on the megaflow shape")
struct XDPCacheShapeIntegrationTests {
    @Test("k17: a ping, then UDP between the same hosts: both get XDP entries")
    func pingThenUDPBothGetEntries() throws {
        // Redirect targets: the far ends run NAPI (GRO on).
        let hosts = try XDPCacheTwoHosts(prefix: "k17", subnet: 17, gro: true)
        defer { hosts.destroy() }
        let (a, daemon) = (hosts.a, hosts.daemon)

        let ping = try run(["ip", "netns", "exec", a, "ping", "-c", "5", "-i", "0.05", "-W", "1", "10.17.0.2"], check: false)
        #expect(ping.stdout.contains(" 0% packet loss"), "\(ping.stdout)")
        // UDP from a to b (bash's /dev/udp; b answers ICMP port unreachable), a few datagrams.
        for _ in 0..<5 {
            _ = try run(["ip", "netns", "exec", a, "bash", "-c", "echo k17 > /dev/udp/10.17.0.2/9999"], check: false)
            usleep(50_000)
        }
        usleep(300_000)
        let report: XDPCacheReport = try daemon.call("dump-xdp-cache").get().decode()
        #expect(report.enabled)
        let fromA = report.flows.filter { $0.key["in_port"] == "1" }
        let protocols = Set(fromA.compactMap { $0.key["ipv4.proto"] })
        #expect(protocols.isSuperset(of: ["1", "17"]), "entries from port 1: \(fromA.map(\.match))")
        #expect(report.handoverRingFull == 0)
    }
}
}
