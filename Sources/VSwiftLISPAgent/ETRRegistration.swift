import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket

/// The ETR's registration with its map-servers (RFC 9301 §5.6, §5.7, §8.2), per map-server:
///
///     idle ── local EIDs configured ──▶ registering ── authenticated Map-Notify, current nonce ──▶ registered
///                                        ▲   │ no Map-Notify: retransmit after 1, 2, 4, … 60 s                │
///                                        └───┴── records or key changed, or no Map-Notify for 180 s ◀───────┘
///
/// Every Map-Register carries all local EID records, want-map-notify (M) and a fresh random nonce
/// (§5.6: "incremented each time"; random serves the same purpose and cannot be predicted), and is
/// authenticated with the map-server's key. Once acknowledged, the next one goes 60 s after the
/// last (§8.2: every 60 s; a map-server forgets a registration after three minutes without one),
/// then the retransmission schedule starts again until its own Map-Notify.
struct ETRRegistration {
    struct Server {
        var configuration: MapServerConfiguration
        /// The nonce of the last Map-Register sent and not yet acknowledged (nil: none awaited).
        var awaitedNonce: UInt64?
        /// Nonces of earlier Map-Registers: a Map-Notify with one of them is a late answer.
        var earlierNonces: [UInt64] = []
        var lastSentAt: Double?
        var nextSendAt: Double
        var retransmitInterval = ETRRegistration.firstRetransmit
        var lastNotifyAt: Double?
        /// The last accepted Map-Notify acknowledged the records now configured.
        var acknowledgedCurrent = false
        var registersSent: UInt64 = 0
        var notifiesAccepted: UInt64 = 0
    }

    static let firstRetransmit = 1.0
    /// RFC 9301 §8.2: Map-Registers every 60 seconds.
    static let registerInterval = 60.0
    /// A map-server drops a registration not refreshed for three minutes (RFC 9301 §8.2): past
    /// that without a Map-Notify we no longer call ourselves registered.
    static let registrationLifetime = 180.0
    /// Record TTL of registered records, in minutes: what the map-server gives in the Map-Replies
    /// it proxies (RFC 9301 §5.4 Record TTL; 1440 is the day OpenOverlayRouter and lispers.net use).
    static let recordTTLMinutes: UInt32 = 1440
    static let earlierNoncesKept = 8

    private(set) var servers: [Server] = []
    /// What every Map-Register carries: one record per local EID prefix.
    private(set) var records: [MappingRecord] = []

    /// Takes a new configuration: map-servers kept keep their state unless their key or the
    /// records changed, in which case (and for new ones) a Map-Register is due now.
    mutating func apply(_ configuration: LISPControlConfiguration, localRLOCs: [IPAddress], now: Double) {
        let newRecords = Self.records(for: configuration.localEIDs, localRLOCs: localRLOCs)
        let recordsChanged = newRecords != records
        records = newRecords
        var kept: [Server] = []
        for config in configuration.mapServers where !kept.contains(where: { $0.configuration.address == config.address }) {
            if var server = servers.first(where: { $0.configuration.address == config.address }),
               server.configuration.key == config.key {
                if recordsChanged { Self.restart(&server, now: now) }
                kept.append(server)
            } else {
                kept.append(Server(configuration: config, nextSendAt: now))
            }
        }
        servers = kept
    }

    private static func restart(_ server: inout Server, now: Double) {
        server.acknowledgedCurrent = false
        server.nextSendAt = now
        server.retransmitInterval = firstRetransmit
    }

    /// The local EID records (RFC 9301 §5.4 record format, as §5.6 registers them): each prefix
    /// with its locators, L set (they are ours), R set, A set (we are the authority). Capped to
    /// what one message may carry (`DecodeLimits.default`): extra prefixes are not registered.
    static func records(for eids: [LocalEIDConfiguration], localRLOCs: [IPAddress]) -> [MappingRecord] {
        let limits = DecodeLimits.default
        var result: [MappingRecord] = []
        var locatorsLeft = limits.maxLocatorsPerMessage
        for eid in eids {
            guard result.count < limits.maxRecords else { break }
            let rlocs = eid.rlocs.isEmpty
                ? localRLOCs.map { LocalRLOCConfiguration(address: $0) } : eid.rlocs
            let locators = rlocs.prefix(min(limits.maxLocatorsPerRecord, locatorsLeft)).map {
                LocatorRecord(address: LISPAddress($0.address), priority: $0.priority, weight: $0.weight,
                              local: true, reachable: true)
            }
            locatorsLeft -= locators.count
            result.append(MappingRecord(eid: ControlAddressing.wirePrefix(eid.prefix), ttl: recordTTLMinutes,
                                        action: .noAction, authoritative: true, locators: Array(locators)))
        }
        return result
    }

