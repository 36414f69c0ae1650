import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket

/// The ITR's outstanding Map-Requests (RFC 9301 §5.3, §8.1): nonce → what was asked, when, how
/// often. Bounded (`capacity`); one entry per asked prefix. A request unanswered after
/// `retryInterval` is sent again (same nonce, so a late reply still counts), two attempts per
/// map-resolver in order, and dropped after `maxAttempts` (counted as `timeout`).
struct ITRResolution {
    struct Pending {
        /// The prefix asked: a host prefix for a miss, the cached prefix for a refresh or SMR.
        var asked: CachePrefix
        /// The miss's inner source (the Map-Request's source EID), nil for refreshes and SMRs.
        var sourceEID: IPAddress?
        var smrInvoked: Bool
        var lastSentAt: Double
        var attempts: Int
    }

    static let capacity = 1024
    static let retryInterval = 1.0
    static let attemptsPerResolver = 2
    /// RFC 9301 §5.3: "After 10 retransmits without receiving the corresponding Map-Reply, the
    /// sender MUST wait 30 seconds" (the limiter's back-off); we give up sooner.
    static let maxAttemptsCap = 10

    private(set) var pending: [UInt64: Pending] = [:]
    private var nonceOfPrefix: [CachePrefix: UInt64] = [:]
    var limiter = MapRequestLimiter(capacity: 4 * ITRResolution.capacity)

    var count: Int { pending.count }

    func isPending(_ prefix: CachePrefix) -> Bool { nonceOfPrefix[prefix] != nil }

    static func maxAttempts(resolvers: Int) -> Int { min(maxAttemptsCap, max(3, attemptsPerResolver * resolvers)) }

    mutating func add(_ request: Pending) -> UInt64 {
        var nonce = Nonce.fresh()
        while pending[nonce] != nil { nonce = Nonce.fresh() }
        pending[nonce] = request
        nonceOfPrefix[request.asked] = nonce
        return nonce
    }

    mutating func remove(_ nonce: UInt64) -> Pending? {
        guard let request = pending.removeValue(forKey: nonce) else { return nil }
        nonceOfPrefix.removeValue(forKey: request.asked)
        return request
    }

    mutating func recordAttempt(_ nonce: UInt64, now: Double) {
        pending[nonce]?.attempts += 1
        pending[nonce]?.lastSentAt = now
    }

    var nextDeadline: Double {
        pending.values.map { $0.lastSentAt + Self.retryInterval }.min() ?? .infinity
    }

    /// Nonces whose retry is due, oldest first.
    func due(now: Double) -> [UInt64] {
        pending.filter { now >= $0.value.lastSentAt + Self.retryInterval }
            .sorted { $0.value.lastSentAt < $1.value.lastSentAt }.map(\.key)
    }
}

extension XTRControlPlane {
    // MARK: Asking (RFC 9301 §5.3, §5.8)

    /// Starts a Map-Request for `asked` unless one is pending, the limiter holds it back (one per
    /// prefix per second, RFC 9301 §5.3) or the table is full.
    mutating func ask(_ asked: CachePrefix, sourceEID: IPAddress?, smrInvoked: Bool, now: Double) -> OutgoingDatagram? {
        guard !configuration.mapResolvers.isEmpty, !localRLOCs.isEmpty else {
            counters.count(.refusedNotConfigured)
            return nil
        }
        guard !resolution.isPending(asked) else {
            counters.count(.refusedRateLimited)
            return nil
        }
        guard resolution.count < ITRResolution.capacity else {
            counters.count(.refusedTableFull)
            return nil
        }
        let refusedFull = resolution.limiter.refusedFull
        guard resolution.limiter.mayRequest(asked, now: now) else {
            counters.count(resolution.limiter.refusedFull != refusedFull ? .refusedTableFull : .refusedRateLimited)
            return nil
        }
        let nonce = resolution.add(.init(asked: asked, sourceEID: sourceEID, smrInvoked: smrInvoked, lastSentAt: now, attempts: 0))
        return sendAttempt(nonce, now: now)
    }

