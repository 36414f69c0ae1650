import Foundation
import Glibc
import Testing
import VSwiftControl
import VSwiftProtocol
import VSwiftTesting

/// vswiftd as an operator runs it: under systemd (the unit file, readiness notification, stop)
/// and scraped by Prometheus (the metrics endpoint, checked with promtool).
extension Integration {
@Suite("Service integration")
struct ServiceIntegrationTests {
    /// A tool the test needs: its path, or nil (a test failure under CI, else the check is skipped).
    func tool(_ name: String, package: String) -> String? {
        if let path = TestMachine.tool(name) { return path }
        if Capability.isCI { Issue.record("\(name) is missing (Debian package \(package); scripts/setup.sh installs it)") }
        return nil
    }

    @Test("packaging/vswiftd.service passes systemd-analyze verify")
    func unitVerifies() throws {
        guard let analyze = tool("systemd-analyze", package: "systemd") else { return }
        let directory = try makeTemporaryDirectory("vswift-unit")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // verify checks that ExecStart's program exists: point it at the one just built.
        let unit = try String(contentsOfFile: Paths.root + "/packaging/vswiftd.service", encoding: .utf8)
        #expect(unit.contains("Type=notify"))
        #expect(unit.contains("ExecStart=/usr/local/bin/vswiftd "))
        try unit.replacingOccurrences(of: "/usr/local/bin/vswiftd", with: Paths.vswiftd)
            .write(toFile: directory + "/vswiftd.service", atomically: true, encoding: .utf8)
        let result = try run([analyze, "verify", "--man=no", directory + "/vswiftd.service"], check: false)
        #expect(result.status == 0, "\(result.stderr)\(result.stdout)")
        // Warnings about the unit itself (unknown settings, bad values) name the file.
        let complaints = (result.stderr + result.stdout).split(separator: "\n").filter { $0.contains("vswiftd.service") }
        #expect(complaints.isEmpty, "\(complaints)")
    }

    @Test("with NOTIFY_SOCKET, READY=1 comes once the control socket answers; SIGTERM sends STOPPING=1 and detaches XDP")
    func readinessNotification() throws {
        let topology = Topology()
        defer { topology.destroy() }
        let sw = try topology.namespace("nt")
        let host = try topology.namespace("nh")
        try topology.veth("h18cp1", in: sw, "eth0", in: host)
        let directory = try makeTemporaryDirectory("vswift-notify")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let notifySocket = try datagramListener(directory + "/notify")
        defer { close(notifySocket) }

        // A configuration with a port, so that the start restores it and the stop must detach it.
        let socketPath = directory + "/vswiftd.sock"
        let db = directory + "/db.json"
        let first = try startDaemon(namespace: sw, socket: socketPath, db: db, environment: ["NOTIFY_SOCKET": directory + "/notify"])
        let firstReady = receiveDatagram(notifySocket, timeout: 30)
        #expect(firstReady.hasPrefix("READY=1"), "got \(firstReady)")
        try run([Paths.vswiftctl, "--socket", socketPath, "add-br", "h18cbr"])
        try run([Paths.vswiftctl, "--socket", socketPath, "add-port", "h18cbr", "h18cp1"])
        #expect(hasXDP(namespace: sw, interface: "h18cp1"))
        stop(first)
        #expect(receiveDatagram(notifySocket, timeout: 10).hasPrefix("STOPPING=1"))
        #expect(first.terminationStatus == 0)
        #expect(!hasXDP(namespace: sw, interface: "h18cp1"), "XDP still attached after SIGTERM")

        // Restart: the very first request after READY=1 is answered (no retry), with the restored port.
        let second = try startDaemon(namespace: sw, socket: socketPath, db: db, environment: ["NOTIFY_SOCKET": directory + "/notify"])
        defer { stop(second) }
        let ready = receiveDatagram(notifySocket, timeout: 30)
        #expect(ready.hasPrefix("READY=1\nSTATUS="), "got \(ready)")
        let show: ShowReport = try ControlClient(socketPath: socketPath, timeout: .seconds(10)).call("show", params: nil).get().decode()
        #expect(show.bridges.first?.ports.contains { $0.name == "h18cp1" } == true)
        #expect(hasXDP(namespace: sw, interface: "h18cp1"))
    }

