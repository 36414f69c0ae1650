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
///
/// This file is the façade: state and the public entry points. The jobs live beside it:
/// `ETRRegistration` (Map-Register/Map-Notify), `MapRequestAnswering` (the ETR's Map-Replies and
/// RLOC-probe replies), `ITRResolution` (misses, Map-Requests, Map-Replies, SMR), `ControlReceive`
/// (decoding and dispatch), `ControlCounters` (the one list of counter names).
///
/// Bounds: pending Map-Requests (`ITRResolution.capacity`), the limiter's destinations, deferred
/// SMRs (`SMRResponder.capacity`), per-destination buckets (`DestinationRateLimit`), answers per
/// second (`ReplyBudget`), records and locators per message (the codec's `DecodeLimits`), the
/// map-cache (`mapCacheCapacity`); nothing grows with what arrives.
public struct XTRControlPlane {
    var configuration = LISPControlConfiguration()
    var localRLOCs: [IPAddress] = []
    var counters = ControlCounters()
    var registration = ETRRegistration()
    var resolution = ITRResolution()
    var smrResponder = SMRResponder()
    /// RFC 9301 §5.4's per-destination limit on Map-Replies and §6.1's on SMRs (`DestinationRateLimit`).
    var mapReplyLimit = DestinationRateLimit()
    var smrLimit = DestinationRateLimit()
    var replyBudget: ReplyBudget
    var mapCache: MapCacheDatabase
    /// The last snapshot handed out, and the database version it holds.
    var publishedSnapshot: MapCacheSnapshot?
    var publishedVersion: UInt64 = 0
    var lastSnapshotAt = -Double.infinity
    var nextSweepAt: Double
    /// The latest `now` any call brought (for `takeSnapshotIfChanged()` without a time).
    var lastNow: Double

    /// Snapshots are rebuilt at most this often: a burst of Map-Replies costs one rebuild
    /// (a 100k-entry snapshot takes about 0.14 s to build).
    public static let snapshotInterval = 0.05
    /// The spacing actually kept between two snapshots, at most `snapshotInterval`. The I/O loop
    /// lowers it to a few times what the last rebuild cost (`adaptSnapshotSpacing`): a small
    /// map-cache is published within milliseconds of the Map-Reply (a new flow's first packets
    /// wait for it), a big one still costs at most one rebuild per `snapshotInterval`.
    public private(set) var snapshotSpacing = XTRControlPlane.snapshotInterval
    /// How often the map-cache is swept (use marks absorbed, TTLs expired, refreshes asked).
    public static let sweepInterval = 1.0

    public init(mapCacheCapacity: Int, now: Double) {
        mapCache = MapCacheDatabase(capacity: max(1, mapCacheCapacity))
        replyBudget = ReplyBudget(now: now)
        nextSweepAt = now + Self.sweepInterval
        lastNow = now
    }

    /// Takes a whole new configuration (local EIDs with concrete RLOCs). `localRLOCs` are the
    /// host's addresses this xTR uses as ITR-RLOCs and outer sources (at least one per family in use).
    public mutating func apply(_ configuration: LISPControlConfiguration, localRLOCs: [IPAddress], now: Double) -> [OutgoingDatagram] {
        lastNow = max(lastNow, now)
        self.configuration = configuration
        self.localRLOCs = localRLOCs
        let registered = registration.records
        // What map-servers had from us and no longer should: withdrawn first (TTL 0, RFC 9301
        // §5.6; ETRDeregistration.swift), then the new registration.
        let withdrawals = registration.withdrawals(
            for: configuration, newRecords: ETRRegistration.records(for: configuration.localEIDs, localRLOCs: localRLOCs))
        var out: [OutgoingDatagram] = []
        for withdrawal in withdrawals {
            out += registration.withdrawalDatagrams(withdrawal.records, to: withdrawal.server, counters: &counters)
        }
        registration.apply(configuration, localRLOCs: localRLOCs, now: now)
        out += registration.due(now: now, counters: &counters)
        if !registered.isEmpty && registration.records != registered {
            out += solicitMapRequests(changed: Self.changedPrefixes(registered, registration.records), now: now)
        }
        return out
    }

    /// A datagram received on the control port.
    public mutating func receive(_ bytes: [UInt8], from source: IPAddress, sourcePort: UInt16, now: Double) -> [OutgoingDatagram] {
        lastNow = max(lastNow, now)
        return dispatch(bytes, from: source, sourcePort: sourcePort, now: now)
    }

    /// Destinations the workers could not resolve (see `MapCacheMiss`): one Map-Request per
    /// destination at most once a second (RFC 9301 §5.3), for a host prefix in the miss's instance.
    public mutating func handleMisses(_ misses: [MapCacheMiss], now: Double) -> [OutgoingDatagram] {
        lastNow = max(lastNow, now)
        var out: [OutgoingDatagram] = []
        for miss in misses {
            guard let asked = ControlAddressing.hostPrefix(miss.destination, instanceID: miss.instanceID) else {
                counters.count(.refusedUnsupportedAddress)
                continue
            }
            if let datagram = ask(asked, sourceEID: miss.source, smrInvoked: false, now: now) { out.append(datagram) }
        }
        return out
    }

