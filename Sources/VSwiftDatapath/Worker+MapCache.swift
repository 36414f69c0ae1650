import CSupport
import CXDP
import VSwiftMapCache
import VSwiftPacket

/// `remote_ip=map` on the packet path: the inner destination's RLOC from the LISP map-cache
/// (RFC 9301 §5.4, RFC 9300 §12), then exactly the `remote_ip=flow` path — the next-hop table
/// keyed by remote, a remote not known yet asked of the resolver.
///
/// Per packet: the inner addresses (the Ethernet/VLAN header parse encapsulation does anyway), one
/// set of the worker's resolutions (`WorkerMapCache`, one line), and for a destination whose entry
/// has a lone RLOC the cached next-hop index. The map-cache itself is searched only when a
/// destination is not in the worker's resolutions for the current epoch; an entry with several
/// RLOCs picks one per packet by the inner flow's hash (the entry's slot table, one more line).
/// Nothing allocates, locks or retains.
extension Worker {
    /// `mapCacheNextHop`'s answer when it has dropped (and counted) the frame.
    static let mapCacheDropped = -2

    /// The hit path, inlined into `sendThroughTunnel`: the next-hop index cached for `frame` when
    /// its ethertype is IPv4 (untagged) and its destination's resolution for `port` in the
    /// current epoch is way 0 of its set and names a lone RLOC whose next hop is claimed; -1
    /// otherwise (then `mapCacheNextHop` decides, way 1 included: a set holds two destinations
    /// only for the few that share one). The frame is read as it is now (after any header
    /// action); its IP version is left to `LISP.encapsulate`, which refuses another as not IP,
    /// as `mapCacheNextHop` would (`ipv4EthertypeDestinationOnWire`).
    ///
    /// The set is `mapFrameSet`, the one `WorkerMapCache.prefetch` found for the frame's burst
    /// slot before the burst was classified (and started loading), which the act loop hands
    /// over before acting on the frame — not one computed from the destination read here: so
    /// the set's load does not wait for the frame's bytes and a multiply — a chain of dependent
    /// loads each packet paid in full (measured: map ÷ static 0.88 → 0.91–0.96 by time,
    /// `pipeline --interleave`). Only the key compare waits for the destination. The hint may
    /// name another set (a header action changed the destination, or the frame is not the burst
    /// loop's, `mapFrameSet` stale): a resolution is kept only in its destination's own set and
    /// an IPv4 key names the destination, so the key then does not match and `mapCacheNextHop`
    /// looks in the right set — slower, never wrong. One load of the port's key tag, one compared
    /// word (an IPv4 key names epoch, port and destination, `MapResolution`); no call, nothing
    /// written. The epoch's 20 s renewal is checked once per poll round, and by `mapCacheNextHop`.
    @inline(__always)
    func cachedMapCacheHop(port: PortSlot, frame: UnsafeRawPointer, length: Int) -> Int {
        guard let wire = LISP.ipv4EthertypeDestinationOnWire(frame, length: length) else { return -1 }
        let set = mapFrameSet
        guard set.pointee.key == WorkerMapCache.key(port: port, wireIPv4: wire, tags: mapKeyTags) else { return -1 }
        return Int(set.pointee.hop)
    }

    /// Starts loading the resolution sets of the inner destinations of burst slots
    /// `first..<end` (`WorkerMapCache.prefetch`), before the burst is classified: they arrive
    /// while it is. One tight loop for the burst (in the extraction loop the same work cost more:
    /// its registers are taken). Out of line: one call per burst, and `classifyAndApply` stays
    /// small enough for its per-frame `act` to be inlined.
    @inline(never)
    func prefetchMapResolutions(first: Int, end: Int) {
        mapCache.prefetch(burst: burst.addresses, lengths: burst.lengths, in: UnsafeRawPointer(base), first: first, end: end)
    }

    /// Starts loading the next hops the frames of burst slots `first..<end` will most likely go
    /// to (their sets' way 0, `WorkerMapCache.hintedHop`), once the burst is classified (by then
    /// the sets `prefetchMapResolutions` asked for have arrived): with traffic to many RLOCs
    /// their next hops do not all stay in L1, and the hit path reads one right after the lookup.
    /// Only then (`WorkerMapCache.prefetchesNextHops`), only for a table of many rules (a small
    /// table's act loop prefetches each frame's next hop itself, `prefetchMapCacheAhead`), and
    /// not for a burst of a table whose rules look at no field (nothing is classified between the
    /// two loops: the sets are still on their way). One tight loop for the burst; out of line, as
    /// `prefetchMapResolutions`.
    @inline(never)
    func prefetchMapNextHops(first: Int, end: Int) {
        let cache = mapCache
        let hops = nextHopEntries
        for slot in first..<end {
            let hop = cache.hintedHop(slot: slot)
            if hop >= 0 { vs_prefetch(hops + Int(hop)) }
        }
    }

