import VSwiftMapCache

/// The map-cache's destination while the datapath cannot take one: publishes nowhere and has no
/// misses. vswiftd uses it only when `Datapath` is not `MapCachePublishing` (before issue 16's
/// datapath half is merged); replaced at merge by the datapath itself.
public final class UnconnectedMapCache: MapCachePublishing {
    public init() {}

    /// `datapath` itself once it is `MapCachePublishing`, else a stand-in.
    public static func publisher(for datapath: AnyObject) -> any MapCachePublishing {
        datapath as? any MapCachePublishing ?? UnconnectedMapCache()
    }

    public func publishMapCache(_ snapshot: MapCacheSnapshot) {}

    public func drainMapCacheMisses(into misses: inout [MapCacheMiss], limit: Int) -> Int { 0 }
}
