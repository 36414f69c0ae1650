import Synchronization
import VSwiftMapCache
import VSwiftPacket

/// The map-cache version the workers read, as the datapath keeps it alive: the snapshot and the
/// set of its RLOCs (for decapsulation's trust), replaced whole by each publication. The previous
/// version is released only after the park handshake that moved every worker to the new one (the
/// grace period, as for compiled flow tables).
final class MapCachePublication: Sendable {
    /// Most RLOCs of one snapshot given to the tunnel resolver to resolve ahead of traffic (their
    /// routes are also where LISP from them is accepted); others are resolved on a worker's
    /// request, when a packet goes to them, as remote_ip=flow remotes are.
    static let maxResolvedRLOCs = 1024

    struct Current {
        var snapshot: MapCacheSnapshot?
        var rlocs: MapCacheRLOCSet?
        var rlocsToResolve: [IPAddress] = []
    }
    private let current = Mutex(Current())
    /// The local RLOCs registered for our EIDs (at most `RegisteredRLOCEndpoints.maxEndpoints`):
    /// each is an underlay endpoint of map ports on the device that holds it.
    private let registered = Mutex([IPAddress]())

    var registeredRLOCs: [IPAddress] { registered.withLock { $0 } }

    /// True when `addresses` differ from the current ones.
    func setRegisteredRLOCs(_ addresses: [IPAddress]) -> Bool {
        var bounded: [IPAddress] = []
        for address in addresses where bounded.count < RegisteredRLOCEndpoints.maxEndpoints && !bounded.contains(address) {
            bounded.append(address)
        }
        return registered.withLock { current in
            guard current != bounded else { return false }
            current = bounded
            return true
        }
    }
    /// One drainer at a time: each worker's miss ring has a single consumer.
    private let drain = Mutex(())

    /// The published RLOCs the resolver resolves (at most `maxResolvedRLOCs`).
    var rlocsToResolve: [IPAddress] { current.withLock { $0.rlocsToResolve } }

    /// Entries of the published snapshot; nil before the first publication.
    var entryCount: Int? { current.withLock { $0.snapshot?.count } }

    /// Replaces the published version, returning the previous one for the caller to drop after the
    /// handshake (dropping it here would be the same: the workers moved before this is called).
    func replace(_ next: Current) -> Current {
        current.withLock { c in
            let previous = c
            c = next
            return previous
        }
    }

    func withDrainLock<T>(_ body: () -> T) -> T { drain.withLock { _ in body() } }
}

extension Datapath: MapCachePublishing {
    /// Hands `snapshot` to every worker: the RLOC set is built first (off the packet path), then
    /// the workers are parked, given the new version (their resolutions forgotten), and released;
    /// the previous version is released after. The tunnel resolver is woken to resolve the new
    /// RLOCs (at most `MapCachePublication.maxResolvedRLOCs`).
    public func publishMapCache(_ snapshot: MapCacheSnapshot) {
        let rlocs = MapCacheRLOCSet(snapshot)
        var toResolve: [IPAddress] = []
        var seen: Set<IPAddress> = []
        snapshot.forEachLocator { _, address in
            if toResolve.count < MapCachePublication.maxResolvedRLOCs, seen.insert(address).inserted { toResolve.append(address) }
        }
        let next = MapCachePublication.Current(snapshot: snapshot, rlocs: rlocs, rlocsToResolve: toResolve)
        var previous: MapCachePublication.Current?
        _ = withWorkersParkedForMapCache { workers in
            for worker in workers { worker.setMapCache(snapshot, rlocs: rlocs) }
            // Under the datapath's lock: the resolver reads the RLOCs under it too.
            previous = mapCachePublication.replace(next)
        }
        // The workers have moved past the previous version: it is freed as `previous` goes.
        _ = previous
    }

    public func setRegisteredRLOCs(_ addresses: [IPAddress]) {
        guard mapCachePublication.setRegisteredRLOCs(addresses) else { return }
        wakeTunnelResolver()
    }

    /// Moves up to `limit` misses from the workers' queues into `misses` (worker 0's first).
    public func drainMapCacheMisses(into misses: inout [MapCacheMiss], limit: Int) -> Int {
        mapCachePublication.withDrainLock {
            var moved = 0
            for worker in workersForMapCache where moved < limit {
                moved += worker.mapCache.misses.drain(into: &misses, limit: limit - moved)
            }
            return moved
        }
    }
}
