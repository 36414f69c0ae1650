import Foundation
import Glibc

/// lisp-first-packet's hosts, as network namespaces named after this process (so
/// `Topology.removeStale` finds them after a SIGKILL):
///
///     vsb-fpv1-PID   vsb-fph1-PID            vsb-fpul-PID            vsb-fph2-PID   vsb-fpv2-PID
///     VM 10.3.1.1 - vnet0 [vswiftd] ul0 - [bridge br0] - ul0 [vswiftd] vnet0 - VM 10.3.2.1
///                  192.168.40.1              |                192.168.40.2      + local 10.4.0.0/16
///                                   vsb-fpms-PID: the mapping system 192.168.40.100
///
/// Each site runs vswiftd (the binary next to the bench) with br2 = vnet0 (1) + lisp0 (2,
/// remote_ip=map, key=1000), the seed's flows, and the fixture as map-server and map-resolver.
/// Site 1 registers 10.3.1.0/24, site 2 10.3.2.0/24 and 10.4.K.0/24 for each destination K.
final class FirstPacketSites {
    static let iid = "1000", mapServer = "192.168.40.100"
    static let gatewayMAC = "02:00:00:00:00:01"
    let destinations: Int
    let underlay, mapping, host1, host2, vm1, vm2: String
    private var created: [String] = []
    private var daemons: [(namespace: String, process: Process)] = []
    private var fixture: Process?
    private var vswiftctl = ""
    private let ip = systemTool("ip")

    init(destinations: Int, pid: Int32 = getpid()) {
        self.destinations = destinations
        func name(_ role: String) -> String { "\(Topology.prefix)fp\(role)-\(pid)" }
        underlay = name("ul"); mapping = name("ms"); host1 = name("h1"); host2 = name("h2"); vm1 = name("v1"); vm2 = name("v2")
    }

    var fixtureLog: String { "/tmp/\(mapping).log" }
    func socket(_ host: String) -> String { "/tmp/\(host).sock" }

    /// The fixture of the integration tests, found in a checkout above the executable
    /// (.build/<triple>/release/vswift-bench): one copy of the mapping system, not two.
    static func findFixture() throws -> String {
        var directory = executableDirectory()
        for _ in 0..<6 {
            let path = directory + "/Tests/IntegrationTests/Fixtures/lisp_mapping_system.py"
            if access(path, R_OK) == 0 { return path }
            directory = URL(fileURLWithPath: directory).deletingLastPathComponent().path
        }
        throw BenchError.failed("cannot find Tests/IntegrationTests/Fixtures/lisp_mapping_system.py above \(executableDirectory()): pass --fixture")
    }