    /// Sends attempt number `attempts` of a pending request: an ECM (RFC 9301 §5.8) to
    /// map-resolver `attempts / 2` (round robin), whose inner IP header goes from the source EID
    /// (or one of our RLOCs of the family) to the EID asked, carrying the Map-Request: source EID,
    /// ITR-RLOCs = our local RLOCs (at most 32, §5.2 IRC), one EID record (§5.2: "a sender MUST
    /// only send Map-Requests containing one record"), the nonce.
    mutating func sendAttempt(_ nonce: UInt64, now: Double) -> OutgoingDatagram? {
        guard let request = resolution.pending[nonce], !configuration.mapResolvers.isEmpty else { return nil }
        let resolvers = configuration.mapResolvers
        let resolver = resolvers[(request.attempts / ITRResolution.attemptsPerResolver) % resolvers.count]
        let asked = request.asked
        let family = asked.isIPv4
        let sourceEID = request.sourceEID.flatMap { $0.isIPv4 == family ? $0 : nil }
        let mapRequest = MapRequest(
            nonce: nonce,
            sourceEID: sourceEID.map { ControlAddressing.wireAddress($0, instanceID: asked.instanceID) } ?? .none,
            itrRLOCs: localRLOCs.prefix(32).map { LISPAddress($0) },
            records: [ControlAddressing.wirePrefix(asked)], smrInvoked: request.smrInvoked)
        let innerSource = sourceEID ?? localRLOCs.first { $0.isIPv4 == family } ?? ControlAddressing.unspecified(ipv4: family)
        let ecm = EncapsulatedControlMessage(message: .mapRequest(mapRequest), innerSource: LISPAddress(innerSource),
                                             innerDestination: LISPAddress(asked.address))
        guard let bytes = try? ControlMessage.encapsulated(ecm).encoded() else {
            _ = resolution.remove(nonce)
            counters.count(.refusedUnsupportedAddress)
            return nil
        }
        resolution.recordAttempt(nonce, now: now)
        counters.count(.sentMapRequest)
        return OutgoingDatagram(destination: resolver, destinationPort: lispControlPort, bytes: bytes)
    }

    /// Retries due at `now`; requests past their last attempt are dropped (`timeout`).
    mutating func retryPending(now: Double) -> [OutgoingDatagram] {
        var out: [OutgoingDatagram] = []
        let maxAttempts = ITRResolution.maxAttempts(resolvers: configuration.mapResolvers.count)
        for nonce in resolution.due(now: now) {
            guard let request = resolution.pending[nonce] else { continue }
            if request.attempts >= maxAttempts || configuration.mapResolvers.isEmpty {
                _ = resolution.remove(nonce)
                counters.count(.refusedTimeout)
                continue
            }
            // Retries count against the same limit (RFC 9301 §5.3: one per second, a 30 s wait
            // after ten): a retry the limiter holds back is in its back-off, so the request is
            // dropped rather than left due (which would make `nextDeadline` a time in the past).
            guard resolution.limiter.mayRequest(request.asked, now: now) else {
                _ = resolution.remove(nonce)
                counters.count(.refusedRateLimited)
                continue
            }
            if let datagram = sendAttempt(nonce, now: now) { out.append(datagram) }
        }
        return out
    }

    // MARK: Map-Reply (RFC 9301 §5.4, §5.5)

