import VSwiftMapCache

/// The ITR's side of Solicit-Map-Requests (RFC 9301 §6.1): an SMR says "the mapping you cached of
/// me changed", so it must end in an SMR-invoked Map-Request, never be lost to a rate limit.
/// Two limits apply to that Map-Request: §5.3's one per EID-prefix per second (the
/// `MapRequestLimiter` every Map-Request goes through, so an SMR arriving just after the answer
/// that installed the entry meets it) and §6.1's "It is RECOMMENDED that the SMR responder rate
/// limit a Map-Request for the same EID-Prefix to no more than once every 3 seconds"
/// (`interval`, between SMR-invoked ones). One held back is *deferred*: asked at the earliest time
/// both allow. Bounded: at most one deferred per prefix (more SMRs for it change nothing: the one
/// Map-Request will fetch the newest mapping), and `capacity` prefixes tracked in all.
struct SMRResponder {
    static let interval = 3.0
    static let capacity = 1024

    struct State {
        /// When the last SMR-invoked Map-Request for the prefix was sent.
        var lastAskedAt: Double?
        /// When a deferred one is due (nil: none deferred).
        var dueAt: Double?
    }

    private(set) var states: [CachePrefix: State] = [:]
    private var lastPrune = -Double.infinity

    /// When §6.1's own limit next allows an SMR-invoked Map-Request for `prefix`.
    func allowedAt(_ prefix: CachePrefix) -> Double {
        states[prefix]?.lastAskedAt.map { $0 + Self.interval } ?? -.infinity
    }

    func isDeferred(_ prefix: CachePrefix) -> Bool { states[prefix]?.dueAt != nil }

    /// Records the SMR-invoked Map-Request sent for `prefix` (its deferral, if any, is done).
    /// False when the table is full of prefixes still inside their interval or deferred.
    @discardableResult
    mutating func asked(_ prefix: CachePrefix, now: Double) -> Bool {
        guard makeRoom(for: prefix, now: now) else { return false }
        states[prefix] = State(lastAskedAt: now, dueAt: nil)
        return true
    }

    /// Defers `prefix` to `dueAt` (a later due time of one already deferred is kept: the earliest
    /// the limits allow is what was computed last). False when the table is full.
    mutating func postpone(_ prefix: CachePrefix, until dueAt: Double, now: Double) -> Bool {
        guard makeRoom(for: prefix, now: now) else { return false }
        states[prefix, default: State()].dueAt = dueAt
        return true
    }

    /// Forgets a deferral (the entry is no longer cached: §6.1, no Map-Request for it).
    mutating func cancel(_ prefix: CachePrefix) { states[prefix]?.dueAt = nil }

    var nextDeadline: Double { states.values.compactMap(\.dueAt).min() ?? .infinity }

    /// Prefixes whose deferral is due at `now`, earliest first (their deferral is cleared: the
    /// caller asks or defers them again).
    mutating func takeDue(now: Double) -> [CachePrefix] {
        let due = states.filter { $0.value.dueAt.map { $0 <= now } ?? false }.sorted { $0.value.dueAt! < $1.value.dueAt! }.map(\.key)
        for prefix in due { states[prefix]?.dueAt = nil }
        return due
    }

    /// Room for `prefix`: it is known, or there is a free slot, or one frees when entries neither
    /// deferred nor inside their interval are forgotten (at most once a second, so a flood of SMRs
    /// does not cost a scan each).
    private mutating func makeRoom(for prefix: CachePrefix, now: Double) -> Bool {
        if states[prefix] != nil || states.count < Self.capacity { return true }
        if now - lastPrune >= 1 {
            lastPrune = now
            states = states.filter { $0.value.dueAt != nil || ($0.value.lastAskedAt.map { now - $0 < Self.interval } ?? false) }
        }
        return states.count < Self.capacity
    }
}

extension XTRControlPlane {
    /// Deferred SMR-invoked Map-Requests are due this long after the limits allow them, so that
    /// floating-point rounding cannot make the limiter refuse one at its due time.
    static let smrDeferralMargin = 0.001

    /// The SMR-invoked Map-Request for the cached `prefix` (RFC 9301 §6.1): sent now when §5.3's
    /// and §6.1's limits allow it and no Map-Request for it is outstanding (one sent before the
    /// SMR may bring the old mapping back), else deferred to the earliest time they allow.
    mutating func smrInvokedRequest(_ prefix: CachePrefix, now: Double) -> OutgoingDatagram? {
        guard !smrResponder.isDeferred(prefix) else { return nil }
        var dueAt = smrResponder.allowedAt(prefix)
        if let limited = resolution.limiter.allowedAt(prefix) { dueAt = max(dueAt, limited) }
        if resolution.isPending(prefix) { dueAt = max(dueAt, now + ITRResolution.retryInterval) }
        guard dueAt > now else {
            guard let datagram = ask(prefix, sourceEID: nil, smrInvoked: true, now: now) else { return nil }
            smrResponder.asked(prefix, now: now)
            return datagram
        }
        if !smrResponder.postpone(prefix, until: dueAt + Self.smrDeferralMargin, now: now) {
            counters.count(.refusedTableFull)
        }
        return nil
    }

    /// Deferred SMR-invoked Map-Requests due at `now`, for entries still cached (§6.1: an ITR
    /// without the mapping asks nothing; its next packet will).
    mutating func deferredSMRRequests(now: Double) -> [OutgoingDatagram] {
        smrResponder.takeDue(now: now).compactMap { prefix in
            guard let entry = mapCache.entry(prefix), entry.source != .static else { return nil }
            return smrInvokedRequest(prefix, now: now)
        }
    }
}
