import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket

/// The ETR's registration with its map-servers (RFC 9301 §5.6, §5.7, §8.2), per map-server and
/// per Map-Register message:
///
///     idle ── local EIDs configured ──▶ registering ── authenticated Map-Notify, current nonce ──▶ registered
///                                        ▲   │ no Map-Notify: retransmit after 1, 2, 4, … 60 s                │
///                                        └───┴── records or key changed, or no Map-Notify for 180 s ◀───────┘
///
/// The local EID records do not fit one message when there are many (up to 4,096 are allowed; the
/// Record Count is 8 bits and a datagram should fit the path MTU): they are cut into groups
/// (`RecordBatching.groups`, whole records, at most `RecordBatching.maxPayload` bytes each), and
/// each group is its own Map-Register with its own state machine above: want-map-notify (M), a
/// new nonce at each send, greater than every earlier one (§5.6, `RegisterNonces`), authenticated
/// with the map-server's key, acknowledged by its own Map-Notify (found by that nonce),
/// retransmitted alone when that Map-Notify does not come (§5.7: after 1 s, doubling, at most
/// 1 minute). Once acknowledged, the next one goes 60 s after the last (§8.2: one minute; a
/// map-server times a registration out after three minutes without one). A map-server is
/// registered when every message is.
struct ETRRegistration {
    /// One Map-Register's records and its exchange with one map-server.
    struct Message {
        var records: [MappingRecord]
        /// The nonce of the last Map-Register sent and not yet acknowledged (nil: none awaited).
        var awaitedNonce: UInt64?
        /// Nonces of earlier sends: a Map-Notify with one of them is a late answer.
        var earlierNonces: [UInt64] = []
        var lastSentAt: Double?
        var nextSendAt: Double
        var retransmitInterval = ETRRegistration.firstRetransmit
        /// When a Map-Notify last acknowledged these records (nil: not since they were set).
        var acknowledgedAt: Double?
    }

    struct Server {
        var configuration: MapServerConfiguration
        var messages: [Message] = []
        var lastNotifyAt: Double?
        var registersSent: UInt64 = 0
        var notifiesAccepted: UInt64 = 0
    }

    static let firstRetransmit = 1.0
    /// RFC 9301 §8.2: "a suggested interval between messages of one minute".
    static let registerInterval = 60.0
    /// A map-server times out a registration not refreshed for three minutes (RFC 9301 §8.2): past
    /// that without a Map-Notify we no longer call ourselves registered.
    static let registrationLifetime = 180.0
    /// Record TTL of registered records, in minutes: what the map-server gives in the Map-Replies
    /// it proxies and what our own Map-Replies say (RFC 9301 §5.4 Record TTL; 1440 is the day
    /// OpenOverlayRouter and lispers.net use; the T bit, which would make it the registration's
    /// timeout, §5.6, is not set).
    static let recordTTLMinutes: UInt32 = 1440
    static let earlierNoncesKept = 8
    /// Type word, nonce, key id and authentication data length (RFC 9301 §5.6), before the
    /// authentication data itself.
    static let registerHeaderBytes = 16

    private(set) var servers: [Server] = []
    /// Every Map-Register's nonce, to every map-server: strictly increasing (RFC 9301 §5.6).
    var registerNonces = RegisterNonces()
    /// Every local EID record (one per local EID prefix), in configuration order; the messages
    /// carry them in groups.
    private(set) var records: [MappingRecord] = []

    /// Takes a new configuration: map-servers kept keep their state unless their key or the
    /// records changed, in which case (and for new ones) every Map-Register is due now.
    mutating func apply(_ configuration: LISPControlConfiguration, localRLOCs: [IPAddress], now: Double) {
        let newRecords = Self.records(for: configuration.localEIDs, localRLOCs: localRLOCs)
        let recordsChanged = newRecords != records
        records = newRecords
        var kept: [Server] = []
        for config in configuration.mapServers where !kept.contains(where: { $0.configuration.address == config.address }) {
            if var server = servers.first(where: { $0.configuration.address == config.address }),
               server.configuration.key == config.key {
                if recordsChanged { server.messages = Self.messages(records, to: config, now: now) }
                kept.append(server)
            } else {
                kept.append(Server(configuration: config, messages: Self.messages(records, to: config, now: now)))
            }
        }
        servers = kept
    }

