import VSwiftClassifier
import VSwiftPacket

/// The control side's record of one bridge's flow-cache entries (what is in the XDP maps), and
/// the answer to "which entries must go" after a change. Bounded: at most `capacity` entries.
///
/// Invariants (see DESIGN.md, "Megaflows and revalidation"):
/// - Every entry was computed from version `version` of the flow table, or revalidated against it
///   (recomputed from its masked key and found identical). An install from another version is
///   refused (`stale`). Hence all entries are what the current table computes, and two of them
///   never overlap (no frame can hit both): entries of one version share the megaflow of any
///   frame they both cover (`MegaflowPropertyTests`), so they are the same entry.
/// - (mask, masked key) appears once.
/// - One owner: the thread that installs also revalidates (no lock; the XDP maps are changed by
///   that thread too, in the order the methods' results give).
public struct MegaflowTable: Sendable {
    /// One recorded entry, with what the XDP side reports of its use.
    public struct Entry: Sendable, Equatable {
        public var flow: CachedFlow
        /// Monotonic nanoseconds (the caller's clock).
        public var installedAt: UInt64
        public var lastUsed: UInt64
        /// Totals as last reported by the XDP side's per-entry counters.
        public var packets: UInt64 = 0
        public var bytes: UInt64 = 0
    }

    public enum InstallResult: Sendable, Equatable {
        case installed
        /// Computed from another flow-table version: never installed (it may be wrong now).
        case stale
        /// The table is full: the flow stays on the workers' path.
        case full
        /// Already there (two workers missed on the same megaflow).
        case duplicate
    }

    public struct Statistics: Sendable, Equatable {
        public var installed = 0
        public var refusedStale = 0
        public var refusedFull = 0
        public var refusedDuplicate = 0
        public var removedByRevalidation = 0
        public var keptByRevalidation = 0
        public var removedByPort = 0
        public var removedIdle = 0
    }

    /// (mask, masked key): what identifies an entry in the XDP maps.
    struct Identity: Hashable {
        var mask: FlowKey
        var maskedKey: FlowKey
    }

    public let capacity: Int
    /// The flow-table version every entry belongs to.
    public private(set) var version: UInt64
    public private(set) var statistics = Statistics()
    /// The entries, dense (a removal moves the last one into the hole), and where each is: a
    /// revalidation walks the array and touches the index only for what it removes.
    private var slots: [Entry] = []
    private var index: [Identity: Int] = [:]

    public init(capacity: Int, version: UInt64) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.version = version
        slots.reserveCapacity(capacity)
        index.reserveCapacity(capacity)
    }

    public var count: Int { slots.count }
    public var all: [Entry] { slots }

    public func entry(mask: FlowKey, maskedKey: FlowKey) -> Entry? {
        index[Identity(mask: mask, maskedKey: maskedKey)].map { slots[$0] }
    }

    /// Records `flow` (the caller then writes it to the XDP maps), unless it is from another
    /// table version, already there, or the table is full.
    public mutating func install(_ flow: CachedFlow, now: UInt64) -> InstallResult {
        guard flow.version == version else {
            statistics.refusedStale += 1
            return .stale
        }
        let id = Identity(mask: flow.mask, maskedKey: flow.maskedKey)
        guard index[id] == nil else {
            statistics.refusedDuplicate += 1
            return .duplicate
        }
        guard slots.count < capacity else {
            statistics.refusedFull += 1
            return .full
        }
        index[id] = slots.count
        slots.append(Entry(flow: flow, installedAt: now, lastUsed: now))
        statistics.installed += 1
        return .installed
    }

    /// Folds the XDP side's counter totals for an entry in: a change of the packet count marks it
    /// used at `now`. Returns the packets and bytes since the last report (to add to the rule's
    /// and the ports' counters), or nil for an entry not recorded.
    public mutating func noteCounters(mask: FlowKey, maskedKey: FlowKey, packets: UInt64, bytes: UInt64,
                                      now: UInt64) -> (packets: UInt64, bytes: UInt64)? {
        guard let i = index[Identity(mask: mask, maskedKey: maskedKey)] else { return nil }
        let delta = (packets: packets &- slots[i].packets, bytes: bytes &- slots[i].bytes)
        if delta.packets != 0 { slots[i].lastUsed = now }
        slots[i].packets = packets
        slots[i].bytes = bytes
        return delta
    }

    /// After the flow table became `view.table` (already published to the workers): recomputes
    /// every entry from its masked key, as a fresh install would, keeps those whose result (mask,
    /// rule identity, actions) is unchanged — now of the new version, with the new rule index —
    /// and removes and returns the rest, which the caller deletes from the XDP maps before it
    /// reports the change done. From here on only installs of the new version are taken.
    public mutating func revalidate(_ view: FlowCacheView) -> [Entry] {
        version = view.table.version
        let removed = removeAll { entry in
            guard case .install(let fresh) = view.decide(entry.flow.maskedKey), fresh.sameResult(as: entry.flow) else {
                return true
            }
            entry.flow.rule = fresh.rule
            entry.flow.version = fresh.version
            return false
        }
        statistics.removedByRevalidation += removed.count
        statistics.keptByRevalidation += slots.count
        return removed
    }

    /// Removes and returns the entries arriving on `port` or naming it in an output: for a port
    /// added, removed, reconfigured (a LISP port's remote or next hop) or starting a capture.
    public mutating func removeTouching(port: UInt32) -> [Entry] {
        let removed = removeAll { $0.flow.inPort == port || $0.flow.outputPorts.contains(port) }
        statistics.removedByPort += removed.count
        return removed
    }

    /// Removes and returns the entries unused for `idle` nanoseconds at `now`.
    public mutating func expireIdle(now: UInt64, idle: UInt64) -> [Entry] {
        let removed = removeAll { now &- $0.lastUsed >= idle }
        statistics.removedIdle += removed.count
        return removed
    }

    /// Removes and returns every entry (the cache turned off, the bridge deleted).
    public mutating func removeAll() -> [Entry] {
        defer {
            slots.removeAll(keepingCapacity: true)
            index.removeAll(keepingCapacity: true)
        }
        return slots
    }

    /// Removes and returns the entries `condition` says, which may also update the ones it keeps.
    /// One pass; a removed entry's place takes the last entry (checked next), so the index
    /// changes only for entries that went or moved, not for every entry after the first removal.
    private mutating func removeAll(where condition: (inout Entry) -> Bool) -> [Entry] {
        var removed: [Entry] = []
        var i = 0
        while i < slots.count {
            guard condition(&slots[i]) else {
                i += 1
                continue
            }
            removed.append(slots[i])
            index[Identity(mask: slots[i].flow.mask, maskedKey: slots[i].flow.maskedKey)] = nil
            let last = slots.removeLast()
            if i < slots.count {
                slots[i] = last
                index[Identity(mask: last.flow.mask, maskedKey: last.flow.maskedKey)] = i
            }
        }
        return removed
    }
}
