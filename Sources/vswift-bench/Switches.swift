import Foundation
import Glibc
import VSwiftClassifier
import VSwiftDatapath
import VSwiftPacket

/// A switch forwarding s0 <-> s1 in the switch namespace (or, for the round trip, a pair of
/// switches in two namespaces), measured by the bench.
protocol SwitchUnderTest: AnyObject {
    var name: String { get }
    /// Process and thread ids whose CPU time is the switch's (its forwarding threads).
    var pid: Int32 { get }
    var threadIDs: [Int32] { get }
    /// The threads to measure with their process ids (two OVS instances are two processes).
    var measuredThreads: [(pid: Int32, tid: Int32)] { get }
    func stop()
}

extension SwitchUnderTest {
    var measuredThreads: [(pid: Int32, tid: Int32)] { threadIDs.map { (pid, $0) } }
}

/// vswift in this process (with `rules` > 0: an OpenFlow table instead of NORMAL): a Datapath with one worker pinned to the switch CPU, bridge br0 with s0
/// and s1 as AF_XDP ports. NORMAL forwarding (MAC learning).
final class VSwiftSwitch: SwitchUnderTest {
    let name: String
    let pid = getpid()
    let datapath: Datapath
    private(set) var threadIDs: [Int32] = []
    /// With rules: seconds to build the rules and install them as the bridge's flow table.
    private(set) var flowLoadSeconds: Double?

    /// `count` rules: one per generator flow (UDP source port 1024 + i, as the generator varies it)
    /// from port 1 to port 2, in two subtables (every other rule also matches the destination
    /// address), and the reverse direction, above a priority-0 drop.
    static func flowTable(_ count: Int) -> [DatapathRule] {
        var rules: [DatapathRule] = []
        rules.reserveCapacity(count + 1)
        var back = Match()
        back.set(.inPort, 2)
        rules.append(DatapathRule(match: back, priority: 5, sequence: 0, actions: [.output(1)], counterSlot: 0))
        for i in 0..<count {
            var match = Match()
            match.set(.inPort, 1)
            match.set(.dlType, 0x0800)
            match.set(.nwProto, 17)
            match.set(.tpSrc, UInt64(1024 + i % Self.sourcePorts))
            if i % 2 == 1 { match.set(.nwDst, 0xc612_0002) }  // 198.18.0.2
            if i >= Self.sourcePorts { match.set(.tpDst, UInt64(i / Self.sourcePorts)) }
            rules.append(DatapathRule(match: match, priority: 10, sequence: UInt64(i + 1), actions: [.output(2)], counterSlot: i + 1))
        }
        return rules
    }

    /// UDP source ports the rules use, 1024...65535; past that many rules, tp_dst tells them apart.
    static let sourcePorts = 65536 - 1024

    /// Underlay addresses of the tunnel scenarios: the switch's RLOC and the far end's.
    static let encapLocal = "198.19.0.1", encapRemote = "198.19.0.2"
    static let decapLocal = "198.19.1.1", decapRemote = "198.19.1.2"

