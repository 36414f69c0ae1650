import VSwiftPacket

/// The datapath as the LISP control plane sees it: where new map-cache versions go and where the
/// workers' misses come from. `VSwiftDatapath.Datapath` implements it; tests use a recorder.
/// Called from the control plane's one thread, never from a worker.
public protocol MapCachePublishing: AnyObject, Sendable {
    /// Hands `snapshot` to every worker (RCU: the previous version is released once every worker
    /// has moved past it). Workers resolve `remote_ip=map` ports' destinations through it.
    func publishMapCache(_ snapshot: MapCacheSnapshot)

    /// The map-servers and map-resolvers. Before any mapping is known, the routes toward them are
    /// where the underlay is for `remote_ip=map` ports: the datapath resolves them like RLOCs, so
    /// LISP arriving there from a site not yet in the map-cache reaches the port (which refuses it
    /// and asks about its source EID) instead of being taken for a tenant's traffic.
    func setMappingSystem(_ addresses: [IPAddress])

    /// Moves up to `limit` pending misses into `misses` (appended) and returns how many it moved.
    func drainMapCacheMisses(into misses: inout [MapCacheMiss], limit: Int) -> Int
}
