import Dispatch
import Foundation
import Glibc
import Logging
import Synchronization
import VSwiftLISPAgent
import VSwiftMapCache
import VSwiftPacket

/// What `SwitchService` hands the LISP control thread on every change.
struct LISPControlSettings: Equatable, Sendable {
    var config = ValidatedLISPConfig()
    /// A `remote_ip=map` LISP port exists: the thread then drains the workers' misses every 10 ms.
    var hasMapPorts = false

    var isEmpty: Bool { config.configuration.isEmpty && config.staticEntries.isEmpty }
}

/// What the LISP control thread reports (for show-lisp, dump-map-cache and the metrics).
struct LISPControlStatus: Sendable {
    var port: UInt16
    var report: XTRControlReport
    /// The host's addresses toward the map-servers: the RLOCs of local EIDs configured without any.
    var defaultRLOCs: [IPAddress]
    /// The socket's own counters (see `ShowLISPReport.socket`).
    var socket: [String: UInt64]
}

/// vswiftd's LISP control plane on the wire: one thread that owns an `XTRControlPlane` and the UDP
/// control socket (`LISPControlSocket`, port 4342 on all addresses). It runs while the LISP
/// control configuration is not empty: the socket is opened (by the caller, so a port in use is
/// that request's error) when it becomes non-empty and closed when it becomes empty or at shutdown.
///
/// Each round: take a new configuration (static entries diffed into the map-cache, default RLOCs
/// resolved again), resolve default RLOCs every 30 s (a changed address re-registers), run the
/// control plane's timers when due, drain up to 256 workers' misses (only while a `remote_ip=map`
/// port exists), publish a changed map-cache snapshot, answer status requests, then `poll` the
/// socket and a pipe (a new configuration, a status request, stop) until the control plane's
/// next deadline, the next resolution, or 10 ms when misses must be drained. At most 256
/// datagrams are read per round; longer than 9,000 bytes are dropped and counted; a failed send
/// is counted, never fatal. Called by `SwitchService` only (one caller at a time).
public final class LISPControlService: Sendable {
    /// The UDP port asked for (`vswiftd --lisp-control-port`; 0 lets the kernel choose, for tests).
    public let requestedPort: UInt16
    let publisher: any MapCachePublishing
    let logger: Logger
    let clock: MonotonicClock
    private let running = Mutex<LISPControlThread?>(nil)

    public init(port: UInt16 = 4342, publisher: any MapCachePublishing, logger: Logger, clock: @escaping MonotonicClock = monotonicClock) {
        self.requestedPort = port
        self.publisher = publisher
        self.logger = logger
        self.clock = clock
    }

    /// The bound port while running.
    public var port: UInt16? { running.withLock { $0?.socket.port } }

    /// Hands over `settings`: starts the thread (opening the socket) when there is something to
    /// do, stops it (closing the socket) when the configuration is empty.
    func configure(_ settings: LISPControlSettings) throws(LISPControlSocket.OpenError) {
        let current = running.withLock { $0 }
        if settings.isEmpty {
            guard let current else { return }
            current.hand(settings, stop: true)
            current.finished.wait()
            running.withLock { $0 = nil }
            logger.info("LISP control: nothing configured, UDP port \(current.socket.port) closed")
            return
        }
        if let current {
            current.hand(settings, stop: false)
            return
        }
        let socket = try LISPControlSocket(port: requestedPort)
        let thread = LISPControlThread(socket: socket, publisher: publisher, logger: logger, clock: clock)
        thread.hand(settings, stop: false)
        thread.start()
        running.withLock { $0 = thread }
        logger.info("LISP control: listening on UDP port \(socket.port), IPv4 and IPv6")
    }

    /// The thread's state, or nil when it is not running (or did not answer within `timeout` s).
    func status(timeout: Double = 2) -> LISPControlStatus? {
        guard let thread = running.withLock({ $0 }) else { return nil }
        return thread.status(timeout: timeout)
    }

    /// Stops the thread and closes the socket (vswiftd's shutdown).
    public func stop() {
        try? configure(LISPControlSettings())
    }
}

/// The thread itself. Its mutable state is the thread's alone (locals of `run`); the inbox is the
/// one thing shared, behind a `Mutex`, and an eventfd wakes the thread when it changes.
final class LISPControlThread: Sendable {
    let socket: LISPControlSocket
    let publisher: any MapCachePublishing
    let logger: Logger
    let clock: MonotonicClock
    /// A pipe: the service writes a byte to wake the thread, which empties it.
    let wakeRead: Int32
    let wakeWrite: Int32
    /// Signalled once `run` has returned (the socket closed).
    let finished = DispatchSemaphore(value: 0)