    /// `mapPrefixes` (encap only): lisp0 takes its RLOC from a map-cache of that many entries
    /// (ForwardMapCache) instead of remote_ip=198.19.0.2.
    /// `xdpCache`: vswiftd's `--xdp-cache on` (row vswift-xdp). `p2pRule` (with rules 0, no
    /// tunnel): the rule in_port=1,actions=output:2 instead of NORMAL.
    init(namespace: String, cpu: Int, bpfDirectory: String, rules: Int = 0,
         tunnel: TunnelScenario = .none, sinkMAC: [UInt8] = [], mapPrefixes: Int? = nil,
         xdpCache: Bool = false, p2pRule: Bool = false) throws {
        name = xdpCache ? "vswift-xdp" : "vswift"
        // Tunnel scenarios: the underlay device keeps an address, and (encap) the far end's MAC is
        // a static neighbour, since the sink answers no ARP.
        switch tunnel {
        case .none, .roundtrip:
            break
        case .encap:
            _ = try runCommand([systemTool("ip"), "-n", namespace, "addr", "replace", Self.encapLocal + "/24", "dev", "s1"])
            _ = try runCommand([systemTool("ip"), "-n", namespace, "neigh", "replace", Self.encapRemote, "lladdr",
                               formatMACAddress(sinkMAC), "dev", "s1", "nud", "permanent"])
        case .decap:
            _ = try runCommand([systemTool("ip"), "-n", namespace, "addr", "replace", Self.decapLocal + "/24", "dev", "s0"])
        }
        var loadSeconds: Double?
        datapath = try Self.makeDatapath(namespace: namespace, cpu: cpu, bpfDirectory: bpfDirectory, xdpCache: xdpCache) { datapath in
            try datapath.addBridge("br0")
            switch tunnel {
            case .none, .roundtrip:
                try datapath.addPort("s0", bridge: "br0")
                try datapath.addPort("s1", bridge: "br0")
            case .encap:
                try datapath.addPort("s0", bridge: "br0")
                try datapath.addUnderlay("s1")
                let options = mapPrefixes == nil
                    ? LISPPortOptions(remote: .address(IPAddress(Self.encapRemote)!))
                    : LISPPortOptions(remote: .map, key: .id(ForwardMapCache.instanceID))
                try datapath.addTunnelPort("lisp0", bridge: "br0", options: options)
                try datapath.setPortNumbers(bridge: "br0", ["s0": 1, "lisp0": 2, "br0": 65534])
                try datapath.setFlowTable(bridge: "br0", rules: Self.tunnelRules(in: 1, out: 2))
            case .decap:
                try datapath.addUnderlay("s0")
                try datapath.addPort("s1", bridge: "br0")
                try datapath.addTunnelPort("lisp0", bridge: "br0", options: LISPPortOptions(remote: .address(IPAddress(Self.decapRemote)!)))
                try datapath.setPortNumbers(bridge: "br0", ["s1": 1, "lisp0": 2, "br0": 65534])
                try datapath.setFlowTable(bridge: "br0", rules: Self.tunnelRules(in: 2, out: 1))
            }
            if rules > 0 && tunnel == .none {
                try datapath.setPortNumbers(bridge: "br0", ["s0": 1, "s1": 2, "br0": 65534])
                // Timed, to set beside OVS's add-flows.
                let started = monotonicSeconds()
                try datapath.setFlowTable(bridge: "br0", rules: Self.flowTable(rules))
                loadSeconds = monotonicSeconds() - started
            } else if p2pRule && tunnel == .none {
                try datapath.setPortNumbers(bridge: "br0", ["s0": 1, "s1": 2, "br0": 65534])
                try datapath.setFlowTable(bridge: "br0", rules: Self.tunnelRules(in: 1, out: 2))
            }
        }
        flowLoadSeconds = loadSeconds
        do {
            // The resolver must have found the next hop (encap) and published the local RLOCs
            // that the underlay's XDP filter steers (decap) before traffic is offered.
            switch tunnel {
            case .encap:
                if let mapPrefixes {
                    try ForwardMapCache.install(datapath, prefixes: mapPrefixes)
                } else {
                    try Self.waitForNextHop(datapath)
                }
            case .decap: try Self.waitForLocalAddress(datapath, Self.decapLocal)
            case .none, .roundtrip: break
            }
            threadIDs = try Self.workerThreads(of: datapath)
        } catch {
            datapath.shutdown()
            throw error
        }
    }

    /// A one-worker Datapath pinned to `cpu`, created on a thread that entered `namespace`: its
    /// worker threads (pthread_create in Datapath.init) inherit the namespace, and the bridge's tap,
    /// the XDP links and the AF_XDP sockets are all made there. `configure` adds bridges, ports and
    /// flows; if it throws, the datapath is shut down again.
    static func makeDatapath(namespace: String, cpu: Int, bpfDirectory: String, xdpCache: Bool = false,
                             configure: @escaping (Datapath) throws -> Void) throws -> Datapath {
        try Threads.run(inNamespace: namespace) { () throws -> Datapath in
            var configuration = Datapath.Configuration()
            configuration.workers = 1
            configuration.cpus = [cpu]
            configuration.bpfDirectory = bpfDirectory
            // The sink's MAC is learned once, before the generator starts; it must not age out.
            configuration.macAgingSeconds = 365 * 86_400
            configuration.xdpFlowCache = xdpCache
            let datapath = try Datapath(configuration: configuration)
            do {
                try configure(datapath)
            } catch {
                datapath.shutdown()
                throw error
            }
            return datapath
        }
    }

    /// Waits (5 s at most) until lisp0 has a next hop.
    static func waitForNextHop(_ datapath: Datapath) throws {
        try waitUntil("vswift's LISP port has no next hop", datapath) {
            switch datapath.attachment(of: "lisp0")?.tunnelState {
            case .remote(_, .resolved?)?, .remoteFromFlow?: return true
            default: return false
            }
        }
    }

    /// Waits (5 s at most) until the resolver has published `address` as a local RLOC.
    static func waitForLocalAddress(_ datapath: Datapath, _ address: String) throws {
        try waitUntil("vswift has not published \(address) as a local RLOC", datapath) {
            datapath.tunnelLocalAddresses.contains(IPAddress(address)!)
        }
    }