    /// The Map-Registers carrying `records` to `server` (sized for its key and address family),
    /// all due at `now`.
    static func messages(_ records: [MappingRecord], to server: MapServerConfiguration, now: Double) -> [Message] {
        RecordBatching.groups(records, headerBytes: registerHeaderBytes + server.key.sentLength,
                              maxPayload: RecordBatching.maxPayload(ipv4: server.address.isIPv4)).map {
            Message(records: $0, nextSendAt: now)
        }
    }

    /// The local EID records (RFC 9301 §5.4 record format, as §5.6 registers them): each prefix
    /// with its locators, L set (they are ours, §5.4 "local Locator"), R set (we have a route to
    /// them), p clear (§5.4: "MUST NOT be set" in Map-Register), A set (we are the site, §5.4).
    /// Locators in ascending address order, IPv4 before IPv6 (§5.5: "MUST be sorted"; the record
    /// format is the Map-Reply's, and our Map-Replies carry these records). A record keeps at most
    /// `DecodeLimits.default.maxLocatorsPerRecord` locators (what a receiver takes).
    static func records(for eids: [LocalEIDConfiguration], localRLOCs: [IPAddress]) -> [MappingRecord] {
        let limits = DecodeLimits.default
        return eids.map { eid in
            let rlocs = (eid.rlocs.isEmpty ? localRLOCs.map { LocalRLOCConfiguration(address: $0) } : eid.rlocs)
                .prefix(limits.maxLocatorsPerRecord)
                .sorted { ascending($0.address, $1.address) }
            let locators = rlocs.map {
                LocatorRecord(address: LISPAddress($0.address), priority: $0.priority, weight: $0.weight,
                              local: true, reachable: true)
            }
            return MappingRecord(eid: ControlAddressing.wirePrefix(eid.prefix), ttl: recordTTLMinutes,
                                 action: .noAction, authoritative: true, locators: Array(locators))
        }
    }

    /// RFC 9301 §5.5's locator order: "ascending IP address where an IPv4 Routing Locator Address
    /// is considered numerically 'less than' an IPv6 Routing Locator Address".
    static func ascending(_ a: IPAddress, _ b: IPAddress) -> Bool {
        if a.isIPv4 != b.isIPv4 { return a.isIPv4 }
        return (a.high, a.low) < (b.high, b.low)
    }

    // MARK: Sending

    /// Map-Registers due at `now` (first sends, retransmissions, the 60 s cycle), one datagram
    /// per due message.
    mutating func due(now: Double, counters: inout ControlCounters) -> [OutgoingDatagram] {
        guard !records.isEmpty else { return [] }
        var out: [OutgoingDatagram] = []
        for i in servers.indices {
            let key = servers[i].configuration.key
            for m in servers[i].messages.indices where servers[i].messages[m].nextSendAt <= now {
                let nonce = registerNonces.next()
                let register = MapRegister(nonce: nonce, records: servers[i].messages[m].records, wantMapNotify: true)
                guard let bytes = try? register.encoded(authenticatingWith: key) else {
                    // A key whose sent length its algorithm cannot produce: a configuration error.
                    counters.count(.refusedNotConfigured)
                    servers[i].messages[m].nextSendAt = now + Self.registerInterval
                    continue
                }
                servers[i].messages[m].sent(nonce: nonce, now: now)
                servers[i].registersSent += 1
                counters.count(.sentMapRegister)
                out.append(OutgoingDatagram(destination: servers[i].configuration.address,
                                            destinationPort: lispControlPort, bytes: bytes))
            }
        }
        return out
    }

    var nextDeadline: Double {
        guard !records.isEmpty else { return .infinity }
        var deadline = Double.infinity
        for server in servers {
            for message in server.messages { deadline = min(deadline, message.nextSendAt) }
        }
        return deadline
    }