    /// How many frames ahead of the one acted on its resolution set is prefetched again, and how
    /// many ahead the next hop that set's way 0 names is prefetched (by then its set has arrived).
    static let mapSetDistance = 3
    static let mapHopDistance = 1

    /// In the act loop of a small table (`actKeepingMapCacheAhead`), before acting on burst slot
    /// `slot`: prefetches slot + `mapSetDistance`'s set again and slot + `mapHopDistance`'s next
    /// hop, and hands `slot`'s set to the hit path (`mapFrameSet`). Why again: the burst's first
    /// prefetch (`prefetchMapResolutions`) brought every set in, but acting on a frame moves ~7
    /// lines through L1 (frame, headroom, rings), so the later frames' sets and next hops were
    /// evicted again before they were acted on, and set → next hop → encapsulation is one chain.
    /// 13 instructions, nothing tested: the hints are byte offsets, the slots ahead are read
    /// past the burst's end (`WorkerMapCache.burstSetsCapacity`: stale hints there), and a hop of
    /// -1 (or a stale index a newer, smaller table no longer has) is prefetched as it is: a
    /// prefetch never faults. Measured (DESIGN.md, "LISP map-cache"): static ÷ map-100k
    /// 0.91 → 0.96 with the prefetches, → 0.977 made lean at distances 3 and 1.
    @inline(__always)
    func prefetchMapCacheAhead(of slot: Int) {
        // Slots past the burst's end hold stale hints (`burstSetsCapacity`): sets all the same.
        let sets = mapBurstSets
        let table = mapResolutions
        vs_prefetch(WorkerMapCache.set(offset: sets[slot &+ Self.mapSetDistance], in: table))
        // -1 (no hop) prefetches the line before the table: harmless.
        let hop = WorkerMapCache.set(offset: sets[slot &+ Self.mapHopDistance], in: table).pointee.hop
        vs_prefetch(nextHopEntries + Int(truncatingIfNeeded: hop))
        mapFrameSet = WorkerMapCache.set(offset: sets[slot], in: table)
    }

    /// Everything `cachedMapCacheHop` leaves (out of line, so that the hit path spills nothing):
    /// the next-hop index for a frame output to `remote_ip=map` port `port`, -1 when its RLOC's
    /// next hop is not known yet (counted no_neighbour by the caller, as remote_ip=flow does), or
    /// `mapCacheDropped` when the frame was dropped here: not IP (non_ip), no entry or one that
    /// says ask again (map_miss, and the miss queued for a Map-Request), a negative entry's drop
    /// (map_drop) or natively-forward (map_native).
    @inline(never)
    func mapCacheNextHop(port: PortSlot, state: UnsafeMutablePointer<TunnelPortState>,
                         counters: UnsafeMutablePointer<TunnelCounterBlock>, address: UInt64, length: UInt32) -> Int {
        let cache = mapCache
        guard let inner = LISP.innerPacket(base + Int(address), length: Int(length)) else {
            vs_add_relaxed_u64(&counters.pointee.nonIP, 1)
            pool.release(address)
            return Self.mapCacheDropped
        }
        let set = cache.set(inner.destination)
        cache.renewEpochIfDue(now: now)
        let key = cache.key(port: port, destination: inner.destination)
        let hop: Int32
        if set.pointee.holds(key, inner.destination) {
            hop = set.pointee.hop
        } else if (set + 1).pointee.holds(key, inner.destination) {
            hop = (set + 1).pointee.hop
        } else {
            hop = resolveIntoSet(set, key: key, port: port, state: state, inner: inner)
        }
        if hop >= 0 { return Int(hop) }
        return mapCacheDecide(port: port, state: state, counters: counters, address: address, length: length, inner: inner,
                              set: set, key: key)
    }

