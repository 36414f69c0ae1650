/// One map-cache entry as `show` prints it: EID prefix, instance id, RLOCs with priority, weight
/// and status, TTL left and where it came from. Plain data (Codable) for the control socket's
/// replies.
public struct MapCacheReportEntry: Sendable, Equatable, Codable, Comparable {
    public struct RLOC: Sendable, Equatable, Codable {
        public var address: String
        public var priority: UInt8
        public var weight: UInt8
        /// "up" or "down".
        public var status: String
    }

    public var instanceID: UInt32
    /// "a.b.c.d/len" or "x::/len".
    public var eidPrefix: String
    public var rlocs: [RLOC]
    /// For a negative entry, its action ("drop", "natively-forward", ...); nil when positive.
    public var action: String?
    /// Whole seconds left (rounded down); nil for static entries, which never expire.
    public var ttlLeft: Int?
    /// The TTL the mapping came with, in minutes.
    public var ttlMinutes: UInt32
    public var source: String
    /// Seconds since a worker last used it (rounded down).
    public var idle: Int
    /// Refresh Map-Requests asked for since it was installed.
    public var refreshAttempts: Int

    init(_ entry: MapCacheDatabase.Entry, now: Double) {
        instanceID = entry.prefix.instanceID
        eidPrefix = "\(entry.prefix.address)/\(entry.prefix.length)"
        rlocs = entry.locators.map {
            RLOC(address: "\($0.address)", priority: $0.priority, weight: $0.weight, status: $0.isUp ? "up" : "down")
        }
        action = entry.negative.map(\.name)
        ttlLeft = entry.expiresAt.map { max(0, Int(($0 - now).rounded(.down))) }
        ttlMinutes = entry.ttlMinutes
        source = entry.source.rawValue
        idle = max(0, Int((now - entry.lastUsed).rounded(.down)))
        refreshAttempts = entry.refreshAttempts
        isIPv4 = entry.prefix.isIPv4
        sortKey = (entry.prefix.address.high, entry.prefix.address.low, entry.prefix.length)
    }

    // Ordering: instance id, IPv4 before IPv6, address, length.
    private var isIPv4 = true
    private var sortKey: (UInt64, UInt64, UInt8) = (0, 0, 0)

    private enum CodingKeys: String, CodingKey {
        case instanceID = "instance_id", eidPrefix = "eid_prefix", rlocs, action, ttlLeft = "ttl_left"
        case ttlMinutes = "ttl_minutes", source, idle, refreshAttempts = "refresh_attempts"
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.instanceID == b.instanceID && a.eidPrefix == b.eidPrefix && a.rlocs == b.rlocs && a.action == b.action
            && a.ttlLeft == b.ttlLeft && a.ttlMinutes == b.ttlMinutes && a.source == b.source && a.idle == b.idle
            && a.refreshAttempts == b.refreshAttempts
    }

    public static func < (a: Self, b: Self) -> Bool {
        if a.instanceID != b.instanceID { return a.instanceID < b.instanceID }
        if a.isIPv4 != b.isIPv4 { return a.isIPv4 }
        return a.sortKey < b.sortKey
    }
}

extension NegativeAction {
    /// The action's name as RFC 9301 §5.4 writes it, in lower case.
    public var name: String {
        switch self {
        case .noAction: "no-action"
        case .nativelyForward: "natively-forward"
        case .sendMapRequest: "send-map-request"
        case .drop: "drop"
        case .dropPolicyDenied: "drop-policy-denied"
        case .dropAuthenticationFailure: "drop-auth-failure"
        }
    }
}
