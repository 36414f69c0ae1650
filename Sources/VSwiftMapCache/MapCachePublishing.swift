import VSwiftPacket

/// The datapath as the LISP control plane sees it: where new map-cache versions go and where the
/// workers' misses come from. `VSwiftDatapath.Datapath` implements it; tests use a recorder.
/// Called from the control plane's one thread, never from a worker.
public protocol MapCachePublishing: AnyObject, Sendable {
    /// Hands `snapshot` to every worker (RCU: the previous version is released once every worker
    /// has moved past it). Workers resolve `remote_ip=map` ports' destinations through it.
    func publishMapCache(_ snapshot: MapCacheSnapshot)

    /// The local RLOCs we register for our EIDs (configured, or defaulted from the route toward
    /// the map-servers). Each is where the underlay is for `remote_ip=map` ports: the datapath
    /// decapsulates LISP addressed to it on the device that holds it, whatever family the mapping
    /// system is reached over, so a site not yet in the map-cache is heard (refused, and its
    /// source EID asked about) instead of being taken for a tenant's traffic.
    func setRegisteredRLOCs(_ addresses: [IPAddress])

    /// Moves up to `limit` pending misses into `misses` (appended) and returns how many it moved.
    func drainMapCacheMisses(into misses: inout [MapCacheMiss], limit: Int) -> Int
}
