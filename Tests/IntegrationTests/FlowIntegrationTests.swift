import Foundation
import Glibc
import Testing
import VSwiftTesting
import VSwiftControl

/// The seed's flow table on a real bridge: VM1 on port 1 (vnet0), a peer on port 2 standing in
/// for the LISP port, the four flows loaded from a file exactly as the seed types them.
extension Integration {
@Suite("Flow tables end to end")
struct FlowIntegrationTests {
    static let seedFlows = """
        # The seed's flows, verbatim (ovs-ofctl add-flow br2 "...").
        priority=0,action=NORMAL
        priority=2,in_port=1,dl_type=0x0806,action=NORMAL

        priority=3,dl_dst=02:00:00:00:00:00,action=mod_dl_dst:52:54:00:B8:27:75,output:1
        priority=1,in_port=1,dl_type=0x0800,vlan_tci=0,nw_src=10.1.1.0/24,action=output:2
        """

    struct Seed {
        let topology = Topology()
        let sw: String, vm1: String, peer: String
        var daemon: Daemon

        init() throws {
            sw = try topology.namespace("sw")
            vm1 = try topology.namespace("vm1")
            peer = try topology.namespace("peer")
            try topology.veth("eth0", in: vm1, "vnet0", in: sw)
            try topology.veth("eth0", in: peer, "vnet1", in: sw)
            try run(["ip", "-n", vm1, "link", "set", "eth0", "address", "52:54:00:b8:27:75"])
            try run(["ip", "-n", peer, "link", "set", "eth0", "address", "52:54:00:1b:ea:d5"])
            try run(["ip", "-n", vm1, "addr", "add", "10.1.1.20/24", "dev", "eth0"])
            try run(["ip", "-n", peer, "addr", "add", "10.1.1.30/24", "dev", "eth0"])
            // As the seed's VMs do with /etc/ethers: static neighbours. The peer reaches VM1 through
            // the seed's 02:00:00:00:00:00 convention, which flow priority=3 rewrites.
            try run(["ip", "-n", vm1, "neigh", "replace", "10.1.1.30", "lladdr", "52:54:00:1b:ea:d5", "dev", "eth0", "nud", "permanent"])
            try run(["ip", "-n", peer, "neigh", "replace", "10.1.1.20", "lladdr", "02:00:00:00:00:00", "dev", "eth0", "nud", "permanent"])
            daemon = try Daemon(namespace: sw)
            try daemon.ctl("add-br", "br2")
            try daemon.ctl("add-port", "br2", "vnet0")
            try daemon.ctl("add-port", "br2", "vnet1")
            let file = "/tmp/\(sw).flows"
            try FlowIntegrationTests.seedFlows.write(toFile: file, atomically: true, encoding: .utf8)
            defer { unlink(file) }
            try daemon.ctl("add-flows", "br2", file)
        }

        func destroy() {
            daemon.stop()
            topology.destroy()
        }
    }

    /// n_packets of each flow, keyed by its printed match.
    private func packetCounts(_ daemon: Daemon) throws -> [String: UInt64] {
        let text = try daemon.ctl("dump-flows", "br2").stdout
        var counts: [String: UInt64] = [:]
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            guard let n = fields.first(where: { $0.hasPrefix("n_packets=") }),
                  let match = fields.first(where: { $0.hasPrefix("priority=") }) else { continue }
            counts[String(match)] = UInt64(n.dropFirst("n_packets=".count).dropLast())
        }
        return counts
    }

