import CXDP
import Foundation
import Glibc
import Testing
import VSwiftControl
import VSwiftProtocol
import VSwiftTesting

/// Integration tests need root, AF_XDP, veth and the built binaries. Outside CI a machine without
/// them skips the tests; under CI=true the capability check is skipped so a missing capability fails.
enum Capability {
    static var isCI: Bool { TestMachine.isCI }
    static var available: Bool {
        isCI || (geteuid() == 0 && FileManager.default.isExecutableFile(atPath: Paths.vswiftd))
    }
}

/// Every integration suite runs inside this one, one test at a time: they share the machine's two
/// CPUs (a bench run saturates both) and would disturb each other's traffic.
@Suite("Integration", .serialized, .enabled(if: Capability.available, "needs root, AF_XDP and the built binaries"))
enum Integration {}

enum Paths {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()
    static let binDir = ProcessInfo.processInfo.environment["VSWIFT_BIN_DIR"] ?? root + "/.build/debug"
    static let vswiftd = binDir + "/vswiftd"
    static let vswiftctl = binDir + "/vswiftctl"
    static let bpfDir = ProcessInfo.processInfo.environment["VSWIFT_BPF_DIR"] ?? root + "/.build/bpf"
    /// `--xdp-cache on|off` for every vswiftd the tests start, from VSWIFT_TEST_XDP_CACHE
    /// (scripts/test.sh runs the integration tests once each way); unset: vswiftd's default.
    static let xdpCacheArguments: [String] = {
        guard let mode = ProcessInfo.processInfo.environment["VSWIFT_TEST_XDP_CACHE"], !mode.isEmpty else { return [] }
        return ["--xdp-cache", mode]
    }()
}

/// A short random tag that keeps names unique across concurrent runs (interface names ≤ 15 bytes).
func uniqueTag() -> String {
    String(UInt32.random(in: 0..<0xFFFFF), radix: 16)
}

/// Test hosts: network namespaces joined by veth pairs, all removed by `destroy()`.
final class Topology {
    let tag = uniqueTag()
    private(set) var namespaces: [String] = []

    /// Creates namespace `vswt-<tag>-<role>` with loopback up and IPv6 off (no autoconf noise in counters).
    func namespace(_ role: String) throws -> String {
        let name = "vswt-\(tag)-\(role)"
        try run(["ip", "netns", "add", name])
        namespaces.append(name)
        try run(["ip", "-n", name, "link", "set", "lo", "up"])
        try run(["ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
        try run(["ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"])
        return name
    }

    /// A veth pair `a` in namespace `nsA`, `b` in `nsB`, both up, with `queues` queues each;
    /// TX checksum offload off on `a` (the host side), as AF_XDP copy mode needs for TCP.
    func veth(_ a: String, in nsA: String, _ b: String, in nsB: String, queues: Int = 1) throws {
        try run(["ip", "link", "add", a, "netns", nsA, "numtxqueues", "\(queues)", "numrxqueues", "\(queues)",
                 "type", "veth", "peer", b, "netns", nsB, "numtxqueues", "\(queues)", "numrxqueues", "\(queues)"])
        try run(["ip", "-n", nsA, "link", "set", a, "up"])
        try run(["ip", "-n", nsB, "link", "set", b, "up"])
        _ = try? run(["ip", "netns", "exec", nsA, "ethtool", "-K", a, "tx", "off"], check: false)
    }

    func destroy() {
        for ns in namespaces.reversed() { _ = try? run(["ip", "netns", "del", ns], check: false) }
        namespaces = []
    }

    deinit { destroy() }
}

/// A vswiftd running inside a namespace, with its own control socket.
final class Daemon {
    let namespace: String
    let socketPath: String
    let process = Process()
    let logPath: String
    let dbPath: String

    /// `freshConfiguration: false` restarts on the state a previous daemon in this namespace saved.
    init(namespace: String, workers: Int = 1, freshConfiguration: Bool = true, extraArguments: [String] = []) throws {
        self.namespace = namespace
        socketPath = "/tmp/\(namespace).sock"
        logPath = "/tmp/\(namespace).vswiftd.log"
        dbPath = "/tmp/\(namespace).db.json"
        unlink(socketPath)
        // A fresh configuration: the default file is the host's, and a previous run's would be restored.
        if freshConfiguration { unlink(dbPath) }
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip", "netns", "exec", namespace, Paths.vswiftd, "--socket", socketPath, "--db", dbPath,
                             "--workers", "\(workers)", "--bpf-dir", Paths.bpfDir, "--log-level", "debug"] + Paths.xdpCacheArguments + extraArguments
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = log
        process.standardError = log
        try process.run()
        // Ready when the control socket answers.
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if process.isRunning == false { break }
            if (try? client.call("show", params: nil)) != nil { return }
            usleep(50_000)
        }
        stop()
        throw CommandFailed(command: process.arguments ?? [], result: CommandResult(status: -1, stdout: "", stderr: "vswiftd did not come up: \(self.log)"))
    }

    var client: ControlClient { ControlClient(socketPath: socketPath, timeout: .seconds(20)) }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Runs `vswiftctl ARGS` against this daemon.
    @discardableResult
    func ctl(_ arguments: String..., check: Bool = true) throws -> CommandResult {
        try run([Paths.vswiftctl, "--socket", socketPath] + arguments, check: check)
    }

    func call(_ method: String, _ params: JSONValue? = nil) throws -> Result<JSONValue, RPCError> {
        try client.call(method, params: params)
    }

    /// The pid of vswiftd itself (ip netns exec execs it, so it is the Process's pid).
    var pid: Int32 { process.processIdentifier }

