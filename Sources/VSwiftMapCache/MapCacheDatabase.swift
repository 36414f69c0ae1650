import VSwiftPacket

/// Where a mapping came from.
public enum MappingSource: String, Sendable, Codable {
    /// A Map-Reply to our Map-Request (positive or negative).
    case mapReply = "map-reply"
    /// Configured by hand: never expires, never evicted.
    case `static` = "static"
}

/// The map-cache's timing, in seconds (times are injected: every call takes `now`).
public struct MapCacheTimers: Sendable {
    /// TTL given to a mapping whose Record TTL is 0xffffffff ("the recipient can decide locally
    /// how long to store the mapping", RFC 9301 §5.4): a day, the value RFC 9301 recommends
    /// for Map-Replies.
    public var defaultTTLMinutes: UInt32 = 1440
    /// How long before its TTL ends an entry in use is refreshed (at most half its TTL).
    public var refreshLead: Double = 60
    /// Refresh Map-Requests for one entry at most this often (RFC 9301 §5.3: at most one
    /// Map-Request per second for the same EID-Prefix).
    public var refreshRetry: Double = 1
    /// An entry used within this long is in use.
    public var activityWindow: Double = 60

    public init() {}
}

public enum MapCacheError: Error, Equatable, Sendable {
    /// Every entry is static (or the capacity is 0): nothing can be evicted for a new one.
    case full(capacity: Int)
    case tooManyLocators(Int)
}

/// What a sweep found: entries removed at the end of their TTL, and entries in use whose TTL ends
/// soon, for which the caller sends a Map-Request (rate-limited per prefix by the database).
public struct MapCacheSweep: Equatable, Sendable {
    public var expired: [EIDPrefix] = []
    public var refresh: [EIDPrefix] = []
}

/// The control side of the map-cache (not the packet path): the mappings learned from Map-Replies
/// and configured statically, their TTLs, use and refresh state, bounded by `capacity` with
/// least-recently-used eviction; it builds the snapshots the workers read.
///
/// An entry's life (RFC 9301 §5.4 Record TTL; RFC 9300 §6 map-cache):
/// - installed (Map-Reply or static) — *fresh*, expiring at install time + TTL (TTL 0: removed
///   at once; 0xffffffff: `defaultTTLMinutes`; static: never);
/// - in use (a worker marked it within `activityWindow`) and within `refreshLead` of its expiry —
///   *refreshing*: each sweep lists it in `refresh`, at most once per `refreshRetry`, until a new
///   Map-Reply installs it again (fresh, with a new TTL);
/// - at its expiry, refreshed or not: removed (listed in `expired`); the next packet misses and
///   asks for it again.
/// Not used for a while is no reason to remove an entry before its TTL, only to evict it first
/// when the cache is full.
///
/// Invariants: at most `capacity` entries; each entry has its own slot in `marks` (its index in
/// `records`), so marks survive new snapshots; the LRU list holds exactly the non-static entries,
/// most recently used first.
public struct MapCacheDatabase: Sendable {
    public struct Entry: Sendable, Equatable {
        public var prefix: EIDPrefix
        public var negative: NegativeAction?
        public var locators: [Locator]
        public var source: MappingSource
        public var ttlMinutes: UInt32
        public var installedAt: Double
        /// nil: never (static).
        public var expiresAt: Double?
        public var lastUsed: Double
        /// When the last refresh was asked for (nil: fresh).
        public var refreshAskedAt: Double?
        public var refreshAttempts = 0
    }

    public let capacity: Int
    public let timers: MapCacheTimers
    /// Read by the workers through every snapshot.
    public let marks: UseMarks
    /// Most locators one entry keeps (a locator record's count is 8 bits on the wire).
    public static let maxLocators = 255

    private var records: [Entry?]
    private var slotOf: [EIDPrefix: Int] = [:]
    private var freeSlots: [Int]
    // LRU list over slots (non-static entries): `newest` is the most recently used.
    private var newer: [Int32]
    private var older: [Int32]
    private var newest: Int32 = -1
    private var oldest: Int32 = -1
    /// Bumped on every change the workers must see: publish a new snapshot when it moved.
    public private(set) var version: UInt64 = 0

