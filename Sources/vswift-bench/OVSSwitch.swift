import Foundation
import Glibc

/// Open vSwitch's userspace datapath (dpif-netdev) with s0 and s1 as AF_XDP ports: a second
/// baseline, a full switch where xsk_fwd is a bare forwarder.
///
/// Everything lives in a private directory, `/tmp/vsb-ovs-BENCHPID` (database, unix sockets,
/// pidfiles, logs; OVS_RUNDIR/OVS_DBDIR/OVS_LOGDIR point there), so the system's
/// /var/run/openvswitch and any running OVS are never touched. ovsdb-server and ovs-vswitchd run
/// in the switch namespace (`ip netns exec`, `--detach`); no kernel module is needed
/// (datapath_type=netdev). The PMD thread is pinned by `pmd-cpu-mask` to the switch CPU; the other
/// threads (main, handler, revalidator...) are moved to the generator CPU, where the bench's own
/// helper threads are. Only the PMD threads' CPU time is measured.
///
/// With a VXLANLeg, OVS's row is VXLAN (OVS has no userspace LISP), labelled ovs-vxlan: br0 holds
/// the overlay device and vxlan0, the underlay bridge br-ul the underlay device, its internal port
/// the local address (see VXLANLeg and setUpUnderlay).
final class OVSSwitch: SwitchUnderTest {
    let name: String
    static let directoryPrefix = "/tmp/vsb-ovs-"
    private(set) var pid: Int32 = 0
    private(set) var threadIDs: [Int32] = []
    let directory: String
    private let namespace: String
    private var stopped = false
    private var started: [String] = []
    /// Set by stop(): what went wrong while shutting down (XDP left on a port...).
    private(set) var stopNotes: [String] = []
    /// With rules: seconds `ovs-ofctl --bundle add-flows` took.
    private(set) var flowLoadSeconds: Double?

    /// The tunnel scenarios' underlay bridge and VXLAN port.
    static let underlayBridge = "br-ul"
    static let vxlanPort = "vxlan0"

    /// Whether ovs-vswitchd and its tools are installed (Debian: openvswitch-switch).
    static var isInstalled: Bool {
        ["ovs-vswitchd", "ovsdb-server", "ovsdb-tool", "ovs-vsctl", "ovs-ofctl", "ovs-appctl"].allSatisfy {
            access(systemTool($0), X_OK) == 0
        }
    }

    static var schema: String {
        for path in ["/usr/share/openvswitch/vswitch.ovsschema", "/usr/local/share/openvswitch/vswitch.ovsschema"]
        where access(path, R_OK) == 0 { return path }
        return "/usr/share/openvswitch/vswitch.ovsschema"
    }

    /// `rules` = 0: NORMAL (MAC learning); otherwise the equivalent of VSwiftSwitch.flowTable(rules).
    /// `helperCPU`: where the non-PMD threads run.
    /// The AF_XDP devices (toward the generator, toward the sink) and, with VXLAN, the tunnel end.
    private let devices: [String]
    private let vxlan: VXLANLeg?
    /// The device whose transmit count is compared with the sink's.
    private let sinkSideDevice: String

    /// `instance` tells apart two OVS instances of one bench (the round trip): it names the directory.
    init(namespace: String, cpu: Int, helperCPU: Int, rules: Int, vxlan: VXLANLeg? = nil, instance: String = "",
         xdpMode: String = "native") throws {
        self.namespace = namespace
        self.vxlan = vxlan
        name = vxlan == nil ? "ovs-afxdp" : "ovs-vxlan"
        devices = vxlan.map { [$0.overlayDevice, $0.underlayDevice] } ?? ["s0", "s1"]
        sinkSideDevice = vxlan.map { $0.direction == .encap ? $0.underlayDevice : $0.overlayDevice } ?? "s1"
        // A stray PMD of a killed bench would busy-poll on the switch CPU: checked again per run.
        Self.removeStale()
        directory = Self.directoryPrefix + String(getpid()) + (instance.isEmpty ? "" : "-" + instance)
        _ = try? runCommand(["/bin/rm", "-rf", directory])
        guard mkdir(directory, 0o700) == 0 else { throw BenchError.failed("mkdir \(directory): \(errnoText())") }
        do {
            try start(cpu: cpu, helperCPU: helperCPU, rules: rules, xdpMode: xdpMode)
        } catch {
            stop()
            throw error
        }
    }