    /// Timers: registration, retransmission, map-cache use/refresh/expiry. Call at or after
    /// `nextDeadline`, and whenever convenient (it does only what is due).
    public mutating func tick(now: Double) -> [OutgoingDatagram] {
        lastNow = max(lastNow, now)
        var out = registration.due(now: now, counters: &counters)
        out += retryPending(now: now)
        out += deferredSMRRequests(now: now)
        if now >= nextSweepAt {
            nextSweepAt = now + Self.sweepInterval
            mapCache.absorbUse(now: now)
            // RFC 9301 §5.4 Record TTL: expired entries go (the next packet misses and asks);
            // entries in use are asked for again before their TTL ends.
            let sweep = mapCache.sweep(now: now)
            for prefix in sweep.refresh {
                if let datagram = ask(prefix, sourceEID: nil, smrInvoked: false, now: now) { out.append(datagram) }
            }
        }
        return out
    }

    /// When `tick` (or, for a new snapshot, `takeSnapshotIfChanged`) next has something to do.
    /// Never in the past after a `tick` and a `takeSnapshotIfChanged` at `now`: the I/O loop waits
    /// for a datagram, a miss or this time, calls the entry points, sends what they return and
    /// publishes `takeSnapshotIfChanged(now:)`.
    public var nextDeadline: Double {
        var deadline = min(registration.nextDeadline, resolution.nextDeadline, smrResponder.nextDeadline)
        if mapCache.count > 0 { deadline = min(deadline, nextSweepAt) }
        if mapCache.version != publishedVersion { deadline = min(deadline, lastSnapshotAt + snapshotSpacing) }
        return deadline
    }

    /// A static map-cache entry (operator-configured, never expires; RFC 9301 allows it).
    public mutating func installStatic(_ prefix: VSwiftMapCache.EIDPrefix, locators: [VSwiftMapCache.Locator], now: Double) {
        lastNow = max(lastNow, now)
        do {
            try mapCache.install(prefix, locators: Array(locators.prefix(MapCacheDatabase.maxLocators)),
                                 ttlMinutes: UInt32.max, source: .static, now: now)
        } catch {
            counters.count(.refusedTableFull)
        }
    }

    @discardableResult
    public mutating func removeStatic(_ prefix: VSwiftMapCache.EIDPrefix, now: Double) -> Bool {
        lastNow = max(lastNow, now)
        guard mapCache.entry(prefix)?.source == .static else { return false }
        return mapCache.remove(prefix)
    }

    /// The map-cache version to publish, when it changed since the last call (else nil), at most
    /// once per `snapshotInterval` of the latest time the control plane was given.
    public mutating func takeSnapshotIfChanged() -> MapCacheSnapshot? {
        takeSnapshotIfChanged(now: lastNow)
    }

    /// The map-cache version to publish, when it changed since the last one handed out and at
    /// least `snapshotInterval` has passed since then (else nil: `nextDeadline` says when to ask
    /// again), so a burst of Map-Replies costs one rebuild.
    public mutating func takeSnapshotIfChanged(now: Double) -> MapCacheSnapshot? {
        lastNow = max(lastNow, now)
        guard mapCache.version != publishedVersion, now >= lastSnapshotAt + snapshotSpacing else { return nil }
        let snapshot = mapCache.snapshot()
        publishedSnapshot = snapshot
        publishedVersion = mapCache.version
        lastSnapshotAt = now
        return snapshot
    }

    /// Keeps rebuilds to at most a fifth of the time: the next snapshot waits four times what the
    /// last one took to build (`buildSeconds`, measured by the caller), between 2 ms and
    /// `snapshotInterval`.
    public mutating func adaptSnapshotSpacing(buildSeconds: Double) {
        snapshotSpacing = min(Self.snapshotInterval, max(0.002, 4 * buildSeconds))
    }

    /// One counter's value.
    public func counter(_ counter: ControlCounter) -> UInt64 { counters[counter] }

    public func report(now: Double) -> XTRControlReport {
        var report = XTRControlReport()
        report.registrations = registration.report(now: now)
        report.mapCache = mapCache.report(now: now)
        report.sent = counters.byName(.sent)
        report.received = counters.byName(.received)
        report.refused = counters.byName(.refused)
        return report
    }
}

/// What `vswiftctl show-lisp` and `dump-map-cache` print, and the metrics export.
public struct XTRControlReport: Equatable, Sendable {
    public var registrations: [MapServerRegistration] = []
    public var mapCache: [MapCacheReportEntry] = []
    /// Control messages sent, by message name ("map-register", "map-request", "map-reply",
    /// "map-notify-ack"). Every name of `ControlCounter` of its kind is present (zeros included).
    public var sent: [String: UInt64] = [:]
    /// Control messages received and accepted, by message name (`ControlCounter`, kind received).
    public var received: [String: UInt64] = [:]
    /// Control messages refused, by reason ("malformed", "authentication", "nonce",
    /// "unsolicited", "unknown_type", "rate_limited", ...: `ControlCounter`, kind refused).
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

/// A value the I/O thread may take over from the thread that built it (it is still used by one
/// owner at a time).
extension XTRControlPlane: Sendable {}
