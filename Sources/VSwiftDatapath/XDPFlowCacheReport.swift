import VSwiftClassifier
import VSwiftPacket

/// What `vswiftctl dump-xdp-cache`, `dump-ports` (the per-port path line) and `dump-workers` (the
/// XDP totals) show of the XDP flow cache: a pure function of plain values, so the report is
/// tested without the kernel, and the owner of the cache (the installer thread) only has to hand
/// over what it holds — each bridge's `MegaflowTable` entries with their counters, the programs'
/// per-device counters and the cache's statistics (DESIGN.md, "XDP flow cache: the report seam").
///
/// Port numbers are OpenFlow port numbers (FlowKey's `in_port` and the actions' outputs already
/// are); times are CLOCK_MONOTONIC nanoseconds, turned into seconds against `Input.now`.
public struct XDPFlowCacheReport: Sendable, Equatable {
    /// What a device's XDP program did with the frames it received (`enum vswift_fc_stat`).
    public struct PathCounters: Sendable, Equatable {
        /// Forwarded (or dropped) in XDP by a cache entry: never seen by a worker.
        public var hits: UInt64
        /// No entry: sent to the workers over AF_XDP.
        public var misses: UInt64
        /// An entry whose actions the program could not do exactly for this frame: sent to the
        /// workers untouched.
        public var punted: UInt64
        /// An entry's action failed in XDP (no headroom to grow the frame): dropped.
        public var failed: UInt64

        public init(hits: UInt64 = 0, misses: UInt64 = 0, punted: UInt64 = 0, failed: UInt64 = 0) {
            (self.hits, self.misses, self.punted, self.failed) = (hits, misses, punted, failed)
        }

        static func + (a: PathCounters, b: PathCounters) -> PathCounters {
            PathCounters(hits: a.hits &+ b.hits, misses: a.misses &+ b.misses,
                         punted: a.punted &+ b.punted, failed: a.failed &+ b.failed)
        }
    }

    /// The cache as a whole (all bridges: the XDP maps are shared by every device's program).
    public struct Statistics: Sendable, Equatable {
        public var entries: Int
        public var capacity: Int
        public var masks: Int
        public var maxMasks: Int
        /// Entries installed since start.
        public var installed: UInt64
        /// Installs refused, by reason (`full`: the cache, `stale`, `duplicate`, or a reason a flow
        /// is not cacheable), as the installer names them; printed in name order. A miss of a
        /// table version newer than the installer's waits for it instead (not a refusal); it is
        /// refused `early_dropped` when a still newer version replaced that one first, or
        /// `early_overflow` when too many waited.
        public var refused: [String: UInt64]
        /// Entries removed, by reason (`revalidation`, `port`, `idle`, ...).
        public var removed: [String: UInt64]
        /// Misses the workers could not hand over because their rings to the installer were full
        /// (apart from `refused["full"]`: the installer never saw these).
        public var handoverRingFull: UInt64
        /// Keys the installer could not send back for a worker to forget (its forget ring was
        /// full): hand-overs it lost or refused for a reason that may not recur, whose flows
        /// stay on the workers' path until their exact-match entries go.
        public var forgetOverflow: UInt64

        public init(entries: Int = 0, capacity: Int = 0, masks: Int = 0, maxMasks: Int = XDPFlowCache.maxMasks,
                    installed: UInt64 = 0, refused: [String: UInt64] = [:], removed: [String: UInt64] = [:],
                    handoverRingFull: UInt64 = 0, forgetOverflow: UInt64 = 0) {
            self.entries = entries
            self.capacity = capacity
            self.masks = masks
            self.maxMasks = maxMasks
            self.installed = installed
            self.refused = refused
            self.removed = removed
            self.handoverRingFull = handoverRingFull
            self.forgetOverflow = forgetOverflow
        }
    }

    /// The builder's input: what the cache's owner holds.
    public struct Input: Sendable {
        public struct Entry: Sendable {
            public var bridge: String
            public var mask: FlowKey
            public var maskedKey: FlowKey
            /// The rule's actions (empty: drop), in OpenFlow port numbers.
            public var actions: [FlowAction]
            /// The rule's identity (nil: the table-miss drop).
            public var ruleID: UInt64?
            public var packets: UInt64
            public var bytes: UInt64
            public var installedAt: UInt64
            /// 0: never hit.
            public var lastUsed: UInt64

            public init(bridge: String, mask: FlowKey, maskedKey: FlowKey, actions: [FlowAction], ruleID: UInt64?,
                        packets: UInt64 = 0, bytes: UInt64 = 0, installedAt: UInt64 = 0, lastUsed: UInt64 = 0) {
                self.bridge = bridge
                self.mask = mask
                self.maskedKey = maskedKey
                self.actions = actions
                self.ruleID = ruleID
                self.packets = packets
                self.bytes = bytes
                self.installedAt = installedAt
                self.lastUsed = lastUsed
            }
        }

        public struct Port: Sendable {
            public var bridge: String
            public var name: String
            public var counters: PathCounters
            /// Why the cache cannot output to this port now (nil: it can).
            public var redirectProblem: String?