    // MARK: Map-Notify (RFC 9301 §5.7)

    enum NotifyOutcome: Equatable {
        /// Acknowledges one of our current Map-Registers: that message is registered.
        case acknowledged
        /// Authenticated, but acknowledges nothing we sent: the map-server's own notification,
        /// to be answered with a Map-Notify-Ack authenticated with `key`.
        case unsolicited(key: AuthenticationKey)
        case refused(ControlCounter)
    }

    /// Checks a Map-Notify (`bytes` as received, for the HMAC) from `source`. The map-server and
    /// the message are found by the nonce (each one we send is new: only that server saw it) or
    /// else the server by the source address; its Key ID and Algorithm ID must be the map-server's
    /// (RFC 9301 §5.7: the Map-Notify's fields "are copied from the corresponding Map-Register",
    /// so another Key ID names a secret we did not use: `refusedKeyID`), and its key must verify
    /// the HMAC (§5.7: "If the Authentication Data fails to validate, the message is dropped").
    mutating func handleNotify(_ notify: MapNotify, bytes: [UInt8], from source: IPAddress, now: Double) -> NotifyOutcome {
        var found: (server: Int, message: Int?)?
        search: for i in servers.indices {
            for m in servers[i].messages.indices where servers[i].messages[m].knows(notify.nonce) {
                found = (server: i, message: Optional(m))
                break search
            }
        }
        if found == nil, let i = servers.firstIndex(where: { $0.configuration.address == source }) { found = (server: i, message: nil) }
        guard let found else { return .refused(.refusedAuthentication) }
        let i = found.server
        let key = servers[i].configuration.key
        // Algorithm ID 0 is "None" (§12.5): not authenticated at all.
        guard notify.keyID & 0xff != 0 else { return .refused(.refusedAuthentication) }
        guard notify.keyID == key.field else { return .refused(.refusedKeyID) }
        do { try ControlAuthentication.verify(bytes, key: key) } catch { return .refused(.refusedAuthentication) }
        guard let m = found.message else { return .unsolicited(key: key) }
        guard servers[i].messages[m].awaitedNonce == notify.nonce else { return .refused(.refusedNonce) }
        servers[i].messages[m].acknowledged(now: now)
        servers[i].lastNotifyAt = now
        servers[i].notifiesAccepted += 1
        return .acknowledged
    }

    // MARK: Report

    func report(now: Double) -> [MapServerRegistration] {
        servers.map { server in
            let state: MapServerRegistration.State
            if records.isEmpty {
                state = .idle
            } else if server.messages.allSatisfy({ $0.acknowledgedAt.map { now - $0 < Self.registrationLifetime } ?? false }) {
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

extension ETRRegistration.Message {
    /// Whether `nonce` is that of one of this message's sends (awaited or earlier).
    func knows(_ nonce: UInt64) -> Bool { awaitedNonce == nonce || earlierNonces.contains(nonce) }

    /// Sent now with `nonce`: awaited; the next send is a retransmission (RFC 9301 §5.7: after 1 s,
    /// "exponential backoff (base of 2)", "the maximum backoff is 1 minute").
    mutating func sent(nonce: UInt64, now: Double) {
        if let old = awaitedNonce {
            earlierNonces.append(old)
            if earlierNonces.count > ETRRegistration.earlierNoncesKept { earlierNonces.removeFirst() }
        }
        awaitedNonce = nonce
        lastSentAt = now
        nextSendAt = now + retransmitInterval
        retransmitInterval = min(retransmitInterval * 2, ETRRegistration.registerInterval)
    }

    /// Its Map-Notify came: registered; the next Map-Register 60 s after this one was sent.
    mutating func acknowledged(now: Double) {
        awaitedNonce = nil
        acknowledgedAt = now
        retransmitInterval = ETRRegistration.firstRetransmit
        nextSendAt = (lastSentAt ?? now) + ETRRegistration.registerInterval
    }
}