    @Test("metrics scraped during traffic: promtool accepts them, names and labels are there, counters grow with traffic")
    func metricsDuringTraffic() throws {
        let topology = Topology()
        defer { topology.destroy() }
        let sw = try topology.namespace("ms")
        let h1 = try topology.namespace("m1")
        let h2 = try topology.namespace("m2")
        try topology.veth("eth0", in: h1, "h18cm1", in: sw)
        try topology.veth("eth0", in: h2, "h18cm2", in: sw)
        try run(["ip", "-n", h1, "addr", "add", "10.181.0.1/24", "dev", "eth0"])
        try run(["ip", "-n", h2, "addr", "add", "10.181.0.2/24", "dev", "eth0"])
        let port = Int.random(in: 20000...60000)
        let daemon = try Daemon(namespace: sw, extraArguments: ["--metrics", "127.0.0.1:\(port)", "--metrics-top-flows", "5"])
        defer { daemon.stop() }
        try daemon.ctl("add-br", "h18cbr")
        try daemon.ctl("add-port", "h18cbr", "h18cm1")
        try daemon.ctl("add-port", "h18cbr", "h18cm2")
        // A flow that looks at a field, so frames go through the exact-match cache.
        try daemon.ctl("add-flow", "h18cbr", "priority=10,ip,actions=NORMAL")

        let before = try scrape(sw, port)
        try run(["ip", "netns", "exec", h1, "ping", "-c", "5", "-i", "0.2", "-W", "2", "10.181.0.2"])
        // A scrape while traffic flows.
        let pinger = Process()
        pinger.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        pinger.arguments = ["ip", "netns", "exec", h2, "ping", "-c", "20", "-i", "0.05", "-W", "2", "10.181.0.1"]
        try pinger.run()
        let during = try scrape(sw, port)
        pinger.waitUntilExit()
        #expect(pinger.terminationStatus == 0)
        let after = try scrape(sw, port)

        for text in [before, during, after] { try promtoolAccepts(text) }
        let p1 = #"{bridge="h18cbr",port="h18cm1",type=""}"#
        let p2 = #"{bridge="h18cbr",port="h18cm2",type=""}"#
        #expect(value(after, "vswift_port_rx_packets_total" + p1)! >= value(before, "vswift_port_rx_packets_total" + p1)! + 25)
        #expect(value(after, "vswift_port_tx_packets_total" + p2)! >= value(before, "vswift_port_tx_packets_total" + p2)! + 25)
        #expect(value(after, "vswift_port_rx_bytes_total" + p1)! > value(before, "vswift_port_rx_bytes_total" + p1)!)
        #expect(value(after, "vswift_port_xsk_rx_ring_full_total" + p1) != nil)
        #expect(value(after, #"vswift_worker_rx_packets_total{worker="0"}"#)! >= value(before, #"vswift_worker_rx_packets_total{worker="0"}"#)! + 50)
        let lookups = { (text: String) in
            (value(text, #"vswift_worker_cache_hits_total{worker="0"}"#) ?? 0) + (value(text, #"vswift_worker_cache_misses_total{worker="0"}"#) ?? 0)
        }
        #expect(lookups(after) >= lookups(before) + 50)
        #expect(value(after, #"vswift_worker_cache_hits_total{worker="0"}"#)! > 0)
        #expect(value(after, #"vswift_bridge_flows{bridge="h18cbr"}"#) == 2)
        #expect(value(after, #"vswift_bridge_ports{bridge="h18cbr"}"#) == 3)
        // The busiest flow is the ip flow, with the ping's packets.
        let ipFlow = after.split(separator: "\n").first { $0.hasPrefix("vswift_flow_packets_total{") && $0.contains(#"match="ip""#) }
        #expect(ipFlow != nil && Double(ipFlow!.split(separator: " ").last!)! >= 50, "\(after)")
        let cycles = after.split(separator: "\n").filter { $0.hasPrefix("vswift_worker_cycles_total{") }
        #expect(cycles.count == 3)
        #expect(after.contains("vswift_build_info{version=\"\(VSwiftVersion.current)\"} 1.0"))
        // Only GET /metrics is served.
        #expect(try inNamespace(sw) { try httpGet(port: port, path: "/") }.status == 404)
    }

    @Test("vswiftd --version and vswiftctl --version print the one version constant")
    func versions() throws {
        for binary in [Paths.vswiftd, Paths.vswiftctl] {
            let result = try run([binary, "--version"])
            #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == VSwiftVersion.current, "\(binary)")
        }
    }

    @Test("completions generate from the argument parsers for bash, zsh and fish, naming every command and option")
    func completions() throws {
        for shell in ["bash", "zsh", "fish"] {
            // fish names long options without their dashes (`-l socket`).
            let dashes = shell == "fish" ? "" : "--"
            let ctl = try run([Paths.vswiftctl, "--generate-completion-script", shell]).stdout
            for word in ["add-br", "dump-flows", "replace-flows", "add-underlay", dashes + "socket", dashes + "format"] {
                #expect(ctl.contains(word), "vswiftctl's \(shell) completion lacks \(word)")
            }
            let daemon = try run([Paths.vswiftd, "--generate-completion-script", shell]).stdout
            for word in ["metrics", "workers", "tx-checksum", "db"].map({ dashes + $0 }) {
                #expect(daemon.contains(word), "vswiftd's \(shell) completion lacks \(word)")
            }
            if shell == "bash" {
                let directory = try makeTemporaryDirectory("vswift-completion")
                defer { try? FileManager.default.removeItem(atPath: directory) }
                try ctl.write(toFile: directory + "/vswiftctl", atomically: true, encoding: .utf8)
                let syntax = try run(["bash", "-n", directory + "/vswiftctl"], check: false)
                #expect(syntax.status == 0, "\(syntax.stderr)")
            }
        }
    }

    @Test("scripts/generate-docs.sh wrote man pages for vswiftd and vswiftctl (scripts/test.sh runs it first)")
    func manPages() throws {
        let directory = Paths.root + "/.build/docs/man/man8"
        guard FileManager.default.fileExists(atPath: directory + "/vswiftd.8") || Capability.isCI else { return }
        for (tool, words) in [("vswiftd", ["metrics", "workers", "tx-checksum"]), ("vswiftctl", ["dump-flows", "add-br", "socket"])] {
            let page = try String(contentsOfFile: "\(directory)/\(tool).8", encoding: .utf8)
            // mdoc(7), as swift-argument-parser's generate-manual writes it.
            #expect(page.contains(".Dt \(tool.uppercased()) 8"), "\(tool).8 has no title line: \(page.prefix(300))")
            for word in words { #expect(page.contains(word), "\(tool).8 does not mention \(word)") }
        }
    }

    // MARK: Helpers

    func scrape(_ namespace: String, _ port: Int) throws -> String {
        let answer = try inNamespace(namespace) { try httpGet(port: port, path: "/metrics") }
        #expect(answer.status == 200, "\(answer.response.prefix(300))")
        return answer.body
    }

    /// `promtool check metrics` (Prometheus' own linter) on `text`.
    func promtoolAccepts(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        guard let promtool = tool("promtool", package: "prometheus") else { return }
        let directory = try makeTemporaryDirectory("vswift-metrics")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try text.write(toFile: directory + "/metrics.txt", atomically: true, encoding: .utf8)
        let result = try run(["/bin/sh", "-c", "\(promtool) check metrics < \(directory)/metrics.txt"], check: false)
        #expect(result.status == 0, "promtool: \(result.stdout)\(result.stderr)", sourceLocation: sourceLocation)
    }

    /// The value of the series written exactly as `series` (name and labels).
    func value(_ text: String, _ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    func startDaemon(namespace: String, socket: String, db: String, environment: [String: String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip", "netns", "exec", namespace, Paths.vswiftd, "--socket", socket, "--db", db, "--bpf-dir", Paths.bpfDir]
            + Paths.xdpCacheArguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let log = FileHandle(forWritingAtPath: "/dev/null")
        process.standardOutput = log
        process.standardError = log
        try process.run()
        return process
    }

    func stop(_ process: Process) {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    func datagramListener(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw CommandFailed.system(["bind", path]) }
        return fd
    }

    /// The next datagram, or "" after `timeout` seconds.
    func receiveDatagram(_ fd: Int32, timeout: Int) -> String {
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
    }
}
}
