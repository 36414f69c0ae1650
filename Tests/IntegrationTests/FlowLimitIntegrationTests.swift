import Foundation
import Glibc
import Testing
import VSwiftTesting
import VSwiftControl

/// Issue 13's attack on the datapath's work per frame: one flow with 5,000 `output:3` actions
/// turned 5 pings into 25,007 frames and starved another port. Such a flow is refused now, and one
/// at the cap (1024 actions) sends at most `maxOutputsPerPacket` (64) copies per frame.
extension Integration {
@Suite("Flow limits end to end")
struct FlowLimitIntegrationTests {
    private static let outputsPerPacket = 64

    private func receivedFrames(_ namespace: String) throws -> UInt64 {
        let text = try run(["ip", "netns", "exec", namespace, "cat", "/sys/class/net/eth0/statistics/rx_packets"]).stdout
        return UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    @Test("5,000 outputs are refused; a flow at the action cap sends at most 64 copies per frame while other ports forward without loss")
    func actionCapAndOutputBudget() throws {
        let topology = Topology()
        defer { topology.destroy() }
        let sw = try topology.namespace("sw")
        var hosts: [String] = []
        for (i, role) in ["src", "sink", "c", "d"].enumerated() {
            let ns = try topology.namespace(role)
            try topology.veth("eth0", in: ns, "vnet\(i)", in: sw)
            try run(["ip", "-n", ns, "addr", "add", "10.13.0.\(i + 1)/24", "dev", "eth0"])
            hosts.append(ns)
        }
        // No ARP needed for the source's pings: they go to the flow under test only.
        try run(["ip", "-n", hosts[0], "neigh", "replace", "10.13.0.2", "lladdr", "02:00:00:00:00:02", "dev", "eth0", "nud", "permanent"])
        let daemon = try Daemon(namespace: sw)
        defer { daemon.stop() }
        try daemon.ctl("add-br", "br13")
        for i in 0..<4 { try daemon.ctl("add-port", "br13", "vnet\(i)") }

        let attack = "in_port=1,actions=" + Array(repeating: "output:2", count: 5000).joined(separator: ",")
        let refused = try daemon.ctl("add-flow", "br13", attack, check: false)
        #expect(refused.status != 0)
        #expect((refused.stderr + refused.stdout).contains("too many actions"), "\(refused.stderr)\(refused.stdout)")

        let atCap = "in_port=1,actions=" + Array(repeating: "output:2", count: 1024).joined(separator: ",")
        try daemon.ctl("add-flow", "br13", atCap)
        try daemon.ctl("add-flow", "br13", "in_port=3,actions=output:4")
        try daemon.ctl("add-flow", "br13", "in_port=4,actions=output:3")

        // 5 pings: at most 5 × 64 frames reach the sink (5 × 1024 before the budget).
        let before = try receivedFrames(hosts[1])
        _ = try run(["ip", "netns", "exec", hosts[0], "ping", "-c", "5", "-i", "0.2", "-W", "1", "10.13.0.2"], check: false)
        usleep(500_000)
        let delivered = try receivedFrames(hosts[1]) - before
        #expect(delivered >= 5 && delivered <= UInt64(5 * Self.outputsPerPacket), "\(delivered) frames for 5 pings")

        // While the source floods the capped flow, ports 3 and 4 still forward every ping.
        let flood = Process()
        flood.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        flood.arguments = ["ip", "netns", "exec", hosts[0], "ping", "-q", "-i", "0.002", "-w", "6", "10.13.0.2"]
        flood.standardOutput = FileHandle.nullDevice
        flood.standardError = FileHandle.nullDevice
        try flood.run()
        defer { if flood.isRunning { flood.terminate() }; flood.waitUntilExit() }
        usleep(500_000)
        let other = try run(["ip", "netns", "exec", hosts[2], "ping", "-c", "20", "-i", "0.1", "-W", "1", "10.13.0.4"], check: false)
        #expect(other.stdout.contains("20 received"), "\(other.stdout)")
    }
}
}
