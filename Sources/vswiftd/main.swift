import ArgumentParser
import Dispatch
import Foundation
import Glibc
import Logging
import SystemPackage
import Synchronization
import VSwiftControl
import VSwiftDatapath
import VSwiftMetrics
import VSwiftProtocol

/// vswiftd: owns the datapath and serves the control socket.
struct VSwiftd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vswiftd",
        abstract: "The vswift switch daemon: AF_XDP datapath and JSON-RPC control socket.",
        version: VSwiftVersion.current)

    @Option(help: "Control socket path (default: $VSWIFT_SOCKET, else /run/vswift/vswiftd.sock).")
    var socket: String?

    @Option(help: "Configuration file: bridges, ports and flows, saved after every change and restored at start (default: $VSWIFT_DB, else /var/lib/vswift/vswiftd.db.json).")
    var db: String?

    @Option(help: "Number of worker threads; every attached device needs at least this many rx queues.")
    var workers: Int = 1

    @Option(help: "UMEM frames per worker (4 KiB each).")
    var frames: UInt32 = 16384

    @Option(help: "CPUs to pin workers to, comma separated (worker i → i-th CPU, cycling).")
    var cpus: String?

    @Option(help: "Directory with the compiled BPF objects (default: $VSWIFT_BPF_DIR, next to this executable, /usr/local/lib/vswift).")
    var bpfDir: String?

    @Option(help: "Seconds an unused learned MAC address is kept.")
    var macAging: UInt64 = 300

    @Option(help: "Who computes the outer IPv6 UDP checksum of LISP packets sent straight out of a device: auto (the device, where its driver offers AF_XDP TX checksum offload), offload (also without it: in copy mode the kernel computes it at transmit), software (vswift).")
    var txChecksum: String = TxChecksumPolicy.auto.rawValue

    @Option(help: "Forward established flows in XDP, the misses through the workers: auto (on where the cache's maps and program load, else off with the reason logged), on (refuse to start if it cannot work), off.")
    var xdpCache: String = "auto"

    @Flag(help: "Run in the background once the control socket is ready.")
    var detach = false

    @Option(help: "Write the daemon's pid to this file.")
    var pidfile: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: "Serve Prometheus metrics over HTTP at ADDRESS:PORT (GET /metrics), e.g. 127.0.0.1:9477 or [::1]:9477.")
    var metrics: String?

    @Option(help: "Flows with most packets that the metrics report (0: none).")
    var metricsTopFlows: Int = 10

    @Option(help: "UDP port of the LISP control socket (Map-Register, Map-Request, ...), opened while a map-server, map-resolver, EID or static map-cache entry is configured; for tests.")
    var lispControlPort: UInt16 = 4342

    func validate() throws {
        guard workers >= 1 && workers <= 64 else { throw ValidationError("--workers must be between 1 and 64") }
        guard frames >= 1024 else { throw ValidationError("--frames must be at least 1024") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
        guard ["auto", "on", "off"].contains(xdpCache) else {
            throw ValidationError("--xdp-cache must be auto, on or off")
        }
        guard TxChecksumPolicy(rawValue: txChecksum) != nil else {
            throw ValidationError("--tx-checksum must be one of: " + TxChecksumPolicy.allCases.map(\.rawValue).joined(separator: ", "))
        }
        _ = try parsedCPUs()
        if let metrics {
            do { _ = try MetricsAddress(metrics) } catch { throw ValidationError("--metrics: \(error)") }
        }
        guard (0...1000).contains(metricsTopFlows) else { throw ValidationError("--metrics-top-flows must be between 0 and 1000") }
    }

    func parsedCPUs() throws -> [Int] {
        guard let cpus, !cpus.isEmpty else { return [] }
        return try cpus.split(separator: ",").map { item in
            guard let cpu = Int(item.trimmingCharacters(in: .whitespaces)), cpu >= 0 else {
                throw ValidationError("--cpus: \"\(item)\" is not a CPU number")
            }
            return cpu
        }
    }

    func run() throws {
        // Fork before any thread exists; the parent returns once the child's socket is ready.
        let detached = detach ? try Daemonizer.detach() : nil

        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "vswiftd")
        let socketPath = socket ?? ControlClient.defaultSocketPath(environment: ProcessInfo.processInfo.environment)

        // Read the saved configuration before touching the kernel: one that cannot be read stops
        // the start (starting empty would overwrite it at the first change).
        let store = ConfigStore(path: db ?? ConfigStore.defaultPath(environment: ProcessInfo.processInfo.environment))
        let saved: SwitchConfig?
        do {
            // Files in a directory another user can change could be redirected (see SafeDirectory).
            try store.checkDirectory()
            try SafeDirectory.checkSocket(socketPath)
            if let pidfile { try SafeDirectory.checkRegularFile(pidfile) }
        } catch {
            logger.critical("unsafe location: \(error); refusing to start")
            throw ExitCode.failure
        }
        do {
            saved = try store.load()
        } catch {
            logger.critical("cannot use the configuration file \(error); refusing to start (repair or move the file)")
            throw ExitCode.failure
        }

        var config = Datapath.Configuration()
        config.workers = workers
        config.framesPerWorker = frames
        config.cpus = try parsedCPUs()
        config.bpfDirectory = bpfDir
        config.macAgingSeconds = macAging
        config.txChecksum = TxChecksumPolicy(rawValue: txChecksum) ?? .auto
        if xdpCache != "off" {
            // auto: on where it works. on: it must work.
            if let problem = Datapath.xdpFlowCacheProblem(bpfDirectory: bpfDir) {
                guard xdpCache == "auto" else {
                    logger.critical("--xdp-cache on: the XDP flow cache cannot work here: \(problem)")
                    throw ExitCode.failure
                }
                logger.notice("XDP flow cache off: \(problem)")
            } else {
                config.xdpFlowCache = true
                logger.info("XDP flow cache on (--xdp-cache \(xdpCache))")
            }
        }

        let datapath: Datapath
        do {
            datapath = try Datapath(configuration: config)
        } catch {
            logger.critical("cannot start the datapath: \(error)")
            throw ExitCode.failure
        }
        // The LISP control thread publishes map-cache versions to the datapath and drains its misses.
        let lispControl = LISPControlService(port: lispControlPort, publisher: datapath, logger: logger)
        let service = SwitchService(
            datapath: datapath, systemID: saved?.systemID ?? UUID().uuidString.lowercased(), logger: logger, store: store,
            lispControl: lispControl)
        do {
            if let saved {
                try waitFor {
                    try await service.restore(saved)
                    try await service.replayJournal()
                }
            }
        } catch {
            logger.critical("cannot restore the configuration from \(store.path): \(error); refusing to start")
            datapath.shutdown()
            throw ExitCode.failure
        }
        do {
            // Also creates the file on a first start, so that an unwritable location shows now.
            try waitFor { try await service.save() }
        } catch {
            logger.critical("cannot save the configuration: \(error); refusing to start")
            datapath.shutdown()
            throw ExitCode.failure
        }
        try waitFor { await service.startExpiryTimer() }
        let server = ControlServer(socketPath: socketPath, logger: logger) { request in
            await service.handle(request)
        }
        do {
            try server.start()
        } catch {
            logger.critical("cannot serve \(socketPath): \(error)")
            datapath.shutdown()
            throw ExitCode.failure
        }
        let metricsServer: MetricsServer?
        if let metrics, let address = try? MetricsAddress(metrics) {
            let topFlows = metricsTopFlows
            let server = MetricsServer(host: address.host, port: address.port, logger: logger) {
                MetricsExposition.render(await service.metricsSnapshot(topFlows: topFlows))
            }
            do {
                try server.start()
            } catch {
                logger.critical("cannot serve metrics at \(metrics): \(error)")
                datapath.shutdown()
                throw ExitCode.failure
            }
            metricsServer = server
        } else {
            metricsServer = nil
        }
        let readiness = Readiness(logger: logger)
        do {
            try readiness.confirmServing(socketPath: socketPath)
        } catch {
            logger.critical("the control socket \(socketPath) does not answer: \(error)")
            datapath.shutdown()
            throw ExitCode.failure
        }
        if let pidfile {
            do {
                // Atomically: a new file (mkstemp) renamed over the name, never written through it.
                try "\(getpid())\n".write(toFile: pidfile, atomically: true, encoding: .utf8)
            } catch {
                logger.warning("cannot write pidfile \(pidfile): \(error)")
            }
        }
        logger.info("vswiftd ready", metadata: ["workers": "\(workers)", "socket": "\(socketPath)"])
        detached?.signalReady()
        readiness.announceReady("serving \(socketPath)")

        // Orderly exit on SIGTERM/SIGINT: close the socket, stop workers, detach XDP, remove taps.
        let shutdown: @Sendable (Int32) -> Void = { signal in
            logger.info("signal \(signal): shutting down")
            readiness.announceStopping()
            metricsServer?.stop()
            server.stop()
            lispControl.stop()
            datapath.shutdown()
            if let pidfile { try? FilePath(pidfile).unlink() }
            Glibc.exit(0)
        }
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT] {
            Glibc.signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .main)
            source.setEventHandler { shutdown(sig) }
            source.resume()
            sources.append(source)
        }
        withExtendedLifetime(sources) { dispatchMain() }
    }
}