    /// Sends `signal` and waits for the daemon to exit (default SIGTERM).
    func stop(signal: Int32 = SIGTERM) {
        guard process.isRunning else { return }
        kill(process.processIdentifier, signal)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    // The socket file is not removed here: a successor daemon may already own the same path.
    deinit { stop() }
}

/// A raw AF_PACKET socket on one interface of a namespace: sends and receives whole Ethernet frames.
final class PacketSocket {
    let fd: Int32

    init(namespace: String, interface: String) throws {
        fd = try inNamespace(namespace) { () throws -> Int32 in
            let protocolAll = UInt16(ETH_P_ALL).bigEndian
            let fd = socket(AF_PACKET, vs_sock_raw, Int32(protocolAll))
            guard fd >= 0 else { throw CommandFailed(command: ["socket(AF_PACKET)"], result: CommandResult(status: errno, stdout: "", stderr: "")) }
            var address = sockaddr_ll()
            address.sll_family = UInt16(AF_PACKET)
            address.sll_protocol = protocolAll
            address.sll_ifindex = Int32(if_nametoindex(interface))
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_ll>.size)) }
            }
            guard rc == 0 else { throw CommandFailed(command: ["bind(AF_PACKET)", interface], result: CommandResult(status: errno, stdout: "", stderr: "")) }
            return fd
        }
    }

    func send(_ frame: [UInt8]) {
        _ = frame.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
    }

    /// Frames received within `timeout` seconds that satisfy `match` (outgoing copies excluded).
    func receive(timeout: Double, until count: Int = .max, match: ([UInt8]) -> Bool) -> [[UInt8]] {
        var frames: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while frames.count < count {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { break }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(remaining * 1000) + 1) > 0 else { continue }
            var from = sockaddr_ll()
            var length = socklen_t(MemoryLayout<sockaddr_ll>.size)
            let n = buffer.withUnsafeMutableBytes { raw in
                withUnsafeMutablePointer(to: &from) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, raw.baseAddress, raw.count, 0, $0, &length) }
                }
            }
            guard n > 0, from.sll_pkttype != UInt8(PACKET_OUTGOING) else { continue }
            let frame = Array(buffer[0..<n])
            if match(frame) { frames.append(frame) }
        }
        return frames
    }

    deinit { close(fd) }
}

/// A tap device created (and held open) by the test: frames written to `fd` enter the kernel as if
/// received on the tap; frames the kernel sends out of the tap are read from `fd`.
final class TestTap {
    let fd: Int32
    let name: String

    init(namespace: String, name: String) throws {
        self.name = name
        fd = try inNamespace(namespace) { () throws -> Int32 in
            let fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC)
            guard fd >= 0, vs_tap_attach(fd, name, 0) == 0, vs_set_nonblocking(fd) == 0, vs_if_set_up(name, 1) == 0 else {
                throw CommandFailed(command: ["create tap", name], result: CommandResult(status: errno, stdout: "", stderr: String(cString: strerror(errno))))
            }
            return fd
        }
    }

    func write(_ frame: [UInt8]) -> Bool {
        frame.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == frame.count
    }

    func read(timeout: Double, match: ([UInt8]) -> Bool) -> [UInt8]? {
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while deadline.timeIntervalSinceNow > 0 {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 50) > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0, match(Array(buffer[0..<n])) { return Array(buffer[0..<n]) }
        }
        return nil
    }

    deinit { close(fd) }
}

/// A UDP socket created inside a namespace.
final class UDPSocket: Sendable {
    let fd: Int32

    init(namespace: String, bindPort: UInt16 = 0) throws {
        fd = try inNamespace(namespace) { () throws -> Int32 in
            let fd = socket(AF_INET, vs_sock_dgram, 0)
            var size: Int32 = 8 << 20
            setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, 4)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = bindPort.bigEndian
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard fd >= 0, rc == 0 else { throw CommandFailed(command: ["udp socket"], result: CommandResult(status: errno, stdout: "", stderr: "")) }
            return fd
        }
    }

    func send(_ payload: [UInt8], to ip: String, port: UInt16) -> Bool {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, ip, &address.sin_addr)
        let n = payload.withUnsafeBytes { raw in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, raw.baseAddress, raw.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        return n == payload.count
    }

    /// Receives datagrams until `timeout` passes with none arriving; returns their payloads.
    func receiveAll(idleTimeout: Double) -> [[UInt8]] {
        var payloads: [[UInt8]] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        while true {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(idleTimeout * 1000)) > 0 else { break }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { payloads.append(Array(buffer[0..<n])) }
        }
        return payloads
    }

    deinit { close(fd) }
}

/// Interface MAC inside a namespace, as 6 bytes.
func macAddress(namespace: String, interface: String) throws -> [UInt8] {
    let text = try run(["ip", "-n", namespace, "-o", "link", "show", interface]).stdout
    guard let range = text.range(of: "link/ether ") else { throw CommandFailed(command: ["mac", interface], result: CommandResult(status: 1, stdout: text, stderr: "")) }
    let mac = text[range.upperBound...].prefix(17)
    return mac.split(separator: ":").compactMap { UInt8($0, radix: 16) }
}

/// Whether any XDP program is attached to `interface` (or the interface is gone).
func hasXDP(namespace: String, interface: String) -> Bool {
    guard let out = try? run(["ip", "-n", namespace, "link", "show", "dev", interface], check: false) else { return false }
    return out.stdout.contains("xdp")
}

func interfaceExists(namespace: String, interface: String) -> Bool {
    ((try? run(["ip", "-n", namespace, "link", "show", "dev", interface], check: false))?.status ?? 1) == 0
}