    public init(capacity: Int, timers: MapCacheTimers = MapCacheTimers()) {
        precondition(capacity >= 1)
        self.capacity = capacity
        self.timers = timers
        marks = UseMarks(capacity: capacity)
        records = [Entry?](repeating: nil, count: capacity)
        freeSlots = Array((0..<capacity).reversed())
        newer = [Int32](repeating: -1, count: capacity)
        older = [Int32](repeating: -1, count: capacity)
    }

    public var count: Int { slotOf.count }

    public func entry(_ prefix: EIDPrefix) -> Entry? { slotOf[prefix].flatMap { records[$0] } }

    // MARK: Changes

    /// Installs a positive mapping (replacing the prefix's previous one). A Record TTL of 0
    /// removes the prefix instead (RFC 9301 §5.4). When the cache is full, the least recently
    /// used non-static entry is evicted (returned).
    @discardableResult
    public mutating func install(
        _ prefix: EIDPrefix, locators: [Locator], ttlMinutes: UInt32, source: MappingSource, now: Double
    ) throws(MapCacheError) -> EIDPrefix? {
        guard locators.count <= Self.maxLocators else { throw .tooManyLocators(locators.count) }
        return try put(prefix, negative: nil, locators: locators, ttlMinutes: ttlMinutes, source: source, now: now)
    }

    /// Installs a negative mapping: packets to the prefix get `action` (RFC 9301 §5.4 ACT).
    @discardableResult
    public mutating func installNegative(
        _ prefix: EIDPrefix, action: NegativeAction, ttlMinutes: UInt32, source: MappingSource, now: Double
    ) throws(MapCacheError) -> EIDPrefix? {
        try put(prefix, negative: action, locators: [], ttlMinutes: ttlMinutes, source: source, now: now)
    }

    private mutating func put(
        _ prefix: EIDPrefix, negative: NegativeAction?, locators: [Locator], ttlMinutes: UInt32,
        source: MappingSource, now: Double
    ) throws(MapCacheError) -> EIDPrefix? {
        if ttlMinutes == 0 && source != .static {
            remove(prefix)
            return nil
        }
        let ttl = ttlMinutes == UInt32.max ? timers.defaultTTLMinutes : ttlMinutes
        let expiresAt: Double? = source == .static ? nil : now + Double(ttl) * 60
        var evicted: EIDPrefix?
        let slot: Int
        var lastUsed = now
        if let existing = slotOf[prefix] {
            slot = existing
            lastUsed = records[slot]!.lastUsed
            unlink(slot)
        } else {
            if freeSlots.isEmpty {
                guard oldest >= 0 else { throw .full(capacity: capacity) }
                evicted = records[Int(oldest)]!.prefix
                remove(evicted!)
            }
            slot = freeSlots.removeLast()
            slotOf[prefix] = slot
            _ = marks.take(slot)
        }
        records[slot] = Entry(
            prefix: prefix, negative: negative, locators: locators, source: source, ttlMinutes: ttl,
            installedAt: now, expiresAt: expiresAt, lastUsed: lastUsed)
        if source != .static { linkNewest(slot) }
        version &+= 1
        return evicted
    }

    /// Removes the prefix's entry; false when there is none.
    @discardableResult
    public mutating func remove(_ prefix: EIDPrefix) -> Bool {
        guard let slot = slotOf.removeValue(forKey: prefix) else { return false }
        unlink(slot)
        records[slot] = nil
        freeSlots.append(slot)
        version &+= 1
        return true
    }

    /// Marks the locator `address` of the prefix's entry up or down (R bit, locator-status bits,
    /// RLOC probing: RFC 9300 §10). False when there is no such entry or locator.
    @discardableResult
    public mutating func setLocatorStatus(_ prefix: EIDPrefix, locator address: IPAddress, isUp: Bool) -> Bool {
        guard let slot = slotOf[prefix], var entry = records[slot],
            let i = entry.locators.firstIndex(where: { $0.address == address })
        else { return false }
        guard entry.locators[i].isUp != isUp else { return true }
        entry.locators[i].isUp = isUp
        records[slot] = entry
        version &+= 1
        return true
    }

