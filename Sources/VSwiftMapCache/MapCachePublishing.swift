/// The datapath as the LISP control plane sees it: where new map-cache versions go and where the
/// workers' misses come from. `VSwiftDatapath.Datapath` implements it; tests use a recorder.
/// Called from the control plane's one thread, never from a worker.
public protocol MapCachePublishing: AnyObject, Sendable {
    /// Hands `snapshot` to every worker (RCU: the previous version is released once every worker
    /// has moved past it). Workers resolve `remote_ip=map` ports' destinations through it.
    func publishMapCache(_ snapshot: MapCacheSnapshot)

    /// Moves up to `limit` pending misses into `misses` (appended) and returns how many it moved.
    func drainMapCacheMisses(into misses: inout [MapCacheMiss], limit: Int) -> Int
}