    @Test("the seed's flows steer traffic: IP from VM1 goes to port 2, traffic to 02:00:00:00:00:00 is rewritten to VM1, ARP goes NORMAL; counters match")
    func seedFlowsSteerTraffic() throws {
        var seed = try Seed()
        defer { seed.destroy() }
        let dump = try seed.daemon.ctl("dump-flows", "br2").stdout
        #expect(dump.hasPrefix("NXST_FLOW reply (xid=0x4):\n"))
        #expect(dump.contains(" priority=3,dl_dst=02:00:00:00:00:00 actions=mod_dl_dst:52:54:00:b8:27:75,output:1"))
        #expect(dump.contains(" priority=1,ip,in_port=1,vlan_tci=0x0000,nw_src=10.1.1.0/24 actions=output:2"))
        #expect(dump.contains(" priority=2,arp,in_port=1 actions=NORMAL"))
        #expect(dump.contains(" priority=0 actions=NORMAL"))
        #expect(dump.split(separator: "\n").count == 5)

        // VM1 → peer: priority=1 (output:2); the peer's replies go to 02:00:00:00:00:00: priority=3.
        // The peer captures on the wire what VM1 sends; VM1 captures what arrives for it.
        let capture = try TCPDump(namespace: seed.vm1, interface: "eth0", filter: "icmp and src host 10.1.1.30")
        try run(["ip", "netns", "exec", seed.vm1, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.1.1.30"])
        let lines = capture.stop()
        // The seed's tcpdump on VM2 shows the rewritten destination; here VM1 sees the peer's replies
        // addressed to its own MAC although the peer sent them to 02:00:00:00:00:00.
        #expect(lines.filter { $0.contains("> 52:54:00:b8:27:75") && $0.contains("ICMP echo reply") }.count == 3, "\(lines)")
        #expect(!lines.contains { $0.contains("> 02:00:00:00:00:00") })

        // ARP from VM1 (to an address with no static entry) goes NORMAL: flooded to the peer.
        let arpCapture = try TCPDump(namespace: seed.peer, interface: "eth0", filter: "arp")
        _ = try run(["ip", "netns", "exec", seed.vm1, "ping", "-c", "1", "-W", "1", "10.1.1.99"], check: false)
        let arps = arpCapture.stop()
        #expect(arps.contains { $0.contains("Request who-has 10.1.1.99 tell 10.1.1.20") }, "\(arps)")

        let counts = try packetCounts(seed.daemon)
        #expect(counts["priority=1,ip,in_port=1,vlan_tci=0x0000,nw_src=10.1.1.0/24"] == 3)
        #expect(counts["priority=3,dl_dst=02:00:00:00:00:00"] == 3)
        #expect((counts["priority=2,arp,in_port=1"] ?? 0) >= 1)
    }

    @Test("bridges, ports and flows survive a daemon restart")
    func flowsSurviveRestart() throws {
        var seed = try Seed()
        defer { seed.destroy() }
        let before = try seed.daemon.ctl("show").stdout
        seed.daemon.stop()
        seed.daemon = try Daemon(namespace: seed.sw, freshConfiguration: false)
        #expect(try seed.daemon.ctl("show").stdout == before)
        let dump = try seed.daemon.ctl("dump-flows", "br2").stdout
        #expect(dump.split(separator: "\n").count == 5)
        #expect(dump.contains(" priority=1,ip,in_port=1,vlan_tci=0x0000,nw_src=10.1.1.0/24 actions=output:2"))
        try run(["ip", "netns", "exec", seed.vm1, "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.1.1.30"])
    }

    @Test("a 10,000-flow file loads and applies atomically; one bad line rejects the whole file")
    func bigFlowFileIsAtomic() throws {
        var seed = try Seed()
        defer { seed.destroy() }
        var lines: [String] = []
        for i in 0..<10_000 {
            lines.append("priority=10,udp,nw_dst=10.2.\(i / 250).\(i % 250),tp_dst=\(1000 + i % 5000),actions=output:2")
        }
        let good = "/tmp/\(seed.sw).big"
        try lines.joined(separator: "\n").write(toFile: good, atomically: true, encoding: .utf8)
        defer { unlink(good) }
        try seed.daemon.ctl("add-flows", "br2", good)
        #expect(try seed.daemon.ctl("dump-flows", "br2").stdout.split(separator: "\n").count == 10_004 + 1)

        lines[7_777] = "priority=10,udp,nw_dst=10.2.0.300,actions=output:2"
        lines = lines.map { $0.replacingOccurrences(of: "priority=10,", with: "priority=11,") }
        let bad = "/tmp/\(seed.sw).bad"
        try lines.joined(separator: "\n").write(toFile: bad, atomically: true, encoding: .utf8)
        defer { unlink(bad) }
        let failed = try seed.daemon.ctl("add-flows", "br2", bad, check: false)
        #expect(failed.status == 1)
        #expect(failed.stderr.contains("line 7778"), "\(failed.stderr)")
        #expect(try seed.daemon.ctl("dump-flows", "br2").stdout.split(separator: "\n").count == 10_004 + 1)
        // Traffic still flows through the seed's rules.
        try run(["ip", "netns", "exec", seed.vm1, "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.1.1.30"])
    }
}
}

extension Integration.FlowIntegrationTests {
    @Test("traffic keeps flowing, with no packet lost, while the flow table changes under it")
    func noLossDuringUpdates() throws {
        var seed = try Seed()
        defer { seed.destroy() }
        let receiver = try UDPSocket(namespace: seed.peer, bindPort: 9000)
        let sender = try UDPSocket(namespace: seed.vm1)
        let count = 10_000
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            var payload = [UInt8](repeating: 0x11, count: 64)
            for seq in 0..<UInt32(count) {
                withUnsafeBytes(of: seq.bigEndian) { payload.replaceSubrange(0..<4, with: $0) }
                _ = sender.send(payload, to: "10.1.1.30", port: 9000)
                if seq % 50 == 49 { usleep(5000) }
            }
            done.signal()
        }
        thread.start()
        // Each change publishes a new table version to the worker while the stream runs.
        var updates = 0
        while done.wait(timeout: .now()) == .timedOut {
            try seed.daemon.ctl("add-flow", "br2", "priority=5,udp,tp_dst=\(7000 + updates % 50),actions=output:2")
            if updates % 7 == 6 { try seed.daemon.ctl("del-flows", "br2", "udp,tp_dst=\(7000 + (updates - 3) % 50)") }
            updates += 1
        }
        let arrived = Set(receiver.receiveAll(idleTimeout: 1.5).map { UInt32(bigEndian: $0.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }) })
        #expect(updates >= 5, "only \(updates) table updates happened during the stream")
        #expect(arrived.count == count, "lost \(count - arrived.count) of \(count) datagrams during \(updates) updates")
    }
}

/// tcpdump running in a namespace, printing link-level headers; `stop()` returns its lines.
final class TCPDump {
    let process = Process()
    let output = Pipe()

    init(namespace: String, interface: String, filter: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip", "netns", "exec", namespace, "tcpdump", "--immediate-mode", "-l", "-n", "-e", "-i", interface] + filter.split(separator: " ").map(String.init)
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        // tcpdump needs a moment to open the interface.
        usleep(700_000)
    }

    func stop() -> [String] {
        usleep(300_000)
        // Children of the test process inherit its blocked signal mask, so SIGINT/SIGTERM would not
        // reach tcpdump; -l has already flushed every line, so SIGKILL loses nothing.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }
}
