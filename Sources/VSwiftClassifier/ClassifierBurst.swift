import CSupport
import VSwiftPacket

/// Working memory for classifying one burst of packets: fixed arrays for up to `capacity` keys,
/// allocated once (per worker) so a burst allocates nothing. The one owner of that memory
/// (noncopyable): freed when it goes away; lookups borrow it.
// @unchecked: raw pointers; one thread at a time uses a scratch (its worker's cache owns it).
public struct ClassifierBurstScratch: ~Copyable, @unchecked Sendable {
    /// The most keys one call classifies; callers split longer bursts.
    public static let capacity = 64

    /// Subtables searched together at most (see `ClassifierTable.lookup(burst:...)`).
    static let chunkCapacity = 4

    /// Per key (indexed by the key's position in the burst); `hashes` and `candidates` per
    /// subtable of a chunk and key (`c * capacity + k`).
    let hashes: UnsafeMutablePointer<UInt32>
    let bestRank: UnsafeMutablePointer<UInt32>
    let bestPriority: UnsafeMutablePointer<Int32>
    /// First slot whose signature matches, in the subtable being searched (-1: none).
    let candidates: UnsafeMutablePointer<Int>
    /// Positions of the keys still being searched (a compacting list).
    let active: UnsafeMutablePointer<UInt8>
    /// Positions of the keys the exact-match cache missed.
    let misses: UnsafeMutablePointer<UInt8>

    public init() {
        let n = Self.capacity
        hashes = .allocate(capacity: n * Self.chunkCapacity)
        bestRank = .allocate(capacity: n)
        bestPriority = .allocate(capacity: n)
        candidates = .allocate(capacity: n * Self.chunkCapacity)
        active = .allocate(capacity: n)
        misses = .allocate(capacity: n)
    }

    deinit {
        hashes.deallocate()
        bestRank.deallocate()
        bestPriority.deallocate()
        candidates.deallocate()
        active.deallocate()
        misses.deallocate()
    }
}

extension ClassifierTable {
    /// Subtables up to this size are searched without prefetching their slots, and the exact-match
    /// cache sends the misses of a table up to this size through `lookupWords` one by one: data
    /// that stays in cache gains nothing from the passes of a burst, which cost more than they hide.
    static let cacheResidentBytes = 256 << 10

    /// About how many signature or slot loads a pass of a burst lookup keeps in flight: when few
    /// keys search, subtables of equal priority are searched together to make up the number.
    static let loadsInFlight = 32

