import VSwiftPacket

/// Scratch of a burst lookup: raw arrays for one burst, allocated once per worker.
// @unchecked: owned and used by one worker thread at a time.
public final class MapCacheBurstScratch: @unchecked Sendable {
    public static let capacity = 64
    let lo: UnsafeMutablePointer<Int32>
    let hi: UnsafeMutablePointer<Int32>
    let keys: UnsafeMutablePointer<MapCacheSnapshot.Key>
    let home: UnsafeMutablePointer<Int>
    let active: UnsafeMutablePointer<UInt8>

    public init() {
        lo = .allocate(capacity: Self.capacity)
        hi = .allocate(capacity: Self.capacity)
        keys = .allocate(capacity: Self.capacity)
        home = .allocate(capacity: Self.capacity)
        active = .allocate(capacity: Self.capacity)
    }

    deinit {
        lo.deallocate()
        hi.deallocate()
        keys.deallocate()
        home.deallocate()
        active.deallocate()
    }
}

extension MapCacheSnapshot {
    /// `lookup` for `count` (≤ `MapCacheBurstScratch.capacity`) destinations at once: the binary
    /// searches advance in step, and each step first loads every packet's home slot, then probes,
    /// so the cache misses of a burst's lookups overlap instead of following one another (as the
    /// classifier's burst lookup does; with 100k prefixes nearly every probe misses the cache).
    /// `results[i]` gets what `lookup(instanceID: instanceIDs[i], destination: destinations[i])`
    /// returns.
    public func lookup(
        burst count: Int, instanceIDs: UnsafePointer<UInt32>, destinations: UnsafePointer<IPAddress>,
        results: UnsafeMutablePointer<Int32>, scratch: MapCacheBurstScratch
    ) {
        precondition(count <= MapCacheBurstScratch.capacity)
        var remaining = 0
        for i in 0..<count {
            let isIPv4 = destinations[i].isIPv4
            scratch.lo[i] = 0
            scratch.hi[i] = Int32((isIPv4 ? lengthCountIPv4 : lengthCountIPv6) - 1)
            results[i] = -1
            let on = scratch.lo[i] <= scratch.hi[i]
            scratch.active[i] = on ? 1 : 0
            if on { remaining += 1 }
        }
        var touched: UInt64 = 0
        while remaining > 0 {
            // Keys and home slots of every packet still searching; the loads start the misses.
            for i in 0..<count where scratch.active[i] != 0 {
                let isIPv4 = destinations[i].isIPv4
                let mid = Int(scratch.lo[i] + scratch.hi[i]) >> 1
                let bits = Int(lengths[(isIPv4 ? 0 : 129) + mid])
                let key = Self.key(instanceIDs[i], destinations[i], isIPv4, bits)
                let home = Int(truncatingIfNeeded: key.hash) & slotMask
                scratch.keys[i] = key
                scratch.home[i] = home
                touched &+= slots[home].meta
            }
            // Probes, now mostly on lines in the cache.
            for i in 0..<count where scratch.active[i] != 0 {
                let key = scratch.keys[i]
                var s = scratch.home[i]
                var found = false
                while true {
                    let slot = slots + s
                    let meta = slot.pointee.meta
                    if meta == 0 { break }
                    if meta == key.meta && slot.pointee.low == key.low && slot.pointee.high == key.high {
                        found = true
                        if slot.pointee.best >= 0 { results[i] = slot.pointee.best }
                        break
                    }
                    s = (s + 1) & slotMask
                }
                let mid = (scratch.lo[i] + scratch.hi[i]) >> 1
                if found { scratch.lo[i] = mid + 1 } else { scratch.hi[i] = mid - 1 }
                if scratch.lo[i] > scratch.hi[i] {
                    scratch.active[i] = 0
                    remaining -= 1
                }
            }
        }
        // Keeps the touching loads (a value the optimizer cannot drop).
        if touched == 1 { scratch.active[0] = 0 }
    }
}
