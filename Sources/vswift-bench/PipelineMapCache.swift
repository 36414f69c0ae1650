import VSwiftMapCache
import VSwiftPacket
import VSwiftTesting

/// `lisp-map-*` scenarios: encapsulation through the map-cache (remote_ip=map) with `prefixes`
/// entries, beside static `lisp-encap-1k` over the same 1,000 flows (10.2.0.0 to 10.2.3.231,
/// `Pipeline.frame(flow:)`). With one prefix, 10.0.0.0/8 covers them all; otherwise each flow's
/// destination has a /32 of its own and the rest are a site-like mix (IPv4 /16.../32, IPv6
/// /48.../128, four instances) elsewhere, so lookups search as a full map-cache does. Entries
/// have one RLOC of 64 (the common case: a site's best priority is usually one RLOC).
extension Pipeline {
    static let mapInstance: UInt32 = 1
    static let mapFlows = 1_000

    static func mapCache(prefixes count: Int) -> (snapshot: MapCacheSnapshot, rlocs: [IPAddress]) {
        let rlocs = (0..<64).map { IPAddress(ipv4: 0xc000_0200 | UInt32(10 + $0)) }
        let flows = (0..<mapFlows).map { flow in
            (EIDPrefix(instanceID: mapInstance, address: IPAddress(ipv4: 0x0a02_0000 | UInt32(flow)), length: 32)!, rlocs[flow % rlocs.count])
        }
        let covering = EIDPrefix(instanceID: mapInstance, address: IPAddress(ipv4: 0x0a00_0000), length: 8)!
        return (mapCacheSnapshot(prefixes: count, covering: (covering, rlocs[0]), destinations: flows, filler: rlocs), rlocs)
    }

    /// A map-cache of `count` entries in `mapInstance`: with one, `covering`; otherwise the
    /// `destinations` the traffic goes to, then a site-like mix (IPv4 /16.../32 in 10.128.0.0/9,
    /// IPv6 /48.../128 in 2001:db8::/32, four instances) with the `filler` RLOCs in turn, until
    /// there are `count`. Also the veth bench's (ForwardMapCache.swift).
    static func mapCacheSnapshot(
        prefixes count: Int, covering: (EIDPrefix, IPAddress), destinations: [(EIDPrefix, IPAddress)], filler rlocs: [IPAddress]
    ) -> MapCacheSnapshot {
        var entries: [(EIDPrefix, IPAddress)] = []
        var seen = Set<EIDPrefix>()
        func add(_ prefix: EIDPrefix, _ rloc: IPAddress) {
            if seen.insert(prefix).inserted { entries.append((prefix, rloc)) }
        }
        if count == 1 {
            add(covering.0, covering.1)
        } else {
            for (prefix, rloc) in destinations { add(prefix, rloc) }
            var rng = SplitMix64(seed: 0x6d61_7063)
            while entries.count < count {
                let iid = UInt32(rng.next() % 4) + mapInstance
                let ipv4 = rng.next() % 4 != 0
                let length = ipv4 ? [16, 20, 24, 24, 24, 24, 28, 32, 32][Int(rng.next() % 9)] : [48, 56, 64, 64, 64, 128][Int(rng.next() % 6)]
                // IPv4 filler in 10.128.0.0/9, away from the flows' 10.2.0.0/16.
                let address = ipv4
                    ? IPAddress(ipv4: 0x0a80_0000 | UInt32(truncatingIfNeeded: rng.next()) & 0x007f_ffff)
                    : IPAddress(high: 0x2001_0db8_0000_0000 | rng.next() & 0xffff_ffff, low: rng.next())
                add(EIDPrefix(instanceID: iid, address: address, length: length)!, rlocs[entries.count % rlocs.count])
            }
        }
        let marks = UseMarks(capacity: entries.count)
        return MapCacheSnapshot(entries.enumerated().map { i, e in
            SnapshotEntry(prefix: e.0, locators: [Locator(address: e.1, priority: 1, weight: 100)], markSlot: i)
        }, marks: marks)
    }
}