    /// A status request: the thread fills `result` and signals.
    final class StatusRequest: Sendable {
        let answered = DispatchSemaphore(value: 0)
        let result = Mutex<LISPControlStatus?>(nil)
    }

    struct Inbox {
        var settings: LISPControlSettings?
        var stop = false
        var statusRequests: [StatusRequest] = []
    }

    private let inbox = Mutex(Inbox())

    static let maxDatagramsPerRound = 256
    static let maxMissesPerRound = 256
    /// How often the workers' miss rings are drained while a `remote_ip=map` port exists. A new
    /// flow's first packets are dropped until its Map-Reply is published, so this wait is part of
    /// every first-packet latency (`vswift-bench lisp-first-packet`); 500 wake-ups a second of a
    /// thread that drains empty rings cost nothing measurable, and the workers make no system call.
    static let missPollInterval = 0.002
    static let resolveInterval = 30.0

    init(socket: LISPControlSocket, publisher: any MapCachePublishing, logger: Logger, clock: @escaping MonotonicClock) {
        self.socket = socket
        self.publisher = publisher
        self.logger = logger
        self.clock = clock
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            for fd in fds {
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            }
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    deinit {
        if wakeRead >= 0 { close(wakeRead) }
        if wakeWrite >= 0 { close(wakeWrite) }
    }

    func hand(_ settings: LISPControlSettings, stop: Bool) {
        inbox.withLock {
            $0.settings = settings
            $0.stop = $0.stop || stop
        }
        wake()
    }

    func status(timeout: Double) -> LISPControlStatus? {
        let request = StatusRequest()
        inbox.withLock { $0.statusRequests.append(request) }
        wake()
        guard request.answered.wait(timeout: .now() + timeout) == .success else { return nil }
        return request.result.withLock { $0 }
    }

    private func wake() {
        var one: UInt8 = 1
        _ = write(wakeWrite, &one, 1)  // a full pipe already wakes it
    }

    func start() {
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = "vswift-lisp-control"
        thread.start()
    }

    private func run() {
        var plane = XTRControlPlane(mapCacheCapacity: LISPConfigValidation.mapCacheCapacity, now: clock())
        var settings = LISPControlSettings()
        var installedStatic: [EIDPrefix: [Locator]] = [:]
        var defaultRLOCs: [IPAddress] = []
        var localRLOCs: [IPAddress] = []
        var nextResolve = 0.0
        var mustApply = false
        var published = false
        var counters: [String: UInt64] = [:]
        var misses: [MapCacheMiss] = []
        misses.reserveCapacity(Self.maxMissesPerRound)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: LISPControlSocket.maxDatagram + 1, alignment: 16)
        defer { buffer.deallocate() }

        func send(_ datagrams: [OutgoingDatagram]) {
            for datagram in datagrams {
                if let error = socket.send(datagram.bytes, to: datagram.destination, port: datagram.destinationPort) {
                    counters["send_errors", default: 0] += 1
                    logger.debug("LISP control: cannot send to \(datagram.destination): \(String(cString: strerror(error)))")
                } else {
                    counters["datagrams_sent", default: 0] += 1
                }
            }
        }

        while true {
            let (newSettings, stop, requests) = inbox.withLock { inbox in
                defer {
                    inbox.settings = nil
                    inbox.statusRequests.removeAll()
                }
                return (inbox.settings, inbox.stop, inbox.statusRequests)
            }
            var now = clock()
            if let newSettings, newSettings != settings {
                settings = newSettings
                var wanted: [EIDPrefix: [Locator]] = [:]
                for entry in settings.config.staticEntries { wanted[entry.prefix] = entry.locators }
                for (prefix, locators) in installedStatic where wanted[prefix] != locators {
                    plane.removeStatic(prefix, now: now)
                    installedStatic[prefix] = nil
                }
                for entry in settings.config.staticEntries where installedStatic[entry.prefix] == nil {
                    plane.installStatic(entry.prefix, locators: entry.locators, now: now)
                    installedStatic[entry.prefix] = entry.locators
                }
                mustApply = true
                nextResolve = now
            }
            if now >= nextResolve {
                let resolved = Self.resolve(settings.config.configuration)
                if resolved.defaults != defaultRLOCs || resolved.local != localRLOCs {
                    if !defaultRLOCs.isEmpty || !localRLOCs.isEmpty {
                        counters["address_changes", default: 0] += 1
                        logger.info("LISP control: the host's addresses toward the mapping system are now \(resolved.local.map(\.description))")
                    }
                    defaultRLOCs = resolved.defaults
                    localRLOCs = resolved.local
                    mustApply = true
                }
                nextResolve = now + Self.resolveInterval
            }
            if mustApply {
                mustApply = false
                let effective = Self.effective(settings.config.configuration, defaultRLOCs: defaultRLOCs)
                publisher.setRegisteredRLOCs(Self.registeredRLOCs(effective))
                send(plane.apply(effective, localRLOCs: localRLOCs, now: now))
            }
            if now >= plane.nextDeadline { send(plane.tick(now: now)) }
            if settings.hasMapPorts {
                misses.removeAll(keepingCapacity: true)
                if publisher.drainMapCacheMisses(into: &misses, limit: Self.maxMissesPerRound) > 0 {
                    counters["misses", default: 0] += UInt64(misses.count)
                    send(plane.handleMisses(misses, now: now))
                }
            }
            let building = clock()
            if let snapshot = plane.takeSnapshotIfChanged(now: now) {
                plane.adaptSnapshotSpacing(buildSeconds: clock() - building)
                publisher.publishMapCache(snapshot)
                published = true
            }
            if !requests.isEmpty {
                let status = LISPControlStatus(port: socket.port, report: plane.report(now: now), defaultRLOCs: defaultRLOCs, socket: counters)
                for request in requests {
                    request.result.withLock { $0 = status }
                    request.answered.signal()
                }
            }
            if stop { break }

            now = clock()
            var timeout = min(plane.nextDeadline, nextResolve) - now
            if settings.hasMapPorts { timeout = min(timeout, Self.missPollInterval) }
            // At least 1 ms: a deadline the control plane does not move cannot spin the thread.
            let milliseconds = Int32(max(1, min(timeout * 1000, 60_000)).rounded(.up))
            var fds = [pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            guard poll(&fds, 2, milliseconds) > 0 else { continue }
            if fds[1].revents != 0 {
                var bytes = [UInt8](repeating: 0, count: 64)
                while read(wakeRead, &bytes, bytes.count) > 0 {}
            }
            guard fds[0].revents != 0 else { continue }
            now = clock()
            reading: for _ in 0..<Self.maxDatagramsPerRound {
                switch socket.receive(into: buffer) {
                case .datagram(let length, let source, let sourcePort):
                    counters["datagrams_received", default: 0] += 1
                    send(plane.receive(Array(buffer[0..<length]), from: source, sourcePort: sourcePort, now: now))
                case .oversized:
                    counters["oversized", default: 0] += 1
                case .failed(let error):
                    if error != EINTR { counters["receive_errors", default: 0] += 1 }
                case .empty:
                    break reading
                }
            }
        }
        // Nothing configured any more: the workers must not keep resolving through the last
        // version (the control plane's own empty version is published above when it makes one).
        if published { publisher.publishMapCache(MapCacheDatabase(capacity: 1).snapshot()) }
        publisher.setRegisteredRLOCs([])
        socket.close()
    }

    /// The host's addresses toward the map-servers (the default RLOCs; toward the resolvers when
    /// there is no map-server), and all local addresses in use (ITR-RLOCs), in order, distinct.
    static func resolve(_ configuration: LISPControlConfiguration) -> (defaults: [IPAddress], local: [IPAddress]) {
        var defaults: [IPAddress] = []
        for server in configuration.mapServers {
            if let source = UnderlaySourceAddress.toward(server.address), !defaults.contains(source) { defaults.append(source) }
        }
        var local = defaults
        for resolver in configuration.mapResolvers {
            if let source = UnderlaySourceAddress.toward(resolver), !local.contains(source) { local.append(source) }
        }
        if defaults.isEmpty { defaults = local }
        return (defaults, local)
    }

    /// The RLOCs we register (of `effective`'s local EIDs, in order, distinct): the datapath's
    /// underlay endpoints for map ports (`MapCachePublishing.setRegisteredRLOCs`).
    static func registeredRLOCs(_ effective: LISPControlConfiguration) -> [IPAddress] {
        var result: [IPAddress] = []
        for eid in effective.localEIDs {
            for rloc in eid.rlocs where !result.contains(rloc.address) { result.append(rloc.address) }
        }
        return result
    }

    /// The configuration with concrete RLOCs: a local EID configured without RLOCs gets the
    /// default ones (priority 1, weight 100), and is left out while there are none.
    static func effective(_ configuration: LISPControlConfiguration, defaultRLOCs: [IPAddress]) -> LISPControlConfiguration {
        var result = configuration
        result.localEIDs = configuration.localEIDs.compactMap { eid in
            guard eid.rlocs.isEmpty else { return eid }
            guard !defaultRLOCs.isEmpty else { return nil }
            return LocalEIDConfiguration(prefix: eid.prefix, rlocs: defaultRLOCs.map { LocalRLOCConfiguration(address: $0) })
        }
        return result
    }
}
