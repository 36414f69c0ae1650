// What show-lisp and dump-map-cache answer (issue 16). Keys are never part of a report.

/// Result of `show-lisp`: the LISP control configuration (keys left out), the state of the
/// control socket, registration per map-server, and the control messages counted.
public struct ShowLISPReport: Codable, Sendable, Equatable {
    /// The UDP port of the control socket when it is open (vswiftd opens it while anything is
    /// configured), else nil.
    public var controlPort: UInt16?
    /// Why the control socket could not be opened, when it could not.
    public var controlError: String?
    public var mapServers: [MapServerReport]
    public var mapResolvers: [String]
    public var localEIDs: [LocalEIDReport]
    /// Static map-cache entries (add-map-cache), as configured.
    public var staticMapCache: [LocalEIDReport]
    /// How many static map-cache entries there are, where the report leaves them out (`show`'s
    /// summary: there may be 100k of them); nil in show-lisp's report, which lists them.
    public var staticMapCacheCount: Int?
    /// Control messages sent, received and accepted, refused by reason (`XTRControlReport`).
    public var sent: [String: UInt64]
    public var received: [String: UInt64]
    public var refused: [String: UInt64]
    /// The control socket's own counters: datagrams dropped before parsing (`oversized`), sends
    /// that failed (`send_errors`), workers' misses drained (`misses`), ...
    public var socket: [String: UInt64]

    public init(
        controlPort: UInt16? = nil, controlError: String? = nil, mapServers: [MapServerReport] = [], mapResolvers: [String] = [],
        localEIDs: [LocalEIDReport] = [], staticMapCache: [LocalEIDReport] = [], sent: [String: UInt64] = [:],
        received: [String: UInt64] = [:], refused: [String: UInt64] = [:], socket: [String: UInt64] = [:]
    ) {
        self.controlPort = controlPort
        self.controlError = controlError
        self.mapServers = mapServers
        self.mapResolvers = mapResolvers
        self.localEIDs = localEIDs
        self.staticMapCache = staticMapCache
        self.sent = sent
        self.received = received
        self.refused = refused
        self.socket = socket
    }

    private enum CodingKeys: String, CodingKey {
        case controlPort = "control_port", controlError = "control_error", mapServers = "map_servers"
        case mapResolvers = "map_resolvers", localEIDs = "local_eids", staticMapCache = "static_map_cache"
        case staticMapCacheCount = "static_map_cache_count"
        case sent, received, refused, socket
    }
}

/// One map-server: its Key ID and algorithm (never the key) and how registration with it goes.
public struct MapServerReport: Codable, Sendable, Equatable {
    public var address: String
    /// RFC 9301 §5.6's Key ID (0–255): which pre-shared secret.
    public var keyID: Int
    /// RFC 9301 §12.5's Algorithm ID (1 HMAC-SHA-1-96, 2 HMAC-SHA-256-128) and its name.
    public var algorithmID: Int
    public var algorithm: String
    /// "registering", "registered" or "idle"; nil while the control plane has not reported.
    public var state: String?
    /// Seconds since the last authenticated Map-Notify.
    public var lastNotifyAge: Double?
    public var registersSent: UInt64
    public var notifiesAccepted: UInt64

    public init(
        address: String, keyID: Int = 0, algorithmID: Int = 2, algorithm: String = "hmac-sha-256-128", state: String? = nil,
        lastNotifyAge: Double? = nil, registersSent: UInt64 = 0, notifiesAccepted: UInt64 = 0
    ) {
        self.address = address
        self.keyID = keyID
        self.algorithmID = algorithmID
        self.algorithm = algorithm
        self.state = state
        self.lastNotifyAge = lastNotifyAge
        self.registersSent = registersSent
        self.notifiesAccepted = notifiesAccepted
    }

    private enum CodingKeys: String, CodingKey {
        case address, keyID = "key_id", algorithmID = "algorithm_id", algorithm, state, lastNotifyAge = "last_notify_age", registersSent = "registers_sent"
        case notifiesAccepted = "notifies_accepted"
    }
}

/// A local EID prefix (or a static map-cache entry) and its RLOCs.
public struct LocalEIDReport: Codable, Sendable, Equatable {
    public var instanceID: UInt32
    public var prefix: String
    /// As configured; for a local EID configured without RLOCs, the addresses found toward the
    /// map-servers (empty while none is found).
    public var rlocs: [RLOCReport]
    /// The RLOCs were not configured: they are the host's addresses toward the map-servers.
    public var defaultRLOCs: Bool

    public init(instanceID: UInt32, prefix: String, rlocs: [RLOCReport], defaultRLOCs: Bool = false) {
        self.instanceID = instanceID
        self.prefix = prefix
        self.rlocs = rlocs
        self.defaultRLOCs = defaultRLOCs
    }

    private enum CodingKeys: String, CodingKey {
        case instanceID = "instance_id", prefix, rlocs, defaultRLOCs = "default_rlocs"
    }
}

public struct RLOCReport: Codable, Sendable, Equatable {
    public var address: String
    public var priority: Int
    public var weight: Int

    public init(address: String, priority: Int, weight: Int) {
        self.address = address
        self.priority = priority
        self.weight = weight
    }
}

/// One map-cache entry as `dump-map-cache` reports it: the client's reading of VSwiftMapCache's
/// `MapCacheReportEntry` (same keys).
public struct MapCacheEntryReport: Codable, Sendable, Equatable {
    public struct RLOC: Codable, Sendable, Equatable {
        public var address: String
        public var priority: Int
        public var weight: Int
        /// "up" or "down".
        public var status: String

        public init(address: String, priority: Int, weight: Int, status: String) {
            self.address = address
            self.priority = priority
            self.weight = weight
            self.status = status
        }
    }

    public var instanceID: UInt32
    public var eidPrefix: String
    public var rlocs: [RLOC]
    /// A negative entry's action ("drop", "natively-forward", ...).
    public var action: String?
    /// Whole seconds left; nil for static entries.
    public var ttlLeft: Int?
    public var ttlMinutes: UInt32
    /// "map-reply" or "static".
    public var source: String
    public var idle: Int
    public var refreshAttempts: Int

    public init(
        instanceID: UInt32, eidPrefix: String, rlocs: [RLOC], action: String? = nil, ttlLeft: Int?, ttlMinutes: UInt32,
        source: String, idle: Int, refreshAttempts: Int = 0
    ) {
        self.instanceID = instanceID
        self.eidPrefix = eidPrefix
        self.rlocs = rlocs
        self.action = action
        self.ttlLeft = ttlLeft
        self.ttlMinutes = ttlMinutes
        self.source = source
        self.idle = idle
        self.refreshAttempts = refreshAttempts
    }

    private enum CodingKeys: String, CodingKey {
        case instanceID = "instance_id", eidPrefix = "eid_prefix", rlocs, action, ttlLeft = "ttl_left"
        case ttlMinutes = "ttl_minutes", source, idle, refreshAttempts = "refresh_attempts"
    }
}

/// Result of `dump-map-cache`.
public struct DumpMapCacheReport: Codable, Sendable, Equatable {
    /// Ordered by instance id, IPv4 before IPv6, address, length.
    public var entries: [MapCacheEntryReport]

    public init(entries: [MapCacheEntryReport]) {
        self.entries = entries
    }
}
