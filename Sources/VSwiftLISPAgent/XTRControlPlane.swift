import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket

/// A UDP datagram the control plane wants sent from the LISP control port (4342).
public struct OutgoingDatagram: Equatable, Sendable {
    public var destination: IPAddress
    public var destinationPort: UInt16
    public var bytes: [UInt8]

    public init(destination: IPAddress, destinationPort: UInt16, bytes: [UInt8]) {
        self.destination = destination
        self.destinationPort = destinationPort
        self.bytes = bytes
    }
}

/// The xTR's control plane (RFC 9301) without I/O: the I/O side (a thread in vswiftd owning the
/// UDP 4342 socket and a timer) feeds it configuration, received datagrams, the workers' misses
/// and the time, sends what it returns, and publishes the map-cache snapshots it hands out.
/// Every call takes `now` (seconds, monotonic): the clock is injected, so tests drive time.
///
/// ETR: Map-Register to every map-server (want-map-notify) every 60 s and on change, retransmitted
/// until an authenticated Map-Notify arrives; Map-Reply to Map-Requests for our EIDs; RLOC-probe
/// replies. ITR: a miss → (rate-limited per prefix) an Encapsulated Map-Request to a map-resolver;
/// a Map-Reply with a nonce we sent installs its records in the map-cache; entries in use are
/// refreshed before their TTL ends; unused ones expire; SMR asks again.
///
/// Not thread-safe: one owner (the I/O thread).
public struct XTRControlPlane {
    public init(mapCacheCapacity: Int, now: Double) {
    }

    /// Takes a whole new configuration (local EIDs with concrete RLOCs). `localRLOCs` are the
    /// host's addresses this xTR uses as ITR-RLOCs and outer sources (at least one per family in use).
    public mutating func apply(_ configuration: LISPControlConfiguration, localRLOCs: [IPAddress], now: Double) -> [OutgoingDatagram] {
        []
    }

    /// A datagram received on the control port.
    public mutating func receive(_ bytes: [UInt8], from source: IPAddress, sourcePort: UInt16, now: Double) -> [OutgoingDatagram] {
        []
    }

    /// Destinations the workers could not resolve (see `MapCacheMiss`).
    public mutating func handleMisses(_ misses: [MapCacheMiss], now: Double) -> [OutgoingDatagram] {
        []
    }

    /// Timers: registration, retransmission, map-cache use/refresh/expiry. Call at or after
    /// `nextDeadline`, and whenever convenient (it does only what is due).
    public mutating func tick(now: Double) -> [OutgoingDatagram] {
        []
    }

    /// When `tick` next has something to do.
    public var nextDeadline: Double { .infinity }

    /// A static map-cache entry (operator-configured, never expires; RFC 9301 allows it).
    public mutating func installStatic(_ prefix: VSwiftMapCache.EIDPrefix, locators: [VSwiftMapCache.Locator], now: Double) {
    }

    @discardableResult
    public mutating func removeStatic(_ prefix: VSwiftMapCache.EIDPrefix, now: Double) -> Bool {
        false
    }

    /// The map-cache version to publish, when it changed since the last call (else nil).
    public mutating func takeSnapshotIfChanged() -> MapCacheSnapshot? {
        nil
    }

    public func report(now: Double) -> XTRControlReport {
        XTRControlReport()
    }
}

/// What `vswiftctl show-lisp` and `dump-map-cache` print, and the metrics export.
public struct XTRControlReport: Equatable, Sendable {
    public var registrations: [MapServerRegistration] = []
    public var mapCache: [MapCacheReportEntry] = []
    /// Control messages sent, by message name ("map-register", "map-request", "map-reply",
    /// "map-notify-ack", ...).
    public var sent: [String: UInt64] = [:]
    /// Control messages received and accepted, by message name.
    public var received: [String: UInt64] = [:]
    /// Control messages refused, by reason ("malformed", "authentication", "nonce",
    /// "unsolicited", "unknown_type", "rate_limited", ...).
    public var refused: [String: UInt64] = [:]

    public init() {}
}

/// Registration state with one map-server.
public struct MapServerRegistration: Equatable, Sendable {
    public enum State: String, Sendable {
        /// Map-Registers sent, no Map-Notify yet.
        case registering
        /// The last Map-Register was acknowledged by an authenticated Map-Notify.
        case registered
        /// Nothing to register (no local EIDs).
        case idle
    }

    public var mapServer: IPAddress
    public var state: State
    /// Seconds since the last authenticated Map-Notify, nil if none yet.
    public var lastNotifyAge: Double?
    public var registersSent: UInt64
    public var notifiesAccepted: UInt64

    public init(mapServer: IPAddress, state: State, lastNotifyAge: Double?, registersSent: UInt64, notifiesAccepted: UInt64) {
        self.mapServer = mapServer
        self.state = state
        self.lastNotifyAge = lastNotifyAge
        self.registersSent = registersSent
        self.notifiesAccepted = notifiesAccepted
    }
}