/// Runs `body` as a task and waits for its end: for start-up only, before the daemon serves
/// requests (the command stays synchronous, since it forks before any thread exists).
func waitFor<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let outcome = TaskOutcome<T>()
    Task {
        let result: Result<T, any Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        outcome.result.withLock { $0 = result }
        outcome.done.signal()
    }
    outcome.done.wait()
    return try outcome.result.withLock { $0 }!.get()
}

/// What `waitFor`'s task hands back to the waiting thread.
private final class TaskOutcome<T: Sendable>: Sendable {
    let done = DispatchSemaphore(value: 0)
    /// Set by the task before it signals `done`, read after the wait.
    let result = Mutex<Result<T, any Error>?>(nil)
}

/// Classic double-fork-free detach: fork, the child starts a new session, and the parent waits on
/// a pipe until the child reports that its socket is ready (or dies), so `vswiftd --detach && vswiftctl …`
/// works without a race.
enum Daemonizer {
    struct Readiness {
        let pipe: FileDescriptor
        func signalReady() {
            _ = try? pipe.writeAll([1])
            try? pipe.close()
            // Detach stdio from the terminal now that start-up errors have been reported.
            if let null = try? FileDescriptor.open("/dev/null", .readWrite) {
                _ = try? null.duplicate(as: .standardInput)
                _ = try? null.duplicate(as: .standardOutput)
                try? null.close()
            }
        }
    }

    static func detach() throws -> Readiness {
        let (readEnd, writeEnd): (FileDescriptor, FileDescriptor)
        do {
            (readEnd, writeEnd) = try FileDescriptor.pipe()
        } catch let error as Errno {
            throw SystemError("pipe", errno: error.rawValue)
        }
        let pid = fork()
        guard pid >= 0 else { throw SystemError("fork") }
        if pid > 0 {
            try? writeEnd.close()
            var ok: [UInt8] = [0]
            let n = (try? ok.withUnsafeMutableBytes { try readEnd.read(into: $0) }) ?? 0  // retried on EINTR
            exit(n == 1 && ok[0] == 1 ? 0 : 1)
        }
        try? readEnd.close()
        setsid()
        return Readiness(pipe: writeEnd)
    }
}

VSwiftd.main()