    // MARK: Time

    /// Takes the workers' use marks: every entry marked since the last call was used at `now`.
    public mutating func absorbUse(now: Double) {
        for (_, slot) in slotOf where marks.take(slot) {
            records[slot]!.lastUsed = now
            if records[slot]!.source != .static {
                unlink(slot)
                linkNewest(slot)
            }
        }
    }

    /// Expires entries at the end of their TTL and lists those in use that need a refresh (see
    /// the type's comment). Call about once a second, after `absorbUse`.
    public mutating func sweep(now: Double) -> MapCacheSweep {
        var result = MapCacheSweep()
        var expired: [EIDPrefix] = []
        for (prefix, slot) in slotOf {
            guard let expiresAt = records[slot]!.expiresAt else { continue }
            let entry = records[slot]!
            if now >= expiresAt {
                expired.append(prefix)
                continue
            }
            let lead = min(timers.refreshLead, Double(entry.ttlMinutes) * 30)
            guard now >= expiresAt - lead, now - entry.lastUsed <= timers.activityWindow else { continue }
            if let asked = entry.refreshAskedAt, now - asked < timers.refreshRetry { continue }
            records[slot]!.refreshAskedAt = now
            records[slot]!.refreshAttempts += 1
            result.refresh.append(prefix)
        }
        for prefix in expired { remove(prefix) }
        result.expired = expired.sorted { $0.description < $1.description }
        result.refresh.sort { $0.description < $1.description }
        return result
    }

    // MARK: Snapshots and reports

    /// The version of the cache the workers should read now.
    public func snapshot() -> MapCacheSnapshot {
        var entries: [SnapshotEntry] = []
        entries.reserveCapacity(slotOf.count)
        for (_, slot) in slotOf {
            let entry = records[slot]!
            entries.append(SnapshotEntry(prefix: entry.prefix, negative: entry.negative, locators: entry.locators, markSlot: slot))
        }
        return MapCacheSnapshot(entries, marks: marks)
    }

    /// Every entry, by instance id, family and prefix, as `show` prints them.
    public func report(now: Double) -> [MapCacheReportEntry] {
        slotOf.values.map { MapCacheReportEntry(records[$0]!, now: now) }.sorted()
    }

    /// The distinct locator addresses of the learned (non-static) positive entries, most recently
    /// used first, at most `limit`: the sites this xTR is talking to.
    public func learnedLocators(limit: Int) -> [IPAddress] {
        var result: [IPAddress] = []
        var seen = Set<IPAddress>()
        var slot = newest
        while slot >= 0 && result.count < limit {
            let entry = records[Int(slot)]!
            if entry.negative == nil {
                for locator in entry.locators where result.count < limit && seen.insert(locator.address).inserted {
                    result.append(locator.address)
                }
            }
            slot = older[Int(slot)]
        }
        return result
    }

    /// The prefixes from least to most recently used (non-static entries).
    public var leastRecentlyUsed: [EIDPrefix] {
        var result: [EIDPrefix] = []
        var slot = oldest
        while slot >= 0 {
            result.append(records[Int(slot)]!.prefix)
            slot = newer[Int(slot)]
        }
        return result
    }

    // MARK: LRU list

    private mutating func linkNewest(_ slot: Int) {
        older[slot] = newest
        newer[slot] = -1
        if newest >= 0 { newer[Int(newest)] = Int32(slot) } else { oldest = Int32(slot) }
        newest = Int32(slot)
    }

    /// Takes `slot` out of the list (nothing when it is not in it: static entries).
    private mutating func unlink(_ slot: Int) {
        let s = Int32(slot)
        guard newest == s || oldest == s || newer[slot] >= 0 || older[slot] >= 0 else { return }
        if newer[slot] >= 0 { older[Int(newer[slot])] = older[slot] } else { newest = older[slot] }
        if older[slot] >= 0 { newer[Int(older[slot])] = newer[slot] } else { oldest = newer[slot] }
        newer[slot] = -1
        older[slot] = -1
    }
}