    /// A Map-Reply: accepted only when its nonce is that of a pending Map-Request (else nothing
    /// changes). Each record must cover the EID asked — same instance id, a mask length no longer
    /// than the one asked, the EID inside (RFC 9301 §5.5: "a Map-Reply returns an EID-Prefix with
    /// a mask-length that is less than or equal to the EID being requested") — or lie inside a
    /// record of the same reply that does (§5.5: an ETR with overlapping prefixes returns the
    /// more specific ones too); others are refused, so a reply cannot install mappings outside
    /// the prefix that answers the EID we asked about. Positive records install
    /// their IPv4/IPv6 locators (priority, weight, R as up) with their TTL; negative ones their ACT
    /// (unassigned values, which §12.3's registry may allocate later, as drop). Static entries are kept.
    mutating func handleMapReply(_ reply: MapReply, now: Double) {
        guard let request = resolution.remove(reply.nonce) else {
            counters.count(.refusedUnsolicited)
            return
        }
        counters.count(.receivedMapReply)
        resolution.limiter.answered(request.asked)
        let prefixes = reply.records.map { ControlAddressing.cachePrefix($0.eid) }
        // The records covering the EID asked, and those more specific than one of them (an ETR
        // with overlapping prefixes sends both, RFC 9301 §5.5).
        let covering = prefixes.compactMap { $0 }.filter { ControlAddressing.covers($0, request.asked) }
        for (record, prefix) in zip(reply.records, prefixes) {
            guard let prefix else {
                counters.count(.refusedUnsupportedAddress)
                continue
            }
            guard covering.contains(where: { ControlAddressing.covers($0, prefix) }) else {
                counters.count(.refusedEIDNotRequested)
                continue
            }
            if mapCache.entry(prefix)?.source == .static { continue }
            do {
                if record.locators.isEmpty {
                    let action = NegativeAction(rawValue: record.action.rawValue) ?? .drop
                    try mapCache.installNegative(prefix, action: action, ttlMinutes: record.ttl, source: .mapReply, now: now)
                } else {
                    let locators = record.locators.compactMap { l in
                        ControlAddressing.ip(l.address).map {
                            Locator(address: $0, priority: l.priority, weight: l.weight, isUp: l.reachable)
                        }
                    }
                    guard !locators.isEmpty else {
                        counters.count(.refusedUnsupportedAddress)
                        continue
                    }
                    try mapCache.install(prefix, locators: Array(locators.prefix(MapCacheDatabase.maxLocators)),
                                         ttlMinutes: record.ttl, source: .mapReply, now: now)
                }
            } catch {
                counters.count(.refusedTableFull)
            }
        }
    }

    // MARK: SMR (RFC 9301 §6.1)

    /// A Solicit-Map-Request: "the mapping you cached of me changed". For each EID it names (its
    /// source EID and its records; implementations put the changed EID in either) that our
    /// map-cache holds, a fresh SMR-invoked Map-Request (s bit) goes through the mapping system;
    /// EIDs we have not cached are ignored (§6.1: such an SMR SHOULD NOT cause a Map-Request).
    /// One the rate limits hold back is deferred, not dropped (`SMRResponder`). No Map-Reply
    /// answers an SMR.
    mutating func handleSMR(_ request: MapRequest, now: Double) -> [OutgoingDatagram] {
        counters.count(.receivedSMR)
        var named: [CachePrefix] = request.records.compactMap(ControlAddressing.cachePrefix)
        if let ip = request.sourceEID.plain.ipAddress,
           let host = ControlAddressing.hostPrefix(ip, instanceID: request.sourceEID.instanceID ?? 0) {
            named.append(host)
        }
        var cached: [CachePrefix] = []
        for prefix in named {
            guard let hit = cachedPrefix(covering: prefix), !cached.contains(hit) else { continue }
            cached.append(hit)
        }
        return cached.compactMap { smrInvokedRequest($0, now: now) }
    }

    /// The map-cache entry (not static) whose prefix covers `prefix`: the exact prefix, or the
    /// longest match in the last snapshot built (confirmed in the database).
    func cachedPrefix(covering prefix: CachePrefix) -> CachePrefix? {
        if let entry = mapCache.entry(prefix), entry.source != .static { return prefix }
        guard let snapshot = publishedSnapshot else { return nil }
        let index = snapshot.lookup(instanceID: prefix.instanceID, destination: prefix.address)
        guard index >= 0 else { return nil }
        let hit = snapshot.prefixes[Int(index)]
        guard ControlAddressing.covers(hit, prefix), let entry = mapCache.entry(hit), entry.source != .static else { return nil }
        return hit
    }
}
