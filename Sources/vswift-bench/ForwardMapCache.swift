import Glibc
import VSwiftDatapath
import VSwiftMapCache
import VSwiftPacket

/// `forward --tunnel encap --map-prefixes 1,10000,100000` (issue 16's veth bench): beside static
/// LISP encapsulation (`vswift`, remote_ip=198.19.0.2) and port to port (`vswift-p2p`), the same
/// switch with lisp0 at remote_ip=map, key=1, its map-cache holding `prefixes` static entries, as
/// `vswiftctl add-map-cache` makes them: the generator's destination 198.18.0.2 → 198.19.0.2
/// among a site-like mix (PipelineMapCache.swift), or with one prefix 198.18.0.0/15. No mapping
/// system on the hot path: every packet finds its entry.
enum ForwardMapCache {
    static let instanceID = Pipeline.mapInstance

    static func snapshot(prefixes count: Int) -> MapCacheSnapshot {
        let rloc = IPAddress(VSwiftSwitch.encapRemote)!
        let destination = EIDPrefix(instanceID: instanceID, address: IPAddress(ipv4: 0xc612_0002), length: 32)!
        let benchmarkingRange = EIDPrefix(instanceID: instanceID, address: IPAddress(ipv4: 0xc612_0000), length: 15)!
        // The filler points at the same RLOC: the only one with a route here, so the resolver has
        // one address to resolve whatever the count.
        return Pipeline.mapCacheSnapshot(
            prefixes: count, covering: (benchmarkingRange, rloc), destinations: [(destination, rloc)], filler: [rloc])
    }

    /// The row's name: vswift-map-1, vswift-map-10k, vswift-map-100k.
    static func label(_ prefixes: Int) -> String {
        "vswift-map-" + (prefixes >= 1000 && prefixes % 1000 == 0 ? "\(prefixes / 1000)k" : "\(prefixes)")
    }

    /// Publishes the map-cache and waits (5 s at most) until lisp0 sees every entry and its RLOC
    /// has a next hop.
    static func install(_ datapath: Datapath, prefixes count: Int) throws {
        let snapshot = snapshot(prefixes: count)
        let entries = snapshot.count
        datapath.publishMapCache(snapshot)
        let deadline = monotonicSeconds() + 5
        while true {
            if Signals.stopRequested { throw BenchError.interrupted }
            let state = datapath.attachment(of: "lisp0")?.tunnelState
            if case .remoteFromMap(_, let published?, let resolved)? = state, published == entries, resolved > 0 { return }
            guard monotonicSeconds() < deadline else {
                throw BenchError.failed("vswift's map port did not get its \(entries) map-cache entries resolved: \(state.map { "\($0)" } ?? "?")")
            }
            usleep(10_000)
        }
    }
}
