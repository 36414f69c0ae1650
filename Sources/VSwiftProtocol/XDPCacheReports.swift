// The XDP flow cache as the control socket reports it (`dump-xdp-cache`, and the path counts of
// `dump-ports` and `dump-workers`): plain data that vswiftd makes from the datapath's
// `XDPFlowCacheReport` (VSwiftControl, `Reports+XDPFlowCache.swift`).

/// Params of dump-xdp-cache: every bridge's entries, or one bridge's.
public struct DumpXDPCacheParams: Codable, Sendable, Equatable {
    public var bridge: String?
    /// false: the statistics and path counts only, no entries.
    public var flows: Bool?

    public init(bridge: String? = nil, flows: Bool? = nil) {
        self.bridge = bridge
        self.flows = flows
    }
}

/// Which path a device's received frames took: forwarded in XDP by a cache entry (`hits`), sent to
/// the workers over AF_XDP (`misses`, and `punted`: an entry whose actions XDP could not do exactly
/// for that frame), or dropped in XDP because an action failed (`failed`).
public struct XDPPathReport: Codable, Sendable, Equatable {
    public var hits: UInt64
    public var misses: UInt64
    public var punted: UInt64
    public var failed: UInt64
    /// Why the cache cannot send frames to this port now (its entries stay on the workers'
    /// path), e.g. a veth whose peer runs no NAPI; nil when it can. Only in per-port reports.
    public var redirectProblem: String?

    public init(hits: UInt64 = 0, misses: UInt64 = 0, punted: UInt64 = 0, failed: UInt64 = 0, redirectProblem: String? = nil) {
        self.hits = hits
        self.misses = misses
        self.punted = punted
        self.failed = failed
        self.redirectProblem = redirectProblem
    }
}

/// One device port's path counts.
public struct XDPCachePortEntry: Codable, Sendable, Equatable {
    public var bridge: String
    public var name: String
    public var path: XDPPathReport

    public init(bridge: String, name: String, path: XDPPathReport) {
        self.bridge = bridge
        self.name = name
        self.path = path
    }
}

/// One cache entry (a megaflow).
public struct XDPCacheFlowEntry: Codable, Sendable, Equatable {
    public var bridge: String
    /// As `ovs-appctl dpctl/dump-flows` writes a datapath flow's key: `in_port(2),eth(...),...`.
    public var match: String
    /// The same, field by field: `ipv4.src` → `10.1.1.0/255.255.255.0` (value/mask where the
    /// mask is partial; a field absent is not matched).
    public var key: [String: String]
    /// In ovs-ofctl flow syntax, OpenFlow port numbers (`drop` when empty).
    public var actions: String
    /// The rule the entry came from (nil: the table-miss drop).
    public var ruleID: UInt64?
    public var packets: UInt64
    public var bytes: UInt64
    /// Seconds since the last hit; nil: never hit.
    public var used: Double?
    /// Seconds since the entry was installed.
    public var age: Double

    public init(bridge: String, match: String, key: [String: String], actions: String, ruleID: UInt64? = nil,
                packets: UInt64 = 0, bytes: UInt64 = 0, used: Double? = nil, age: Double = 0) {
        self.bridge = bridge
        self.match = match
        self.key = key
        self.actions = actions
        self.ruleID = ruleID
        self.packets = packets
        self.bytes = bytes
        self.used = used
        self.age = age
    }
}

/// Result of `dump-xdp-cache`.
public struct XDPCacheReport: Codable, Sendable, Equatable {
    /// false: vswiftd runs without the cache (`--xdp-cache off`); nothing else is set.
    public var enabled: Bool
    /// The whole cache's (every bridge's) entries, bound, masks in use and their bound.
    public var entries: Int
    public var capacity: Int
    public var masks: Int
    public var maxMasks: Int
    public var installed: UInt64
    /// Installs refused, by reason; entries removed, by reason.
    public var refused: [String: UInt64]
    public var removed: [String: UInt64]
    /// Misses the workers could not hand over to the installer (their rings were full): not
    /// installs refused, and apart from `refused["full"]` (the cache full).
    public var handoverRingFull: UInt64
    /// Keys the installer could not send back for a worker's exact-match cache to forget (the
    /// worker's forget ring was full): those flows stay on the workers' path until their entries go.
    public var forgetOverflow: UInt64
    /// Summed over `ports`.
    public var totals: XDPPathReport
    public var ports: [XDPCachePortEntry]
    /// At most `capacity`.
    public var flows: [XDPCacheFlowEntry]
    /// More entries than `capacity` were handed over (never, unless the cache's owner is wrong).
    public var truncated: Bool

    public init(enabled: Bool, entries: Int = 0, capacity: Int = 0, masks: Int = 0, maxMasks: Int = 0, installed: UInt64 = 0,
                refused: [String: UInt64] = [:], removed: [String: UInt64] = [:], handoverRingFull: UInt64 = 0, forgetOverflow: UInt64 = 0,
                totals: XDPPathReport = XDPPathReport(),
                ports: [XDPCachePortEntry] = [], flows: [XDPCacheFlowEntry] = [], truncated: Bool = false) {
        self.enabled = enabled
        self.entries = entries
        self.capacity = capacity
        self.masks = masks
        self.maxMasks = maxMasks
        self.installed = installed
        self.refused = refused
        self.removed = removed
        self.handoverRingFull = handoverRingFull
        self.forgetOverflow = forgetOverflow
        self.totals = totals
        self.ports = ports
        self.flows = flows
        self.truncated = truncated
    }

    /// The synthesized decoding but for the counters added after the report's first release
    /// (`handoverRingFull`, `forgetOverflow`): absent, 0 (Reports.swift, *Across builds*).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        enabled = try c.decode(Bool.self, forKey: .enabled)
        entries = try c.decode(Int.self, forKey: .entries)
        capacity = try c.decode(Int.self, forKey: .capacity)
        masks = try c.decode(Int.self, forKey: .masks)
        maxMasks = try c.decode(Int.self, forKey: .maxMasks)
        installed = try c.decode(UInt64.self, forKey: .installed)
        refused = try c.decode([String: UInt64].self, forKey: .refused)
        removed = try c.decode([String: UInt64].self, forKey: .removed)
        handoverRingFull = try c.decodeIfPresent(UInt64.self, forKey: .handoverRingFull) ?? 0
        forgetOverflow = try c.decodeIfPresent(UInt64.self, forKey: .forgetOverflow) ?? 0
        totals = try c.decode(XDPPathReport.self, forKey: .totals)
        ports = try c.decode([XDPCachePortEntry].self, forKey: .ports)
        flows = try c.decode([XDPCacheFlowEntry].self, forKey: .flows)
        truncated = try c.decode(Bool.self, forKey: .truncated)
    }
}
