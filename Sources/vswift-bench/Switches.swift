import Foundation
import Glibc
import VSwiftClassifier
import VSwiftDatapath

/// A switch forwarding s0 <-> s1 in the switch namespace, measured by the bench.
protocol SwitchUnderTest: AnyObject {
    var name: String { get }
    /// Process and thread ids whose CPU time is the switch's (its forwarding threads).
    var pid: Int32 { get }
    var threadIDs: [Int32] { get }
    func stop()
}

/// vswift in this process (with `rules` > 0: an OpenFlow table instead of NORMAL): a Datapath with one worker pinned to the switch CPU, bridge br0 with s0
/// and s1 as AF_XDP ports. NORMAL forwarding (MAC learning).
final class VSwiftSwitch: SwitchUnderTest {
    let name = "vswift"
    let pid = getpid()
    let datapath: Datapath
    private(set) var threadIDs: [Int32] = []

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
            match.set(.tpSrc, UInt64(1024 + i % 65000))
            if i % 2 == 1 { match.set(.nwDst, 0xc612_0002) }  // 198.18.0.2
            if i >= 65000 { match.set(.tpDst, UInt64(i / 65000)) }
            rules.append(DatapathRule(match: match, priority: 10, sequence: UInt64(i + 1), actions: [.output(2)], counterSlot: i + 1))
        }
        return rules
    }

    init(namespace: String, cpu: Int, bpfDirectory: String, rules: Int = 0) throws {
        // The Datapath is created on a thread that entered the switch namespace: its worker threads
        // (pthread_create in Datapath.init) inherit the namespace, and the bridge's tap, the XDP links
        // and the AF_XDP sockets are all made there.
        datapath = try Threads.run(inNamespace: namespace) { () throws -> Datapath in
            var configuration = Datapath.Configuration()
            configuration.workers = 1
            configuration.cpus = [cpu]
            configuration.bpfDirectory = bpfDirectory
            // The sink's MAC is learned once, before the generator starts; it must not age out.
            configuration.macAgingSeconds = 365 * 86_400
            let datapath = try Datapath(configuration: configuration)
            do {
                try datapath.addBridge("br0")
                try datapath.addPort("s0", bridge: "br0")
                try datapath.addPort("s1", bridge: "br0")
                if rules > 0 {
                    try datapath.setPortNumbers(bridge: "br0", ["s0": 1, "s1": 2, "br0": 65534])
                    try datapath.setFlowTable(bridge: "br0", rules: Self.flowTable(rules))
                }
            } catch {
                datapath.shutdown()
                throw error
            }
            return datapath
        }
        // A worker publishes its thread id when it starts running.
        let deadline = monotonicSeconds() + 2
        while datapath.workerThreadIDs.contains(0) && monotonicSeconds() < deadline { usleep(1000) }
        threadIDs = datapath.workerThreadIDs
        guard !threadIDs.contains(0) else {
            datapath.shutdown()
            throw BenchError.failed("vswift's worker thread did not start")
        }
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
        let deadline = monotonicSeconds() + 10
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
