import Synchronization

/// A running port capture: one `CaptureRing` per worker in one of the datapath's
/// `Worker.maxCaptures` capture slots, and the port's capture bits set in every worker. Control
/// path only; `Datapath.stopCapture` takes the rings out of the workers (parked) before they are
/// freed with this object.
public final class PortCapture: Sendable {
    public let port: String
    public let directions: Set<CaptureDirection>
    public let snapLength: Int
    let slot: Int
    let portSlot: PortSlot
    let rings: [CaptureRing]
    private let stopped = Mutex(false)

    init(port: String, directions: Set<CaptureDirection>, snapLength: Int, slot: Int, portSlot: PortSlot, rings: [CaptureRing]) {
        self.port = port
        self.directions = directions
        self.snapLength = snapLength
        self.slot = slot
        self.portSlot = portSlot
        self.rings = rings
    }

    /// Up to `limit` frames captured since the last read, oldest first (merged from the workers'
    /// rings by timestamp).
    public func read(limit: Int) -> [CapturedFrame] {
        var frames: [CapturedFrame] = []
        let share = max(1, limit / max(rings.count, 1))
        for ring in rings { ring.drain(into: &frames, limit: share) }
        if rings.count > 1 { frames.sort { $0.timestamp < $1.timestamp } }
        return frames
    }

    /// Frames the rings had no room for (the reader was too slow).
    public var dropped: UInt64 { rings.reduce(0) { $0 + $1.dropped } }

    /// Frames waiting to be read.
    public var pending: Int { rings.reduce(0) { $0 + $1.pending } }

    /// Marks the capture stopped; true the first time.
    func markStopped() -> Bool {
        stopped.withLock { was in
            defer { was = true }
            return !was
        }
    }
}

extension Datapath {
    /// Captures running at once, at most (each holds a ring per worker).
    public static let maxCaptures = Worker.maxCaptures
    /// Records per worker ring.
    public static let captureRingRecords = 1024

    /// Starts copying the frames port `name` receives and/or sends into new rings (a snap length
    /// of at most the frame size). Throws when the port does not exist or `maxCaptures` run.
    public func startCapture(port name: String, directions: Set<CaptureDirection>, snapLength: Int) throws(DatapathError) -> PortCapture {
        let snap = max(64, min(snapLength, Int(configuration.frameSize)))
        var outcome: Result<PortCapture, DatapathError> = .failure(.noSuchPort(name))
        withCapturePort(name, parking: true) { portSlot, workers in
            guard let portSlot else { return }
            guard let slot = (0..<Worker.maxCaptures).first(where: { slot in workers.allSatisfy { $0.captureSlotIsFree(slot) } }) else {
                outcome = .failure(.deviceInUse(name, reason: "\(Worker.maxCaptures) captures are running, the most at once"))
                return
            }
            let rings = workers.map { _ in CaptureRing(capacity: Self.captureRingRecords, snapLength: snap) }
            for (worker, ring) in zip(workers, rings) {
                worker.setCapture(slot, ring: ring, port: portSlot, directions: directions)
            }
            outcome = .success(PortCapture(port: name, directions: directions, snapLength: snap, slot: slot, portSlot: portSlot, rings: rings))
        }
        // A capture sees every frame only on the workers' path: the port's XDP cache entries go first.
        if case .success(let capture) = outcome { flowCacheInstaller?.setCapturing(capture.portSlot, true) }
        return try outcome.get()
    }

    /// Whether the capture still taps its port (false once the port was deleted or the capture stopped).
    public func captureIsAttached(_ capture: PortCapture) -> Bool {
        var attached = false
        withCapturePort(capture.port, parking: false) { portSlot, workers in
            attached = portSlot == capture.portSlot && workers.allSatisfy { $0.captureTaps(capture.slot, port: capture.portSlot) }
        }
        return attached
    }

    /// Stops a capture: the workers stop copying and forget its rings (parked), so the rings are
    /// freed with `capture`. Frames still in the rings can be read until then. Idempotent.
    public func stopCapture(_ capture: PortCapture) {
        guard capture.markStopped() else { return }
        withCapturePort(capture.port, parking: true) { _, workers in
            for worker in workers {
                worker.setCapture(capture.slot, ring: nil, port: capture.portSlot, directions: [])
            }
        }
        flowCacheInstaller?.setCapturing(capture.portSlot, false)
    }
}
