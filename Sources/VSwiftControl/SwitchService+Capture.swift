import VSwiftDatapath
import VSwiftProtocol

/// What the service needs of the datapath to capture a port. `Datapath` has it; a datapath
/// without it (the tests' fake) answers capture-start with "unsupported".
public protocol PortCaptureControl: AnyObject, Sendable {
    func startCapture(port name: String, directions: Set<CaptureDirection>, snapLength: Int) throws(DatapathError) -> PortCapture
    func captureIsAttached(_ capture: PortCapture) -> Bool
    func stopCapture(_ capture: PortCapture)
}

extension Datapath: PortCaptureControl {}

/// The running captures of a service (capture-start/read/stop, CaptureMessages.swift). At most
/// `CaptureLimits.maxSessions`; each holds a bounded ring per worker, so however slow or hostile
/// its client, a capture costs a fixed amount of memory, and one not read for
/// `CaptureLimits.idleSeconds` (its client went away) is stopped and freed.
struct CaptureSessions {
    struct Session {
        let capture: PortCapture
        let control: any PortCaptureControl
        var lastRead: Double
        var delivered: UInt64 = 0
    }

    var sessions: [Int: Session] = [:]
    var nextID = 1
    /// Runs while sessions exist: stops the idle ones.
    var reaper: Task<Void, Never>?
}

extension SwitchService {
    func startCapture(_ params: CaptureStartParams) throws(RPCError) -> CaptureStartReply {
        if let bridge = params.bridge { try validateName(bridge, what: "bridge") }
        try validateName(params.port, what: "port")
        let bridgeName: String?
        if let (b, p) = findPort(params.port) {
            bridgeName = bridges[b].name
            if let wanted = params.bridge, wanted != bridges[b].name {
                guard bridges.contains(where: { $0.name == wanted }) else { throw .noSuchBridge(wanted) }
                throw .noSuchPort("\(params.port)\" on bridge \"\(wanted)")
            }
            if let error = bridges[b].ports[p].error {
                throw .resourceUnavailable("\"\(params.port)\" is not in the datapath: \(error)")
            }
        } else if params.bridge == nil, underlays.contains(where: { $0.name == params.port && $0.error == nil }) {
            bridgeName = nil
        } else {
            if let wanted = params.bridge, !bridges.contains(where: { $0.name == wanted }) { throw .noSuchBridge(wanted) }
            throw .noSuchPort(params.port)
        }
        let snapLength = params.snapLength ?? CaptureLimits.defaultSnapLength
        guard (1...65535).contains(snapLength) else { throw .invalidParams("snapLength must be 1 to 65535 bytes") }
        guard let control = datapath as? any PortCaptureControl else {
            throw .datapathFailure("this datapath cannot capture ports")
        }
        guard captures.sessions.count < CaptureLimits.maxSessions else {
            throw .resourceUnavailable("\(CaptureLimits.maxSessions) captures are running, the most at once")
        }
        let directions: Set<CaptureDirection> = switch params.direction {
        case .rx: [.rx]
        case .tx: [.tx]
        case .both: [.rx, .tx]
        }
        var capture: PortCapture?
        try datapathCall { () throws(DatapathError) in
            capture = try control.startCapture(port: params.port, directions: directions, snapLength: snapLength)
        }
        guard let capture else { throw .internalError("capture did not start") }
        let id = captures.nextID
        captures.nextID += 1
        captures.sessions[id] = CaptureSessions.Session(capture: capture, control: control, lastRead: clock())
        startCaptureReaper()
        logger.info("capture \(id) of \(params.port) started (\(params.direction.rawValue), snap length \(capture.snapLength))")
        return CaptureStartReply(id: id, bridge: bridgeName, port: params.port, snapLength: capture.snapLength)
    }

    /// The frames captured since the last read (at once, possibly none). Once the port is gone
    /// the rest is returned with `ended` and the session is over.
    func readCapture(_ params: CaptureSessionParams) throws(RPCError) -> CaptureReadReply {
        guard var session = captures.sessions[params.id] else { throw noSuchCapture(params.id) }
        let limit = min(max(params.maxFrames ?? CaptureLimits.maxFramesPerRead, 1), CaptureLimits.maxFramesPerRead)
        let attached = session.control.captureIsAttached(session.capture)
        let frames = session.capture.read(limit: limit)
        session.lastRead = clock()
        session.delivered += UInt64(frames.count)
        let reports = frames.map {
            CaptureFrameReport(timestamp: $0.timestamp, length: $0.originalLength, direction: $0.direction == .rx ? .rx : .tx, bytes: $0.bytes)
        }
        guard attached || session.capture.pending > 0 else {
            endCapture(params.id, reason: "port \(session.capture.port) was deleted")
            return CaptureReadReply(frames: reports, dropped: session.capture.dropped, ended: "port \(session.capture.port) was deleted")
        }
        captures.sessions[params.id] = session
        return CaptureReadReply(frames: reports, dropped: session.capture.dropped)
    }

    func stopCapture(_ params: CaptureSessionParams) throws(RPCError) -> CaptureStopReply {
        guard let session = captures.sessions[params.id] else { throw noSuchCapture(params.id) }
        endCapture(params.id, reason: "stopped by its client")
        return CaptureStopReply(frames: session.delivered, dropped: session.capture.dropped)
    }

    private func noSuchCapture(_ id: Int) -> RPCError {
        .invalidParams("no capture \(id) (it ended, was stopped, or went unread for \(Int(CaptureLimits.idleSeconds)) s)")
    }

    private func endCapture(_ id: Int, reason: String) {
        guard let session = captures.sessions.removeValue(forKey: id) else { return }
        session.control.stopCapture(session.capture)
        logger.info("capture \(id) of \(session.capture.port) ended: \(reason); \(session.delivered) frames delivered, \(session.capture.dropped) dropped")
        if captures.sessions.isEmpty {
            captures.reaper?.cancel()
            captures.reaper = nil
        }
    }

    private func startCaptureReaper() {
        guard captures.reaper == nil else { return }
        captures.reaper = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(500))
                guard let self else { return }
                await self.stopIdleCaptures()
            }
        }
    }

    /// Stops the captures nobody has read for `CaptureLimits.idleSeconds`.
    func stopIdleCaptures() {
        let now = clock()
        for (id, session) in captures.sessions where now - session.lastRead > CaptureLimits.idleSeconds {
            endCapture(id, reason: "not read for \(Int(CaptureLimits.idleSeconds)) s")
        }
    }
}
