import Foundation
import Glibc
import Testing
import VSwiftProtocol
import VSwiftTesting

/// vswiftd with `--xdp-cache on` where the far ends of the veth ports start with GRO off: XDP
/// cannot redirect into those veths (their peers run no NAPI, so NETDEV_XDP_ACT_NDO_XMIT is off
/// and the kernel would drop what XDP redirects there). The workers forward everything without
/// loss; GRO on on the peers makes the ports redirect targets and the flows move to XDP; GRO off
/// again under traffic takes the entries out with no loss beyond what is in flight (DESIGN.md,
/// "Megaflows and revalidation", *Redirect targets*). Names prefixed h7r.
extension Integration {
@Suite("XDP flow cache: redirect targets")
struct XDPRedirectTargetIntegrationTests {
    /// Hosts 10.17.0.1 and .2, GRO off: the ports are no redirect targets yet.
    final class Rig: XDPCacheTwoHosts {
        init() throws { try super.init(prefix: "h7r", subnet: 17, gro: false) }

        /// GRO on the far end (`eth0` in `ns`) of a switch port: what makes the port a redirect target.
        static func setGRO(on: Bool, in ns: String) throws {
            try run(["ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "gro", on ? "on" : "off"])
        }

        func cache() throws -> XDPCacheReport {
            let json = try daemon.ctl("--format", "json", "dump-xdp-cache", "h7rbr").stdout
            return try #require(try JSONValue.parse(Array(json.utf8))?.decode(XDPCacheReport.self), "\(json)")
        }

        /// `count` pings from a to b, `interval` apart; the number of replies.
        func ping(count: Int, interval: String = "0.01", during: (() throws -> Void)? = nil) throws -> Int {
            let process = Process()
            let output = Pipe()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["ip", "netns", "exec", a, "ping", "-q", "-c", "\(count)", "-i", interval, "-W", "1", "10.17.0.2"]
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            try process.run()
            try during?()
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            // "800 packets transmitted, 798 received, ..."
            guard let line = text.split(separator: "\n").first(where: { $0.contains("packets transmitted") }),
                  let received = line.split(separator: ",").dropFirst().first?.split(separator: " ").first else { return -1 }
            return Int(received) ?? -1
        }

        /// Polls `condition` for up to 3 s (the installer reacts to the kernel's notification
        /// within milliseconds, and reads every device's features once a second regardless).
        func eventually(_ condition: () throws -> Bool) rethrows -> Bool {
            for _ in 0..<30 {
                if try condition() { return true }
                usleep(100_000)
            }
            return try condition()
        }
    }

    @Test("h7r: a veth port whose peer runs no NAPI is no redirect target; GRO on makes it one, GRO off under traffic takes its entries out without loss")
    func redirectTargetsFollowThePeersNAPI() throws {
        let rig = try Rig()
        defer { rig.destroy() }

        // GRO off on both peers: the workers forward every packet, no entry outputs to the ports.
        #expect(try rig.ping(count: 100) == 100)
        let ports = try rig.daemon.ctl("dump-ports", "h7rbr").stdout
        #expect(ports.contains("not a redirect target: veth peer without NAPI: enable GRO or XDP on the peer"), "\(ports)")
        var report = try rig.cache()
        #expect(report.entries == 0, "\(report.flows)")
        #expect(report.refused["redirect_unsupported", default: 0] > 0, "\(report.refused)")
        #expect(report.ports.allSatisfy { $0.path.redirectProblem != nil } && report.ports.count == 2)

        // GRO on: both ports become targets, the flows are cached and forwarded in XDP.
        try Rig.setGRO(on: true, in: rig.a)
        try Rig.setGRO(on: true, in: rig.b)
        #expect(try rig.eventually { try rig.cache().ports.allSatisfy { $0.path.redirectProblem == nil } })
        #expect(try rig.ping(count: 100) == 100)
        report = try rig.cache()
        #expect(report.entries == 2, "\(report.flows)")
        #expect(report.totals.hits > 100, "\(report.totals)")

        // GRO off on b's end under traffic (200 pings a second): the entry outputting to port 2
        // goes, the stream moves back to the workers; at most the frames in flight are lost.
        let hitsBefore = report.totals.hits
        let replies = try rig.ping(count: 600, interval: "0.005") {
            usleep(1_000_000)
            try Rig.setGRO(on: false, in: rig.b)
        }
        #expect(replies >= 597, "\(600 - replies) of 600 pings lost")
        report = try rig.cache()
        #expect(!report.flows.contains { $0.actions.contains("output:2") }, "\(report.flows)")
        #expect(report.ports.first { $0.name == "h7rv1" }?.path.redirectProblem != nil)
        #expect(report.ports.first { $0.name == "h7rv0" }?.path.redirectProblem == nil)
        #expect(report.totals.hits > hitsBefore, "nothing took the XDP path before GRO went off")
    }
}
}