    func create(fixture script: String, vswiftd: String, vswiftctl: String, bpfDirectory: String) throws {
        self.vswiftctl = vswiftctl
        for path in [vswiftd, vswiftctl] where access(path, X_OK) != 0 {
            throw BenchError.failed("cannot find \(path): run scripts/build.sh")
        }
        for ns in [underlay, mapping, host1, host2, vm1, vm2] {
            try runCommand([ip, "netns", "add", ns])
            created.append(ns)
            // vswiftd's LISP control socket is IPv4 and IPv6.
            _ = try runCommand([ip, "netns", "exec", ns, systemTool("sysctl"), "-qw",
                                "net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0"])
        }
        try runCommand([ip, "-n", underlay, "link", "add", "br0", "type", "bridge"])
        try runCommand([ip, "-n", underlay, "link", "set", "br0", "up"])
        try veth("u0", in: underlay, "ms0", in: mapping)
        try runCommand([ip, "-n", underlay, "link", "set", "u0", "master", "br0"])
        try runCommand([ip, "-n", mapping, "addr", "add", Self.mapServer + "/24", "dev", "ms0"])
        let eids = [2: ["10.3.2.0/24"] + (1...destinations).map { "10.4.\($0).0/24" }, 1: ["10.3.1.0/24"]]
        try startFixture(script, sites: eids)
        for (n, host, vm) in [(1, host1, vm1), (2, host2, vm2)] {
            try veth("u\(n)", in: underlay, "ul0", in: host)
            try runCommand([ip, "-n", underlay, "link", "set", "u\(n)", "master", "br0"])
            try veth("eth0", in: vm, "vnet0", in: host)
            try runCommand([ip, "-n", host, "addr", "add", "192.168.40.\(n)/24", "dev", "ul0"])
            try runCommand([ip, "-n", vm, "link", "set", "eth0", "address", Self.vmMAC(n)])
            try runCommand([ip, "-n", vm, "addr", "add", "10.3.\(n).1/24", "dev", "eth0"])
            try runCommand([ip, "-n", vm, "neigh", "replace", "10.3.\(n).254", "lladdr", Self.gatewayMAC, "dev", "eth0", "nud", "permanent"])
            try runCommand([ip, "-n", vm, "route", "add", "10.0.0.0/8", "via", "10.3.\(n).254"])
            let process = try startDaemon(host, vswiftd: vswiftd, bpfDirectory: bpfDirectory)
            daemons.append((host, process))
            try ctl(host, "add-underlay", "ul0")
            try ctl(host, "add-br", "br2")
            try ctl(host, "add-port", "br2", "vnet0")
            try ctl(host, "add-port", "br2", "lisp0", "--", "set", "Interface", "lisp0", "type=lisp",
                    "options:remote_ip=map", "options:key=\(Self.iid)")
            let file = "/tmp/\(host).flows"
            try Self.flows(vmMAC: Self.vmMAC(n)).write(toFile: file, atomically: true, encoding: .utf8)
            defer { unlink(file) }
            try ctl(host, "add-flows", "br2", file)
            try ctl(host, "add-map-server", Self.mapServer, "--key", "site-\(n)-secret", "--key-id", "2")
            try ctl(host, "add-map-resolver", Self.mapServer)
            for eid in eids[n] ?? [] { try ctl(host, "add-eid", Self.iid, eid) }
        }
        // Site 2's VM takes every 10.4.0.0/16 address as its own (the probes' destinations).
        try runCommand([ip, "-n", vm2, "route", "add", "local", "10.4.0.0/16", "dev", "lo"])
        try waitForRegistrations()
        // Site 2 learns site 1's RLOC (its ETR accepts LISP only from RLOCs the mapping system
        // named), so the probes measure site 1's miss alone.
        try warmUp()
    }

    static func vmMAC(_ n: Int) -> String { "52:54:00:00:04:0\(n)" }

    /// br2's flows: the VM's IPv4 traffic to other EIDs goes to lisp0; decapsulated frames
    /// (dl_dst 02:00:00:00:00:00) to the VM; nothing else leaves.
    static func flows(vmMAC: String) -> String {
        """
        priority=0,action=drop
        priority=3,dl_dst=02:00:00:00:00:00,action=mod_dl_dst:\(vmMAC),output:1
        priority=1,in_port=1,dl_type=0x0800,nw_dst=10.0.0.0/8,action=output:2

        """
    }

    private func veth(_ a: String, in nsA: String, _ b: String, in nsB: String) throws {
        try runCommand([ip, "link", "add", a, "netns", nsA, "type", "veth", "peer", "name", b, "netns", nsB])
        try runCommand([ip, "-n", nsA, "link", "set", a, "up"])
        try runCommand([ip, "-n", nsB, "link", "set", b, "up"])
    }