            public init(bridge: String, name: String, counters: PathCounters, redirectProblem: String? = nil) {
                self.bridge = bridge
                self.name = name
                self.counters = counters
                self.redirectProblem = redirectProblem
            }
        }

        public var entries: [Entry]
        /// Every device port whose XDP program consults the cache.
        public var ports: [Port]
        public var statistics: Statistics
        /// CLOCK_MONOTONIC nanoseconds when the input was read.
        public var now: UInt64

        public init(entries: [Entry] = [], ports: [Port] = [], statistics: Statistics = Statistics(), now: UInt64 = 0) {
            self.entries = entries
            self.ports = ports
            self.statistics = statistics
            self.now = now
        }
    }

    /// One entry as reported.
    public struct Flow: Sendable, Equatable {
        public var bridge: String
        /// The megaflow as `ovs-appctl dpctl/dump-flows` prints one, e.g.
        /// `in_port(2),eth(src=…,dst=…),eth_type(0x0800),ipv4(src=10.1.1.0/255.255.255.0,frag=no)`.
        public var match: String
        /// The same, field by field (`ipv4.src` → `10.1.1.0/255.255.255.0`), in `match`'s order.
        public var fields: [(name: String, value: String)]
        public var mask: FlowKey
        public var maskedKey: FlowKey
        public var actions: [FlowAction]
        public var ruleID: UInt64?
        public var packets: UInt64
        public var bytes: UInt64
        /// Seconds since the last hit; nil: never hit.
        public var used: Double?
        /// Seconds since it was installed.
        public var age: Double

        public static func == (a: Flow, b: Flow) -> Bool {
            a.bridge == b.bridge && a.match == b.match && a.fields.map(\.name) == b.fields.map(\.name)
                && a.fields.map(\.value) == b.fields.map(\.value) && a.mask == b.mask && a.maskedKey == b.maskedKey
                && a.actions == b.actions && a.ruleID == b.ruleID && a.packets == b.packets && a.bytes == b.bytes
                && a.used == b.used && a.age == b.age
        }
    }

    public struct Port: Sendable, Equatable {
        public var bridge: String
        public var name: String
        public var counters: PathCounters
        /// Why no entry outputs to this port now (XDP_REDIRECT would be dropped); nil: none.
        public var redirectProblem: String? = nil
    }

    /// Off: no cache, nothing else in the report.
    public var enabled: Bool
    public var statistics: Statistics
    /// The ports asked for (all, or one bridge's), by bridge then name.
    public var ports: [Port]
    /// Summed over `ports`.
    public var totals: PathCounters
    /// The entries asked for, by bridge, then input port, then match; at most
    /// `statistics.capacity` (the cache cannot hold more; a larger input is cut, `truncated`).
    public var flows: [Flow]
    public var truncated: Bool

    /// The cache is off (`vswiftd --xdp-cache off`).
    public static let off = XDPFlowCacheReport(
        enabled: false, statistics: Statistics(), ports: [], totals: PathCounters(), flows: [], truncated: false)

    init(enabled: Bool, statistics: Statistics, ports: [Port], totals: PathCounters, flows: [Flow], truncated: Bool) {
        self.enabled = enabled
        self.statistics = statistics
        self.ports = ports
        self.totals = totals
        self.flows = flows
        self.truncated = truncated
    }

    /// The report of a cache that is on, for one bridge or all; `flows: false` leaves the entries
    /// out (dump-ports and dump-workers only want the counters).
    public init(_ input: Input, bridge: String? = nil, flows includeFlows: Bool = true) {
        enabled = true
        statistics = input.statistics
        ports = input.ports.filter { bridge == nil || $0.bridge == bridge }
            .map { Port(bridge: $0.bridge, name: $0.name, counters: $0.counters, redirectProblem: $0.redirectProblem) }
            .sorted { ($0.bridge, $0.name) < ($1.bridge, $1.name) }
        totals = ports.reduce(PathCounters()) { $0 + $1.counters }
        guard includeFlows else {
            flows = []
            truncated = false
            return
        }
        let limit = max(0, input.statistics.capacity)
        var selected = input.entries.filter { bridge == nil || $0.bridge == bridge }
        truncated = selected.count > limit
        if truncated { selected.removeLast(selected.count - limit) }
        let now = input.now
        flows = selected.map { entry in
            let fields = DatapathFlowText.fields(mask: entry.mask, key: entry.maskedKey)
            return Flow(
                bridge: entry.bridge, match: DatapathFlowText.match(fields), fields: fields.flatMap(\.flat),
                mask: entry.mask, maskedKey: entry.maskedKey, actions: entry.actions, ruleID: entry.ruleID,
                packets: entry.packets, bytes: entry.bytes,
                used: entry.lastUsed == 0 ? nil : Double(now &- min(now, entry.lastUsed)) / 1e9,
                age: Double(now &- min(now, entry.installedAt)) / 1e9)
        }
        .sorted { a, b in
            let (pa, pb) = (a.maskedKey.get(.inPort), b.maskedKey.get(.inPort))
            return (a.bridge, pa, a.match) < (b.bridge, pb, b.match)
        }
    }
}