    // MARK: Sending

    /// Map-Registers due at `now` (first sends, retransmissions, the 60 s cycle).
    mutating func due(now: Double, counters: inout ControlCounters) -> [OutgoingDatagram] {
        guard !records.isEmpty else { return [] }
        var out: [OutgoingDatagram] = []
        for i in servers.indices where servers[i].nextSendAt <= now {
            let nonce = Nonce.fresh()
            let register = MapRegister(nonce: nonce, records: records, wantMapNotify: true)
            guard let bytes = try? register.encoded(authenticatingWith: servers[i].configuration.key) else {
                // A key whose sent length its algorithm cannot produce: a configuration error.
                counters.count(.refusedNotConfigured)
                servers[i].nextSendAt = now + Self.registerInterval
                continue
            }
            if let old = servers[i].awaitedNonce {
                servers[i].earlierNonces.append(old)
                if servers[i].earlierNonces.count > Self.earlierNoncesKept { servers[i].earlierNonces.removeFirst() }
            }
            servers[i].awaitedNonce = nonce
            servers[i].lastSentAt = now
            servers[i].nextSendAt = now + servers[i].retransmitInterval
            servers[i].retransmitInterval = min(servers[i].retransmitInterval * 2, Self.registerInterval)
            servers[i].registersSent += 1
            counters.count(.sentMapRegister)
            out.append(OutgoingDatagram(destination: servers[i].configuration.address,
                                        destinationPort: lispControlPort, bytes: bytes))
        }
        return out
    }

    var nextDeadline: Double {
        guard !records.isEmpty else { return .infinity }
        return servers.map(\.nextSendAt).min() ?? .infinity
    }

    // MARK: Map-Notify (RFC 9301 §5.7)

    enum NotifyOutcome: Equatable {
        /// Acknowledges our current Map-Register: registered.
        case acknowledged
        /// Authenticated, but acknowledges nothing we sent: the map-server's own notification,
        /// to be answered with a Map-Notify-Ack authenticated with `key`.
        case unsolicited(key: AuthenticationKey)
        case refused(ControlCounter)
    }

    /// Checks a Map-Notify (`bytes` as received, for the HMAC) from `source`. The map-server is
    /// found by the nonce (ours are random: only that server saw it) or else by the source
    /// address; its key must verify the HMAC (§5.7: "the Map-Notify message is authenticated").
    mutating func handleNotify(_ notify: MapNotify, bytes: [UInt8], from source: IPAddress, now: Double) -> NotifyOutcome {
        let index = servers.firstIndex(where: { $0.awaitedNonce == notify.nonce || $0.earlierNonces.contains(notify.nonce) })
            ?? servers.firstIndex(where: { $0.configuration.address == source })
        guard let i = index else { return .refused(.refusedAuthentication) }
        let key = servers[i].configuration.key
        do { try ControlAuthentication.verify(bytes, key: key) } catch { return .refused(.refusedAuthentication) }
        if servers[i].awaitedNonce == notify.nonce {
            servers[i].awaitedNonce = nil
            servers[i].lastNotifyAt = now
            servers[i].acknowledgedCurrent = true
            servers[i].notifiesAccepted += 1
            servers[i].retransmitInterval = Self.firstRetransmit
            servers[i].nextSendAt = (servers[i].lastSentAt ?? now) + Self.registerInterval
            return .acknowledged
        }
        if servers[i].earlierNonces.contains(notify.nonce) { return .refused(.refusedNonce) }
        return .unsolicited(key: key)
    }

    // MARK: Report

    func report(now: Double) -> [MapServerRegistration] {
        servers.map { server in
            let state: MapServerRegistration.State
            if records.isEmpty {
                state = .idle
            } else if server.acknowledgedCurrent, let at = server.lastNotifyAt, now - at < Self.registrationLifetime {
                state = .registered
            } else {
                state = .registering
            }
            return MapServerRegistration(mapServer: server.configuration.address, state: state,
                                         lastNotifyAge: server.lastNotifyAt.map { now - $0 },
                                         registersSent: server.registersSent, notifiesAccepted: server.notifiesAccepted)
        }
    }
}