    /// A destination not in the worker's resolutions: searches the snapshot, marks the entry used
    /// (the control side refreshes entries in use before their TTL ends), claims the lone RLOC's
    /// next hop, and keeps the result in way 0 of its set (way 0's previous one moves to way 1).
    @inline(never)
    func resolveIntoSet(_ set: UnsafeMutablePointer<MapResolution>, key: UInt64, port: PortSlot,
                        state: UnsafeMutablePointer<TunnelPortState>, inner: LISP.InnerPacket) -> Int32 {
        var resolution = MapResolution(key: key, destination: inner.destination, entry: -1, hop: -1)
        if let snapshot = mapCache.snapshot {
            snapshot._withUnsafeGuaranteedRef { snapshot in
                let entry = snapshot.lookup(instanceID: state.pointee.key, destination: inner.destination)
                resolution.entry = entry
                guard entry >= 0 else { return }
                // A trace marks nothing: it must leave the switch as it found it.
                if traceHandoffs == nil { snapshot.markUsed(entry) }
                if snapshot.action(of: entry) == .encapsulate && snapshot.hasSingleLocator(entry) {
                    let rloc = snapshot.locator(of: entry, flowHash: 0)
                    resolution.hop = Int32(claimNextHop(rloc, state: state))
                    if resolution.hop >= 0 && mapCache.traceOutcomes != nil {
                        recordMapCacheOutcome(port: port, instanceID: state.pointee.key, destination: inner.destination,
                                              entry: entry, action: .encapsulate, rloc: rloc)
                    }
                }
            }
        }
        // Way 0's resolution, if of this epoch, moves to way 1 (the older one there goes).
        if set.pointee.key & WorkerMapCache.epochMask == mapCache.epochKey { (set + 1).pointee = set.pointee }
        set.pointee = resolution
        return resolution.hop
    }

    /// Everything but a cached lone RLOC's next hop: several RLOCs (chosen by the inner flow's
    /// hash), a next hop still to claim, a miss or a negative entry.
    @inline(never)
    func mapCacheDecide(port: PortSlot, state: UnsafeMutablePointer<TunnelPortState>,
                        counters: UnsafeMutablePointer<TunnelCounterBlock>, address: UInt64, length: UInt32,
                        inner: LISP.InnerPacket, set: UnsafeMutablePointer<MapResolution>, key: UInt64) -> Int {
        let resolution = set.pointee.holds(key, inner.destination) ? set : set + 1
        let entry = resolution.pointee.entry
        var action = MapCacheAction.miss
        var rloc = IPAddress()
        var hop = -1
        if entry >= 0, let snapshot = mapCache.snapshot {
            snapshot._withUnsafeGuaranteedRef { snapshot in
                action = snapshot.action(of: entry)
                guard action == .encapsulate else { return }
                let hash = LISP.innerFlowHash(base + Int(address), length: Int(length), inner)
                rloc = snapshot.locator(of: entry, flowHash: hash)
                hop = claimNextHop(rloc, state: state)
                // A lone RLOC whose next hop is now claimed: later packets take the fast way.
                if hop >= 0 && snapshot.hasSingleLocator(entry) { resolution.pointee.hop = Int32(hop) }
            }
        }
        if mapCache.traceOutcomes != nil {
            recordMapCacheOutcome(port: port, instanceID: state.pointee.key, destination: inner.destination, entry: entry,
                                  action: action, rloc: rloc)
        }
        switch action {
        case .encapsulate:
            return hop
        case .miss, .noUsableLocator, .sendMapRequest:
            vs_add_relaxed_u64(&counters.pointee.mapMiss, 1)
            // The inner source is a Map-Request's source EID (RFC 9301 §5.3).
            if !mapCache.misses.push(MapCacheMiss(instanceID: state.pointee.key, destination: inner.destination, source: inner.source)) {
                vs_add_relaxed_u64(&counters.pointee.mapMissUnqueued, 1)
            }
        case .nativelyForward:
            vs_add_relaxed_u64(&counters.pointee.mapNative, 1)
        case .noAction, .drop, .dropPolicyDenied, .dropAuthenticationFailure:
            vs_add_relaxed_u64(&counters.pointee.mapDrop, 1)
        }
        pool.release(address)
        return Self.mapCacheDropped
    }

    /// The next-hop index of `remote` for this port (local_ip, UDP port), claiming an empty slot
    /// and asking the resolver once when it is new, as remote_ip=flow does; -1 when there is no
    /// slot or the request ring is full (a later packet asks again).
    @inline(__always)
    func claimNextHop(_ remote: IPAddress, state: UnsafeMutablePointer<TunnelPortState>) -> Int {
        let local = state.pointee.hasLocal ? state.pointee.local : IPAddress()
        let udpPort = state.pointee.udpPort
        let (index, found) = nextHops.find(remote, local: local, udpPort: udpPort)
        if found { return index }
        guard index >= 0, tunnelRequests.push(TunnelTarget(remote: remote, local: local, udpPort: udpPort)) else { return -1 }
        nextHopEntries[index] = TunnelNextHop(remote: remote, local: local, udpPort: udpPort, status: .noNeighbour)
        tunnelResolverWake()
        return index
    }

