import Foundation
import Glibc
import Testing
import VSwiftTesting
import VSwiftControl

/// vswiftd with `--xdp-cache on` between two namespaces (names prefixed x7): established flows
/// are forwarded by the XDP programs and still counted on their rules, and a flow modified or
/// deleted under traffic stops forwarding as soon as the request returns (DESIGN.md, "Megaflows
/// and revalidation", invariant 3).
extension Integration {
@Suite("XDP flow cache end to end")
struct XDPFlowCacheIntegrationTests {
    /// Hosts 10.7.0.1 and .2, GRO on (the ports are redirect targets).
    final class Rig: XDPCacheTwoHosts {
        init() throws { try super.init(prefix: "x7", subnet: 7, gro: true) }

        /// Packets b's interface received (kernel counter).
        func receivedByB() throws -> UInt64 {
            let text = try run(["ip", "netns", "exec", b, "cat", "/sys/class/net/eth0/statistics/rx_packets"]).stdout
            return UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }

        /// n_packets of the flow whose printed line contains `match`.
        func packets(_ match: String) throws -> UInt64 {
            let text = try daemon.ctl("dump-flows", "x7br").stdout
            guard let line = text.split(separator: "\n").first(where: { $0.contains(match) }),
                  let field = line.split(separator: " ").first(where: { $0.hasPrefix("n_packets=") }) else { return 0 }
            return UInt64(field.dropFirst("n_packets=".count).dropLast()) ?? 0
        }

        /// Frames the workers received (the AF_XDP path), over all workers.
        func workerReceived() throws -> UInt64 {
            let json = try daemon.ctl("--format", "json", "dump-workers").stdout
            let reports = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]] ?? []
            return reports.reduce(0) { $0 + (($1["rxPackets"] as? NSNumber)?.uint64Value ?? 0) }
        }

        /// A steady ping from a to b (every 5 ms) for `seconds`.
        func startPing(seconds: Int) throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["ip", "netns", "exec", a, "ping", "-q", "-i", "0.005", "-w", "\(seconds)", "10.7.0.2"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            return process
        }
    }

    @Test("x7: with the XDP cache on, an established flow is forwarded in XDP and its packets are counted on the rule")
    func kernelPathPacketsAreCountedOnTheRule() throws {
        let rig = try Rig()
        defer { rig.destroy() }
        let result = try run(["ip", "netns", "exec", rig.a, "ping", "-c", "100", "-i", "0.01", "-W", "1", "10.7.0.2"], check: false)
        #expect(result.stdout.contains(" 0% packet loss"), "\(result.stdout)")
        // Counters are folded once a second.
        usleep(2_500_000)
        let forward = try rig.packets("in_port=1 actions=output:2")
        let back = try rig.packets("in_port=2 actions=output:1")
        let workers = try rig.workerReceived()
        #expect(forward >= 100 && back >= 100, "forward \(forward), back \(back)")
        // Every packet is counted on its rule, and fewer than all of them went through a worker.
        #expect(workers < forward + back, "workers \(workers), rules \(forward + back): nothing took the XDP path")
    }

    @Test("x7: mod-flows and del-flows under traffic: no packet reaches port 2 after the request returns")
    func changesUnderTrafficStopTheStaleEntryAtOnce() throws {
        let rig = try Rig()
        defer { rig.destroy() }
        let ping = try rig.startPing(seconds: 6)
        defer { ping.terminate(); ping.waitUntilExit() }
        usleep(1_000_000)
        let flowing = try rig.receivedByB()
        usleep(300_000)
        #expect(try rig.receivedByB() > flowing + 20, "the stream does not flow")

        try rig.daemon.ctl("mod-flows", "x7br", "in_port=1,ip,actions=drop")
        let atReturn = try rig.receivedByB()
        usleep(500_000)
        let later = try rig.receivedByB()
        // A frame the XDP program looked up before the delete may still be on its way (one at 200/s).
        #expect(later <= atReturn + 1, "after mod-flows returned: \(later - atReturn) packets reached port 2")

        try rig.daemon.ctl("mod-flows", "x7br", "in_port=1,ip,actions=output:2")
        usleep(700_000)
        let restored = try rig.receivedByB()
        #expect(restored > later + 20, "the stream does not flow again after mod-flows back")

        try rig.daemon.ctl("--strict", "del-flows", "x7br", "priority=10,in_port=1,ip")
        let atDelete = try rig.receivedByB()
        usleep(500_000)
        let afterDelete = try rig.receivedByB()
        #expect(afterDelete <= atDelete + 1, "after del-flows returned: \(afterDelete - atDelete) packets reached port 2: \((try? rig.daemon.ctl("dump-flows", "x7br").stdout) ?? "")")
    }
}
}
