import VSwiftPacket

/// Hand-overs computed from a flow-table version the installer does not have yet (DESIGN.md,
/// "Megaflows and revalidation", *Early hand-overs*): the control thread publishes a new table to
/// the workers before it calls the installer's `refresh`, so a worker may classify with it and
/// hand a miss over first. Refusing such a key would lose the flow: the worker's exact-match cache
/// holds it under the new version, which stays alive, so it never misses again. The keys wait
/// here, per bridge, until `refresh` brings their version; none is installed from them directly
/// (the installer recomputes every entry from its current table), so the invariant "every entry is
/// what the current version computes" does not depend on this record.
///
/// Order of versions: `ClassifierTable.version` comes from one process-wide counter taken when a
/// table is built, so a greater version is a table built later; a bridge's tables are published
/// (each followed by `refresh`, under the datapath's lock) in the order they were built, since
/// the control plane (`SwitchService`, an actor) makes one change at a time, so "newer" is
/// "greater". A derived table that keeps its classifier (a port's removal) keeps the version.
///
/// Bounded: at most `bound` keys per bridge (the oldest goes, counted as overflow); a key is
/// dropped (counted) when a still newer version replaces the one it waited for or its bridge goes
/// — the workers' exact-match entries of the replaced version die with it, so those flows miss
/// and ask again. A key pushed out or replaced comes back out with the worker that handed it
/// over: the installer tells that worker to forget it (`XDPFlowCacheInstaller+Forget.swift`), since
/// a flow pushed out by the bound would otherwise stay in its exact-match cache, off XDP.
struct XDPFlowCacheEarlyKeys: Sendable {
    struct Held: Sendable, Equatable {
        var key: FlowKey
        var version: UInt64
        /// The worker that handed it over (its index in the installer's rings).
        var worker: Int = 0
    }

    let bound: Int
    private(set) var held: [Int32: [Held]] = [:]

    init(bound: Int) {
        precondition(bound > 0)
        self.bound = bound
    }

    /// How many keys wait, over every bridge.
    var count: Int { held.values.reduce(0) { $0 + $1.count } }

    enum HoldResult: Equatable {
        case held
        /// The same key of the same version from the same worker already waits (two misses of one flow).
        case duplicate
        /// Held; the bridge's oldest waiting key (this one) went to make room.
        case heldDroppingOldest(Held)
    }

    /// Keeps `key`, classified with table `version` (newer than the bridge's current) by `worker`,
    /// for `bridge`.
    mutating func hold(_ key: FlowKey, version: UInt64, bridge: Int32, worker: Int = 0) -> HoldResult {
        let entry = Held(key: key, version: version, worker: worker)
        var keys = held.removeValue(forKey: bridge) ?? []
        defer { held[bridge] = keys }
        guard !keys.contains(entry) else { return .duplicate }
        var result = HoldResult.held
        if keys.count >= bound { result = .heldDroppingOldest(keys.removeFirst()) }
        keys.append(entry)
        return result
    }

    /// Version `version` became the bridge's current: its keys come out, in arrival order, to be
    /// installed; keys of an older version come out too, dropped; keys of a still newer version
    /// keep waiting.
    mutating func arrived(version: UInt64, bridge: Int32) -> (ready: [Held], dropped: [Held]) {
        guard let keys = held.removeValue(forKey: bridge) else { return ([], []) }
        var ready: [Held] = []
        var dropped: [Held] = []
        var later: [Held] = []
        for entry in keys {
            if entry.version == version {
                ready.append(entry)
            } else if entry.version < version {
                dropped.append(entry)
            } else {
                later.append(entry)
            }
        }
        if !later.isEmpty { held[bridge] = later }
        return (ready, dropped)
    }

    /// The bridge went (no table, or shut down): every key it held is dropped; returns how many.
    mutating func removeBridge(_ bridge: Int32) -> Int {
        held.removeValue(forKey: bridge)?.count ?? 0
    }
}
