import Foundation

// Port capture over the control socket (`vswiftctl capture`). The socket carries one JSON-RPC
// request and one reply per line, so a capture is a session the client polls:
//   capture-start {port, bridge?, direction, snapLength?} → {id, bridge, port, snapLength}
//   capture-read  {id, maxFrames?} → {frames: [{timestamp, length, direction, data}], dropped, ended?}
//   capture-stop  {id} → {frames, dropped}
// A read returns at once (possibly nothing); `ended` says why the capture is over (its port was
// deleted, it sat unread too long). vswiftd stops a session nobody reads for
// `CaptureLimits.idleSeconds`, so a client that vanishes frees its memory.

/// The bounds vswiftd keeps captures within.
public enum CaptureLimits {
    /// Captures running at once (each holds one ring per worker).
    public static let maxSessions = 4
    /// A session not read for this long is stopped.
    public static let idleSeconds = 5.0
    /// Frames in one capture-read reply, at most (with 4 KiB frames, ~1.4 MB of base64).
    public static let maxFramesPerRead = 256
    /// Default and largest snap length (bytes of a frame kept); vswiftd also caps it at its frame size.
    public static let defaultSnapLength = 4096
}

public enum CaptureDirectionName: String, Codable, Sendable, CaseIterable {
    case rx, tx, both
}

public struct CaptureStartParams: Codable, Sendable, Equatable {
    /// When given, the port must be this bridge's (or the underlay device, with no bridge).
    public var bridge: String?
    public var port: String
    public var direction: CaptureDirectionName
    public var snapLength: Int?

    public init(bridge: String?, port: String, direction: CaptureDirectionName = .both, snapLength: Int? = nil) {
        self.bridge = bridge
        self.port = port
        self.direction = direction
        self.snapLength = snapLength
    }
}

public struct CaptureStartReply: Codable, Sendable, Equatable {
    public var id: Int
    /// The port's bridge; nil for an underlay device.
    public var bridge: String?
    public var port: String
    public var snapLength: Int

    public init(id: Int, bridge: String?, port: String, snapLength: Int) {
        self.id = id
        self.bridge = bridge
        self.port = port
        self.snapLength = snapLength
    }
}

public struct CaptureSessionParams: Codable, Sendable, Equatable {
    public var id: Int
    /// capture-read: at most this many frames (and never more than `CaptureLimits.maxFramesPerRead`).
    public var maxFrames: Int?

    public init(id: Int, maxFrames: Int? = nil) {
        self.id = id
        self.maxFrames = maxFrames
    }
}

/// One captured frame as it travels in a reply.
public struct CaptureFrameReport: Codable, Sendable, Equatable {
    /// Nanoseconds since the Unix epoch.
    public var timestamp: UInt64
    /// The frame's length on the wire (`data` may hold less: the snap length).
    public var length: UInt32
    /// "rx" or "tx".
    public var direction: CaptureDirectionName
    /// The frame's bytes, base64 (RFC 4648 §4).
    public var data: String

    public init(timestamp: UInt64, length: UInt32, direction: CaptureDirectionName, bytes: [UInt8]) {
        self.timestamp = timestamp
        self.length = length
        self.direction = direction
        self.data = Data(bytes).base64EncodedString()
    }

    /// The frame's bytes; nil when `data` is not base64.
    public var bytes: [UInt8]? { Data(base64Encoded: data).map { [UInt8]($0) } }
}

public struct CaptureReadReply: Codable, Sendable, Equatable {
    public var frames: [CaptureFrameReport]
    /// Frames the capture could not keep (its rings were full), since the start.
    public var dropped: UInt64
    /// Set once the capture is over, with the reason; the session is gone then.
    public var ended: String?

    public init(frames: [CaptureFrameReport], dropped: UInt64, ended: String? = nil) {
        self.frames = frames
        self.dropped = dropped
        self.ended = ended
    }
}

public struct CaptureStopReply: Codable, Sendable, Equatable {
    /// Frames delivered by capture-read.
    public var frames: UInt64
    public var dropped: UInt64

    public init(frames: UInt64, dropped: UInt64) {
        self.frames = frames
        self.dropped = dropped
    }
}