    /// Does the current snapshot name `source` as an RLOC of an entry in instance `instanceID`?
    /// (A `remote_ip=map` port's decapsulation check.)
    @inline(__always)
    func mapCacheTrusts(instanceID: UInt32, source: IPAddress) -> Bool {
        guard let rlocs = mapCache.rlocs else { return false }
        return rlocs._withUnsafeGuaranteedRef { $0.contains(instanceID: instanceID, address: source) }
    }

    /// First contact: a site we have not talked to sends to one of our EIDs, so its RLOC is in
    /// no map-cache entry yet and a `remote_ip=map` port refuses it (unknown_rloc). Rather than
    /// trusting the outer source (gleaning, which RFC 9300 keeps to trusted, closed networks), the
    /// worker asks the mapping system about the inner *source* EID, as if it had a packet for it:
    /// once the reply names that RLOC, the next packets from it are accepted — and our answers to
    /// that site have a mapping to go out with. The control plane rate-limits these per prefix
    /// like any miss (MapRequestLimiter), so forged sources on the underlay cost it bounded work.
    @inline(never)
    func askMappingOfSource(_ frame: UnsafeRawPointer, instanceID: UInt32,
                            counters: UnsafeMutablePointer<TunnelCounterBlock>) {
        guard traceHandoffs == nil, let inner = LISP.decapsulatedAddresses(frame, outer: outer.pointee) else { return }
        if !mapCache.misses.push(MapCacheMiss(instanceID: instanceID, destination: inner.source, source: inner.destination)) {
            vs_add_relaxed_u64(&counters.pointee.mapMissUnqueued, 1)
        }
    }

    /// Trace-mode worker only: keeps what a lookup found for the trace's report.
    @inline(never)
    func recordMapCacheOutcome(port: PortSlot, instanceID: UInt32, destination: IPAddress, entry: Int32,
                               action: MapCacheAction, rloc: IPAddress) {
        guard let room = mapCache.traceOutcomes, room.pointee.count < MapCacheTraceRoom.capacity else { return }
        room.pointee.items[room.pointee.count] = MapCacheTraceRoom.Item(
            port: port, instanceID: instanceID, destination: destination, entry: entry, action: action, rloc: rloc)
        room.pointee.count += 1
    }

    // MARK: Reconfiguration (control thread, worker parked)

    /// Installs a new map-cache version (or none); every resolution made from the old one is
    /// forgotten.
    func setMapCache(_ snapshot: MapCacheSnapshot?, rlocs: MapCacheRLOCSet?) {
        mapCache.snapshot = snapshot.map { Unmanaged.passUnretained($0) }
        mapCache.rlocs = rlocs.map { Unmanaged.passUnretained($0) }
        mapCache.newEpoch(now: now)
        updateMapCachePrefetching()
    }

    /// What bursts prefetch for `remote_ip=map` ports: their resolution sets when the worker has
    /// such a port, and their next hops too when those can be more than stay in L1 (the
    /// snapshot's RLOCs in each such port's instance, `WorkerMapCache.usesManyNextHops`). Set
    /// with tunnel ports and snapshots (worker parked).
    func updateMapCachePrefetching() {
        var ports = 0
        var nextHops = 0
        let rlocs = mapCache.rlocs?.takeUnretainedValue()
        for i in 0..<tunnelPortCount {
            let state = tunnelPortStates + tunnelPorts[i].index
            guard state.pointee.remoteIsMap else { continue }
            ports += 1
            nextHops += rlocs?.count(instanceID: state.pointee.key) ?? 0
        }
        mapCache.hasPorts = ports > 0
        mapCache.prefetchesNextHops = WorkerMapCache.usesManyNextHops(nextHops)
    }
}

// MARK: For the pipeline harness (VSwiftTesting), which plays the datapath

extension Worker {
    /// Installs `snapshot` with its RLOC set, which it returns for the caller to keep alive.
    package func installMapCache(_ snapshot: MapCacheSnapshot) -> AnyObject {
        let rlocs = MapCacheRLOCSet(snapshot)
        setMapCache(snapshot, rlocs: rlocs)
        return rlocs
    }

    /// Moves the start of the resolutions' epoch `seconds` back (tests: the 20 s re-marking).
    package func ageMapCacheResolutions(by seconds: UInt64) {
        mapCache.epochStarted &-= seconds
    }

    /// Moves up to `limit` of this worker's queued misses into `misses`.
    package func drainMapCacheMisses(into misses: inout [MapCacheMiss], limit: Int) -> Int {
        mapCache.misses.drain(into: &misses, limit: limit)
    }
}