    private func start(cpu: Int, helperCPU: Int, rules: Int, xdpMode: String) throws {
        try ovs(["ovsdb-tool", "create", "\(directory)/conf.db", Self.schema])
        let options = ["--detach", "--no-chdir", "-vconsole:off", "-vfile:info"]
        try daemon(["ovsdb-server", "\(directory)/conf.db", "--remote=punix:\(directory)/db.sock",
                 "--pidfile=\(directory)/ovsdb-server.pid", "--log-file=\(directory)/ovsdb-server.log",
                 "--unixctl=\(directory)/ovsdb-server.ctl"] + options, cpu: helperCPU)
        started.append("ovsdb-server")
        try vsctl(["--no-wait", "init"])
        // The PMD's CPU must be configured before the first port: otherwise a PMD starts on
        // every CPU (and fights the generator).
        try vsctl(["--no-wait", "set", "Open_vSwitch", ".", "other_config:pmd-cpu-mask=0x" + String(1 << cpu, radix: 16)])
        try daemon(["ovs-vswitchd", "unix:\(directory)/db.sock",
                 "--pidfile=\(directory)/ovs-vswitchd.pid", "--log-file=\(directory)/ovs-vswitchd.log",
                 "--unixctl=\(directory)/ovs-vswitchd.ctl"] + options)
        started.append("ovs-vswitchd")
        guard let text = readTextFile("\(directory)/ovs-vswitchd.pid"),
              let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw BenchError.failed("ovs-vswitchd wrote no pidfile in \(directory)")
        }
        self.pid = pid
        let types = try vsctl(["get", "Open_vSwitch", ".", "iface_types"])
        guard types.contains("afxdp") else {
            throw BenchError.failed("this ovs-vswitchd has no AF_XDP support (iface_types: \(types.trimmingCharacters(in: .whitespacesAndNewlines)))")
        }
        // OpenFlow 1.4 for add-flows --bundle (one transaction, as vswift installs a table).
        try vsctl(["add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
                   "protocols=OpenFlow10,OpenFlow13,OpenFlow14"])
        // OVS 3.1 knows xdp-mode best-effort|native-with-zerocopy|native|generic (no
        // native-with-maxsize); veth has no zero-copy, so native is copy mode as for xsk_fwd.
        func addAFXDPPort(_ port: String, bridge: String, number: Int) throws {
            try vsctl(["add-port", bridge, port, "--", "set", "interface", port, "type=afxdp",
                       "options:n_rxq=1", "options:xdp-mode=\(xdpMode)", "ofport_request=\(number)"])
        }
        switch vxlan?.direction {
        case .encap:
            let leg = vxlan!
            try addAFXDPPort(leg.overlayDevice, bridge: "br0", number: 1)
            try addVXLANPort(remote: leg.remote, number: 2)
            try vsctl(["add-br", Self.underlayBridge, "--", "set", "bridge", Self.underlayBridge, "datapath_type=netdev"])
            try addAFXDPPort(leg.underlayDevice, bridge: Self.underlayBridge, number: 1)
        case .decap:
            // The VXLAN frames arrive addressed to the underlay device's MAC: br-ul takes it as its
            // own, so that they are for the bridge's LOCAL port, where OVS pops tunnels.
            let leg = vxlan!
            let underlay = try Threads.run(inNamespace: namespace) { [namespace] in
                try deviceIdentity(leg.underlayDevice, namespace: namespace)
            }
            try vsctl(["add-br", Self.underlayBridge, "--", "set", "bridge", Self.underlayBridge, "datapath_type=netdev",
                       "other-config:hwaddr=\"\(formatMACAddress(underlay.mac))\""])
            try addAFXDPPort(leg.underlayDevice, bridge: Self.underlayBridge, number: 1)
            try addVXLANPort(remote: leg.remote, number: 1)
            try addAFXDPPort(leg.overlayDevice, bridge: "br0", number: 2)
        case nil:
            try addAFXDPPort("s0", bridge: "br0", number: 1)
            try addAFXDPPort("s1", bridge: "br0", number: 2)
        }
        for port in devices {
            let error = try vsctl(["get", "interface", port, "error"]).trimmingCharacters(in: .whitespacesAndNewlines)
            guard error == "[]" || error.isEmpty else {
                throw BenchError.failed("ovs cannot open \(port) as an AF_XDP port: \(error)\(logErrors())")
            }
        }
        if let vxlan {
            try setUpUnderlay(vxlan)
        }
        try ofctl(["del-flows", "br0"])
        if vxlan != nil {
            try ofctl(["add-flow", "br0", "priority=10,in_port=1,actions=output:2"])
        } else if rules == 0 {
            try ofctl(["add-flow", "br0", "priority=0,actions=NORMAL"])
        } else {
            // Written to a file: ovs-ofctl add-flows reads a million rules in one bundle.
            let path = "\(directory)/flows.txt"
            guard FileManager.default.createFile(atPath: path, contents: Data(Self.flowTable(rules).utf8)) else {
                throw BenchError.failed("cannot write \(path)")
            }
            let started = monotonicSeconds()
            try ovs(["ovs-ofctl", "--timeout=\(Self.flowLoadTimeout)", "-O", "OpenFlow14", "--bundle", "add-flows",
                     "unix:\(directory)/br0.mgmt", path])
            flowLoadSeconds = monotonicSeconds() - started
        }
        // The PMD thread is created when the first port is assigned to it.
        let deadline = monotonicSeconds() + 5
        while threadIDs.isEmpty {
            threadIDs = ThreadCPUTime.threads(of: pid).filter { tid in
                (readTextFile("/proc/\(pid)/task/\(tid)/comm") ?? "").hasPrefix("pmd")
            }
            if threadIDs.isEmpty {
                if Signals.stopRequested { throw BenchError.interrupted }
                guard monotonicSeconds() < deadline else { throw BenchError.failed("ovs-vswitchd started no PMD thread\(logErrors())") }
                usleep(10_000)
            }
        }
        // Not taskset at start: OVS only uses the CPUs in its affinity mask for PMDs. Its other
        // threads are moved off the switch CPU now (threads they create inherit that).
        for tid in ThreadCPUTime.threads(of: pid) where !threadIDs.contains(tid) {
            _ = try? runCommand([systemTool("taskset"), "-p", "-c", String(helperCPU), String(tid)])
        }
    }

    /// Seconds ovs-ofctl may take to load a flow table (a million rules take minutes).
    static let flowLoadTimeout = 1800

    private func addVXLANPort(remote: String, number: Int) throws {
        try vsctl(["add-port", "br0", Self.vxlanPort, "--", "set", "interface", Self.vxlanPort, "type=vxlan",
                   "options:remote_ip=\(remote)", "ofport_request=\(number)"])
    }

    /// The underlay: the local address on br-ul's internal port (in the switch namespace; the
    /// underlay device loses any address a vswift run left, which would compete for the route),
    /// then for encap the route to the far end through br-ul, the far end's MAC as a static tunnel
    /// neighbour and br-ul sending what comes from LOCAL (the encapsulated frames) out of the
    /// underlay device; for decap br-ul sending what arrives to LOCAL (where the datapath pops the
    /// tunnel), once OVS lists the address among its tunnel endpoints (it picks up device
    /// addresses asynchronously).
    private func setUpUnderlay(_ leg: VXLANLeg) throws {
        let ip = systemTool("ip"), bridge = Self.underlayBridge
        try runCommand([ip, "-n", namespace, "addr", "flush", "dev", leg.underlayDevice])
        try runCommand([ip, "-n", namespace, "addr", "replace", leg.local + "/24", "dev", bridge])
        try runCommand([ip, "-n", namespace, "link", "set", bridge, "up"])
        try ofctl(["del-flows", bridge])
        switch leg.direction {
        case .encap:
            // ovs-vswitchd may already have the kernel's route (it listens to it): then the explicit one is a duplicate.
            let routes = try appctl(["ovs/route/show"])
            if !routes.contains("dev \(bridge)") {
                try appctl(["ovs/route/add", "\(leg.remote)/24", bridge])
            }
            try appctl(["tnl/arp/set", bridge, leg.remote, formatMACAddress(leg.remoteMAC)])
            try ofctl(["add-flow", bridge, "priority=10,in_port=LOCAL,actions=output:1"])
        case .decap:
            try ofctl(["add-flow", bridge, "priority=10,in_port=1,actions=LOCAL"])
            let deadline = monotonicSeconds() + 10
            while true {
                let ports = try appctl(["tnl/ports/show", "-v"])
                if ports.contains(leg.local) { return }
                if Signals.stopRequested { throw BenchError.interrupted }
                guard monotonicSeconds() < deadline else {
                    throw BenchError.failed("ovs did not make \(leg.local) a VXLAN endpoint: \(ports)")
                }
                usleep(50_000)
            }
        }
    }

    /// ovs-vswitchd's last error lines, for a failure message (the directory is removed on stop).
    private func logErrors() -> String {
        let lines = (readTextFile("\(directory)/ovs-vswitchd.log") ?? "").split(separator: "\n").filter { $0.contains("|ERR|") }
        return lines.isEmpty ? "" : "; ovs-vswitchd.log: " + lines.suffix(2).joined(separator: " / ")
    }

    /// The rules of VSwiftSwitch.flowTable(count) in ovs-ofctl syntax: s1 → s0 at priority 5, one
    /// rule per generator flow s0 → s1 at priority 10 (every other one also on the destination
    /// address), nothing at priority 0 (a table miss drops: no controller is configured).
    static func flowTable(_ count: Int) -> String {
        var lines = ["priority=5,in_port=2,actions=output:1"]
        lines.reserveCapacity(count + 1)
        for i in 0..<count {
            let ports = VSwiftSwitch.sourcePorts
            var match = "priority=10,in_port=1,udp,tp_src=\(1024 + i % ports)"
            if i % 2 == 1 { match += ",nw_dst=198.18.0.2" }
            if i >= ports { match += ",tp_dst=\(i / ports)" }
            lines.append(match + ",actions=output:2")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Teaches NORMAL where the sink's MAC is (otherwise it floods to s1 and br0): the sink sends
    /// one frame, and we wait until the MAC appears in br0's forwarding database.
    func learn(from sink: Sink) throws {
        let mac = formatMACAddress(sink.mac)
        try sink.sendLearningFrame()
        let deadline = monotonicSeconds() + 3
        while true {
            if Signals.stopRequested { throw BenchError.interrupted }
            let fdb = try appctl(["fdb/show", "br0"])
            if fdb.lowercased().contains(mac) { return }
            guard monotonicSeconds() < deadline else {
                throw BenchError.failed("ovs did not learn the sink's MAC \(mac) on s1: \(fdb)")
            }
            usleep(20_000)
        }
    }

    /// Upcalls the PMD(s) have made so far, from `dpif-netdev/pmd-stats-show`: packets that found
    /// no megaflow and went to the OpenFlow tables (`miss with success upcall`), and those whose
    /// upcall failed (`miss with failed upcall`: dropped, typically because the datapath was at its
    /// flow limit). Counted across the window, they show whether the megaflow cache was still filling.
    func upcalls() -> OVSUpcalls? {
        guard let text = try? appctl(["dpif-netdev/pmd-stats-show"]) else { return nil }
        return OVSUpcalls(pmdStatistics: text)
    }

    /// OVS's own count of frames sent on s1 (for the comparison with the sink), from the datapath:
    /// the Interface table's statistics are refreshed only every 5 s.
    func transmitted() -> UInt64? {
        // "  port 2: s1 (afxdp)\n    RX packets:... \n    TX packets:N errors:..."
        guard let text = try? appctl(["dpctl/show", "-s"]) else { return nil }
        let lines = text.split(separator: "\n")
        guard let port = lines.firstIndex(where: { $0.contains(": \(sinkSideDevice) (") }) else { return nil }
        for line in lines[(port + 1)...].prefix(4) {
            if let range = line.range(of: "TX packets:") {
                return UInt64(line[range.upperBound...].prefix(while: \.isNumber))
            }
        }
        return nil
    }

    /// `exit --cleanup` makes ovs-vswitchd delete its datapath and ports, which takes the XDP
    /// program off s0 and s1; then ovsdb-server goes, then the directory. XDP left behind (a
    /// vswitchd that had to be killed) is removed with ip, since the next switch needs the ports.
    func stop() {
        guard !stopped else { return }
        stopped = true
        if started.contains("ovs-vswitchd") {
            _ = try? runCommand([systemTool("timeout"), "10", systemTool("ovs-appctl"),
                                 "-t", "\(directory)/ovs-vswitchd.ctl", "exit", "--cleanup"])
            // exit answers before the ports are gone: let it finish rather than SIGTERM it.
            let deadline = monotonicSeconds() + 5
            while Self.isDaemon(pid, "ovs-vswitchd") && monotonicSeconds() < deadline { usleep(10_000) }
        }
        Self.killDaemons(in: directory)
        for port in devices {
            if let link = try? runCommand([systemTool("ip"), "-n", namespace, "link", "show", port]),
               link.contains(" xdp") {
                stopNotes.append("ovs left an XDP program on \(port); removed with ip link set xdp off")
                _ = try? runCommand([systemTool("ip"), "-n", namespace, "link", "set", "dev", port, "xdp", "off"])
            }
        }
        _ = try? runCommand(["/bin/rm", "-rf", directory])
    }

    /// SIGTERM, then SIGKILL after 5 s, to the daemons whose pidfiles are in `directory`
    /// (checking that each pid still is an OVS daemon); waits until they are gone.
    static func killDaemons(in directory: String) {
        for daemon in ["ovs-vswitchd", "ovsdb-server"] {
            guard let text = readTextFile("\(directory)/\(daemon).pid"),
                  let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0 else { continue }
            func alive() -> Bool { isDaemon(pid, daemon) }
            guard alive() else { continue }
            kill(pid, SIGTERM)
            let deadline = monotonicSeconds() + 5
            while alive() && monotonicSeconds() < deadline { usleep(10_000) }
            if alive() {
                kill(pid, SIGKILL)
                let hard = monotonicSeconds() + 2
                while alive() && monotonicSeconds() < hard { usleep(10_000) }
            }
        }
    }

    /// Whether `pid` is a live (not zombie) process named `daemon` ("ovs-vswitchd", "ovsdb-server":
    /// both fit in the 15 characters of a comm).
    static func isDaemon(_ pid: Int32, _ daemon: String) -> Bool {
        guard pid > 0 else { return false }
        let comm = readTextFile("/proc/\(pid)/comm")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        return comm == daemon && (readTextFile("/proc/\(pid)/stat").map { !$0.contains(") Z ") } ?? false)
    }

    /// Daemons left by bench processes that no longer exist (killed with SIGKILL): their
    /// directories are /tmp/vsb-ovs-PID. Runs before the namespaces are deleted.
    static func removeStale() {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/tmp") else { return }
        for name in entries where ("/tmp/" + name).hasPrefix(directoryPrefix) {
            // /tmp/vsb-ovs-PID or /tmp/vsb-ovs-PID-INSTANCE
            guard let pid = Int32(name.dropFirst(directoryPrefix.count - "/tmp/".count).prefix(while: \.isNumber)) else { continue }
            if pid != getpid(), !isBench(pid) {
                killDaemons(in: "/tmp/" + name)
                _ = try? runCommand(["/bin/rm", "-rf", "/tmp/" + name])
            }
        }
    }

    /// Whether `pid` is a running vswift-bench: not gone, not a zombie, not a reused pid.
    private static func isBench(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 || errno != ESRCH else { return false }
        let comm = readTextFile("/proc/\(pid)/comm")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        return comm == "vswift-bench" && (readTextFile("/proc/\(pid)/stat").map { !$0.contains(") Z ") } ?? false)
    }

    // MARK: OVS's tools, pointed at the private directory

    private var environment: [String] {
        ["OVS_RUNDIR=\(directory)", "OVS_DBDIR=\(directory)", "OVS_LOGDIR=\(directory)"]
    }

    @discardableResult
    private func ovs(_ argv: [String]) throws -> String {
        try runCommand([systemTool("env")] + environment + [systemTool(argv[0])] + argv.dropFirst())
    }

    /// Starts a daemon with `--detach` in the switch namespace and waits until it has detached
    /// (it is then initialized). Not through Foundation's Process: the detached daemon would inherit
    /// the descriptor by which Process notices the exit (and runCommand's pipes), and the bench
    /// would wait for the daemon's end. posix_spawn with every descriptor above stderr closed
    /// instead; the daemon's early output goes to a file in the directory.
    private func daemon(_ argv: [String], cpu: Int? = nil) throws {
        var command = [systemTool("ip"), "netns", "exec", namespace, systemTool("env")] + environment
        if let cpu { command += [systemTool("taskset"), "-c", String(cpu)] }
        command += [systemTool(argv[0])] + argv.dropFirst()
        let outputPath = "\(directory)/\(argv[0]).out"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        guard Self.closeFrom(&actions, 3) else { throw BenchError.failed("posix_spawn_file_actions_addclosefrom_np is not available") }
        var cArguments = command.map { strdup($0) } + [nil]
        defer { for argument in cArguments { free(argument) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, command[0], &actions, nil, &cArguments, environ)
        guard rc == 0 else { throw BenchError.failed("cannot start \(argv[0]): \(errnoText(rc))") }
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        // WIFEXITED && WEXITSTATUS == 0
        guard status & 0x7f == 0, (status >> 8) & 0xff == 0 else {
            let text = (readTextFile(outputPath) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            throw BenchError.failed("`\(command.joined(separator: " "))` failed (status \(status)): \(text)")
        }
    }

    private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    /// glibc 2.34's posix_spawn_file_actions_addclosefrom_np, looked up at run time.
    private static let closeFromFunction: CloseFrom? =
        dlsym(nil, "posix_spawn_file_actions_addclosefrom_np").map { unsafeBitCast($0, to: CloseFrom.self) }

    private static func closeFrom(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ fd: Int32) -> Bool {
        guard let function = closeFromFunction else { return false }
        return function(actions, fd) == 0
    }

    @discardableResult
    private func vsctl(_ arguments: [String]) throws -> String {
        try ovs(["ovs-vsctl", "--db=unix:\(directory)/db.sock", "--timeout=20"] + arguments)
    }

    @discardableResult
    private func ofctl(_ arguments: [String]) throws -> String {
        // The bridge's management socket; "br0" alone would be looked up in OVS_RUNDIR too.
        let target = arguments.count > 1 ? ["unix:\(directory)/\(arguments[1]).mgmt"] + arguments.dropFirst(2) : []
        return try ovs(["ovs-ofctl", "--timeout=20", arguments[0]] + target)
    }

    @discardableResult
    private func appctl(_ arguments: [String]) throws -> String {
        try ovs(["ovs-appctl", "-t", "\(directory)/ovs-vswitchd.ctl", "--timeout=10"] + arguments)
    }
}