    private static func waitUntil(_ failure: String, _ datapath: Datapath, _ ready: () -> Bool) throws {
        let deadline = monotonicSeconds() + 5
        while !ready() {
            if Signals.stopRequested { throw BenchError.interrupted }
            guard monotonicSeconds() < deadline else {
                // The datapath's data as Swift prints it (`show`'s wording is the control plane's).
                let state = datapath.attachment(of: "lisp0")?.tunnelState.map { "\($0)" } ?? "?"
                throw BenchError.failed("\(failure): \(state)")
            }
            usleep(10_000)
        }
    }

    /// The worker threads' ids (a worker publishes its id when it starts running; 2 s at most).
    static func workerThreads(of datapath: Datapath) throws -> [Int32] {
        let deadline = monotonicSeconds() + 2
        while datapath.workerThreadIDs.contains(0) && monotonicSeconds() < deadline { usleep(1000) }
        let ids = datapath.workerThreadIDs
        guard !ids.contains(0) else { throw BenchError.failed("vswift's worker thread did not start") }
        return ids
    }

    /// in_port=IN → output:OUT, the p2p rule of the tunnel scenarios.
    static func tunnelRules(in inPort: UInt32, out: UInt32) -> [DatapathRule] {
        var match = Match()
        match.set(.inPort, UInt64(inPort))
        return [DatapathRule(match: match, priority: 10, sequence: 0, actions: [.output(out)], counterSlot: 0)]
    }

    /// Teaches the bridge where the sink's MAC is: the sink sends one frame, and we wait until the
    /// switch has received it on s1 (it has then learned the source MAC before forwarding).
    func learn(from sink: Sink) throws {
        let before = datapath.statistics(port: "s1")?.rxPackets ?? 0
        try sink.sendLearningFrame()
        let deadline = monotonicSeconds() + 2
        while (datapath.statistics(port: "s1")?.rxPackets ?? 0) == before {
            if Signals.stopRequested { throw BenchError.interrupted }
            guard monotonicSeconds() < deadline else {
                throw BenchError.failed("vswift did not receive the sink's learning frame on s1")
            }
            usleep(1000)
        }
    }

    func stop() { datapath.shutdown() }
}

/// The C baseline, bench/baseline/xsk_fwd, started as
/// `ip netns exec SW taskset -c CPU xsk_fwd -o vswift_redirect.bpf.o s0 s1`.
final class BaselineSwitch: SwitchUnderTest {
    let name = "xsk_fwd"
    private(set) var pid: Int32 = 0
    private let process = Process()
    private let output = Pipe()
    private let errors = Pipe()
    private var stopped = false
    /// What xsk_fwd printed on stderr (its totals at exit, or why it failed).
    private(set) var log = ""

    var threadIDs: [Int32] { ThreadCPUTime.threads(of: pid) }

    init(namespace: String, cpu: Int, executable: String, redirectObject: String) throws {
        process.executableURL = URL(fileURLWithPath: systemTool("ip"))
        process.arguments = ["netns", "exec", namespace, systemTool("taskset"), "-c", String(cpu),
                             executable, "-o", redirectObject, "s0", "s1"]
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw BenchError.failed("cannot start \(executable): \(error)")
        }
        // Wait for "xsk_fwd: ready pid=N" (sockets bound and steered).
        let fd = output.fileHandleForReading.fileDescriptor
        var text = ""
        // Loading and verifying the redirect program (with the XDP cache's code) takes seconds of
        // CPU; on a loaded host the pinned process gets a fraction of it (seen: 23 s).
        let deadline = monotonicSeconds() + 60
        while pid == 0 {
            if Signals.stopRequested {
                stop()
                throw BenchError.interrupted
            }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 50)
            if ready > 0 {
                var buffer = [UInt8](repeating: 0, count: 256)
                let n = read(fd, &buffer, buffer.count)
                if n > 0 { text += String(decoding: buffer[0..<n], as: UTF8.self) }
                if n == 0 || !process.isRunning {
                    stop()
                    throw BenchError.failed("xsk_fwd exited: \(log.trimmingCharacters(in: .whitespacesAndNewlines))")
                }
                if let range = text.range(of: "ready pid=") {
                    let digits = text[range.upperBound...].prefix(while: \.isNumber)
                    pid = Int32(digits) ?? 0
                }
            } else if !process.isRunning || monotonicSeconds() > deadline {
                stop()
                throw BenchError.failed("xsk_fwd did not get ready: \(log.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
        }
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            let deadline = monotonicSeconds() + 5
            while process.isRunning && monotonicSeconds() < deadline { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        let data = errors.fileHandleForReading.readDataToEndOfFile()
        log = String(decoding: data, as: UTF8.self)
    }

    deinit { stop() }
}