    private func startFixture(_ script: String, sites: [Int: [String]]) throws {
        unlink(fixtureLog)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ip)
        process.arguments = ["netns", "exec", mapping, systemTool("python3"), "-B", script, "--log", fixtureLog]
            + sites.keys.sorted().flatMap { n in
                ["--site", (["s\(n)", "2", "site-\(n)-secret"] + (sites[n] ?? []).map { "\(Self.iid):\($0)" }).joined(separator: ",")]
            }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        fixture = process
        try wait("the mapping system did not start (\(script))", seconds: 15) { fixtureLines.contains { $0.contains("\"ready\"") } }
    }

    private func startDaemon(_ host: String, vswiftd: String, bpfDirectory: String) throws -> Process {
        let log = "/tmp/\(host).vswiftd.log"
        for path in [socket(host), "/tmp/\(host).db.json"] { unlink(path) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ip)
        process.arguments = ["netns", "exec", host, vswiftd, "--socket", socket(host), "--db", "/tmp/\(host).db.json",
                             "--workers", "1", "--bpf-dir", bpfDirectory, "--log-level", "debug"]
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = FileHandle(forWritingAtPath: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        try wait("vswiftd in \(host) did not come up (\(log))", seconds: 15) {
            process.isRunning && (try? runCommand([vswiftctl, "--socket", socket(host), "show"])) != nil
        }
        return process
    }

    @discardableResult
    func ctl(_ host: String, _ arguments: String...) throws -> String {
        try runCommand([vswiftctl, "--socket", socket(host)] + arguments)
    }

    var fixtureLines: [Substring] { (readTextFile(fixtureLog) ?? "").split(separator: "\n") }

    private func waitForRegistrations() throws {
        for n in 1...2 {
            try wait("site \(n) did not register with the mapping system (\(fixtureLog))", seconds: 20) {
                fixtureLines.contains { $0.contains("\"verdict\": \"registered\"") && $0.contains("\"site\": \"s\(n)\"") }
            }
        }
    }

    private func warmUp() throws {
        try wait("site 2's VM cannot ping site 1's (10.3.1.1)", seconds: 20) {
            (try? runCommand([ip, "netns", "exec", vm2, systemTool("ping"), "-c", "1", "-W", "1", "10.3.1.1"])) != nil
        }
    }

    private func wait(_ failure: String, seconds: Double, _ ready: () -> Bool) throws {
        let deadline = monotonicSeconds() + seconds
        while !ready() {
            if Signals.stopRequested { throw BenchError.interrupted }
            guard monotonicSeconds() < deadline else { throw BenchError.failed(failure) }
            usleep(50_000)
        }
    }

    /// Site 1's LISP port's map_miss drops (dump-ports br2).
    func mapMisses() throws -> UInt64 {
        let text = try ctl(host1, "dump-ports", "br2")
        guard let range = text.range(of: "map_miss=") else { throw BenchError.failed("dump-ports shows no map_miss counter:\n\(text)") }
        return UInt64(text[range.upperBound...].prefix(while: \.isNumber)) ?? 0
    }

    /// First probe sent → the map-server's log line of the Encapsulated Map-Request for 10.4.K.1
    /// (its `time`: wall clock, 1 ms); nil if not found.
    func requestDelay(destination k: Int, firstSent: Double) -> Double? {
        for line in fixtureLines where line.contains("ecm-map-request") && line.contains("]10.4.\(k).1/") {
            guard let range = line.range(of: "\"time\": ") else { continue }
            let digits = line[range.upperBound...].prefix { $0.isNumber || $0 == "." }
            if let time = Double(digits), time >= firstSent - 0.002 { return max(0, time - firstSent) }
        }
        return nil
    }

    /// What each site and the mapping system say, for a failure's message.
    func diagnostics() -> String {
        var text = "mapping system log (last lines):\n" + fixtureLines.suffix(12).joined(separator: "\n") + "\n"
        for host in [host1, host2] {
            for verb in [["dump-map-cache"], ["dump-ports", "br2"]] {
                text += "\(host) \(verb[0]):\n" + ((try? runCommand([vswiftctl, "--socket", socket(host)] + verb)) ?? "?")
            }
        }
        return text
    }

    /// Stops the daemons and the fixture, deletes the namespaces. Safe to call twice.
    func destroy() {
        for (host, process) in daemons.reversed() where process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            let deadline = monotonicSeconds() + 10
            while process.isRunning && monotonicSeconds() < deadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            for path in [socket(host), "/tmp/\(host).db.json"] { unlink(path) }
        }
        daemons = []
        if let fixture, fixture.isRunning {
            kill(fixture.processIdentifier, SIGTERM)
            let deadline = monotonicSeconds() + 5
            while fixture.isRunning && monotonicSeconds() < deadline { usleep(20_000) }
            if fixture.isRunning { kill(fixture.processIdentifier, SIGKILL) }
            fixture.waitUntilExit()
        }
        fixture = nil
        for name in created.reversed() { _ = try? runCommand([ip, "netns", "del", name]) }
        created = []
    }
}