    /// Classifies the keys at positions `which[0..<count]` of `keys`, writing each one's rule
    /// (or `.miss`) to `results[position]`. Same answers as `lookup` key by key.
    ///
    /// One key at a time, a big table costs a chain of dependent cache misses per key. Here the
    /// burst goes through the subtables together (as OVS's dpcls does): for each subtable, hash
    /// every key still searching and prefetch its signatures, then find the candidates and
    /// prefetch their slots, then compare, so the misses of a whole burst are in flight at once
    /// instead of one after another. When few keys search (a cache that hits most of the time
    /// sends one or two keys per burst), each pass covers several subtables of the same highest
    /// priority at once (a key searching one of them searches them all), so a key's misses in
    /// those subtables overlap too, instead of costing two memory round trips per subtable.
    ///
    /// Invariant per key, as in `lookupWords`: subtables are visited in order of their highest
    /// priority, and a key stops searching at the first subtable whose highest priority is strictly
    /// below its best match (equal priority may still win the tie on rank).
    public func lookup(burst keys: UnsafePointer<FlowKey>, which: UnsafePointer<UInt8>, count: Int,
                       results: UnsafeMutablePointer<RuleIndex>, scratch: borrowing ClassifierBurstScratch) {
        precondition(count <= ClassifierBurstScratch.capacity)
        let words = UnsafeRawPointer(keys).assumingMemoryBound(to: UInt64.self)
        var activeCount = count
        for i in 0..<count {
            let k = Int(which[i])
            scratch.active[i] = which[i]
            scratch.bestRank[k] = .max
            scratch.bestPriority[k] = -1
            results[k] = .miss
        }
        var s = 0
        while s < subtableCount {
            let maxPriority = subtables[s].maxPriority
            // Drop the keys no rule of this or any later subtable can improve on.
            var kept = 0
            for i in 0..<activeCount where scratch.bestPriority[Int(scratch.active[i])] <= maxPriority {
                scratch.active[kept] = scratch.active[i]
                kept += 1
            }
            activeCount = kept
            if activeCount == 0 { break }
            // The chunk: subtables s..<end, of this same highest priority. No key drops out
            // within it (whatever it finds there has at most this priority).
            let width = Swift.max(1, Swift.min(ClassifierBurstScratch.chunkCapacity, Self.loadsInFlight / activeCount))
            var end = s + 1
            while end < subtableCount && end - s < width && subtables[end].maxPriority == maxPriority { end += 1 }
            // Pass 1: hash every key and start loading its line of signatures, per subtable.
            for c in 0..<(end - s) {
                let st = subtables + s + c
                let hashes = scratch.hashes + c &* ClassifierBurstScratch.capacity
                for i in 0..<activeCount {
                    let k = Int(scratch.active[i])
                    let h = hashWords(words + k &* FlowKey.wordCount, st.pointee.mask, st.pointee.words, st.pointee.wordCount)
                    hashes[k] = h
                    vs_prefetch(st.pointee.signatures.unsafelyUnwrapped + (Int(h) & st.pointee.slotMask))
                }
            }
            // Pass 2: find each key's first signature match and start loading that slot; most keys
            // a subtable does not hold stop here, on an empty slot. A small subtable stays in
            // cache: prefetching its slots would only add passes.
            for c in 0..<(end - s) {
                let st = subtables + s + c
                guard (st.pointee.slotMask + 1) &* st.pointee.stride > Self.cacheResidentBytes else { continue }
                let hashes = scratch.hashes + c &* ClassifierBurstScratch.capacity
                let candidates = scratch.candidates + c &* ClassifierBurstScratch.capacity
                for i in 0..<activeCount {
                    let k = Int(scratch.active[i])
                    let h = hashes[k]
                    let slot = st.pointee.firstCandidate(h, from: Int(h) & st.pointee.slotMask)
                    candidates[k] = slot
                    if slot >= 0 { vs_prefetch(st.pointee.slots + slot &* st.pointee.stride) }
                }
            }
            // Pass 3: compare the keys with their candidate slots.
            for c in 0..<(end - s) {
                let st = subtables + s + c
                let small = (st.pointee.slotMask + 1) &* st.pointee.stride <= Self.cacheResidentBytes
                let hashes = scratch.hashes + c &* ClassifierBurstScratch.capacity
                let candidates = scratch.candidates + c &* ClassifierBurstScratch.capacity
                for i in 0..<activeCount {
                    let k = Int(scratch.active[i])
                    let h = hashes[k]
                    let slot = small ? st.pointee.firstCandidate(h, from: Int(h) & st.pointee.slotMask) : candidates[k]
                    guard slot >= 0 else { continue }
                    if let (rank, priority, rule) = st.pointee.probe(words + k &* FlowKey.wordCount, h, from: slot),
                       rank < scratch.bestRank[k] {
                        scratch.bestRank[k] = rank
                        scratch.bestPriority[k] = priority
                        results[k] = rule
                    }
                }
            }
            s = end
        }
    }
}

extension ClassifierTable.Subtable {
    /// The first slot from `start` on (along the probe sequence) whose signature is that of `h`,
    /// or -1 when an empty slot comes first: the subtable holds no key with this hash.
    @inline(__always)
    func firstCandidate(_ h: UInt32, from start: Int) -> Int {
        let signatures = self.signatures.unsafelyUnwrapped
        let wanted = ClassifierTable.signature(h)
        var slot = start
        while true {
            let s = signatures[slot]
            if s == wanted { return slot }
            if s == 0 { return -1 }
            slot = (slot &+ 1) & slotMask
        }
    }

    /// Probes from `start` (a slot whose signature matches `h`'s) for the entry holding `key`
    /// masked by this subtable: its (rank, priority, rule), or nil.
    @inline(__always)
    func probe(_ key: UnsafePointer<UInt64>, _ h: UInt32, from start: Int) -> (UInt32, Int32, RuleIndex)? {
        let signatures = self.signatures.unsafelyUnwrapped
        let wanted = ClassifierTable.signature(h)
        var slot = start
        while true {
            let s = signatures[slot]
            if s == 0 { return nil }
            if s == wanted {
                let p = slots + slot &* stride
                if p.load(as: UInt32.self) == h {
                    var equal = true
                    for j in 0..<wordCount where key[Int(words[j])] & mask[j]
                        != p.load(fromByteOffset: ClassifierTable.slotHeader + 8 &* j, as: UInt64.self) {
                        equal = false
                        break
                    }
                    if equal {
                        return (p.load(fromByteOffset: 8, as: UInt32.self), p.load(fromByteOffset: 12, as: Int32.self),
                                RuleIndex(rawValue: p.load(fromByteOffset: 4, as: Int32.self)))
                    }
                }
            }
            slot = (slot &+ 1) & slotMask
        }
    }
}
