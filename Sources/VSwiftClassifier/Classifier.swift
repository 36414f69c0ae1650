import CSupport
import Synchronization
import VSwiftPacket

/// A set of FlowKey word indices (bit i = word i), e.g. the words a mask touches.
public struct WordSet: Hashable, Sendable {
    public var bits: UInt16

    public init(mask: FlowKey) {
        var bits: UInt16 = 0
        for i in 0..<FlowKey.wordCount where mask[word: i] != 0 { bits |= 1 << UInt16(i) }
        self.bits = bits
    }

    public var count: Int { bits.nonzeroBitCount }

    public var indices: [Int] { (0..<FlowKey.wordCount).filter { bits & (1 << UInt16($0)) != 0 } }
}

/// Hash of `key`'s words listed in `words[0..<count]`, each ANDed with the same word of `mask`.
@inline(__always)
func hashWords(_ key: UnsafePointer<UInt64>, _ mask: UnsafePointer<UInt64>, _ words: UnsafePointer<UInt8>, _ count: Int) -> UInt32 {
    var h: UInt64 = 0x9E37_79B9_7F4A_7C15
    for i in 0..<count {
        let w = Int(words[i])
        h = (h ^ (key[w] & mask[w])) &* 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 32
    }
    return UInt32(truncatingIfNeeded: h ^ (h >> 29))
}

/// One rule of the classifier: what it matches, how it ranks, and an opaque value returned on match.
public struct ClassifierEntry: Sendable {
    public var match: Match
    public var priority: UInt16
    /// Tie-breaker among equal priorities: the lower sequence wins (deterministic, unlike OpenFlow's
    /// "undefined"): the flow added first keeps winning.
    public var sequence: UInt64
    public var payload: Int32

    public init(match: Match, priority: UInt16, sequence: UInt64, payload: Int32) {
        self.match = match
        self.priority = priority
        self.sequence = sequence
        self.payload = payload
    }
}

/// An immutable version of a flow table, searched by tuple space search.
///
/// Invariants (cf. OVS lib/classifier.c):
/// - Rules with the same mask share a subtable, a hash table keyed on the masked key over just the
///   words the mask touches. Within one subtable an exact (key, mask) pair appears once, holding the
///   best-ranked rule with that match (others with the same match can never win).
/// - Subtables are ordered by the highest priority they hold; a search stops at the first subtable
///   whose highest priority is below the best match found, so high-priority hits cost one probe.
/// - Rank = position in (priority descending, sequence ascending); the lowest rank among matching
///   rules wins, which is exactly what a linear scan in that order returns.
/// - Built once, never mutated: workers read it without locks; the control plane builds a new
///   version for every change and retires the old one when no worker can still be using it.
public final class ClassifierTable: @unchecked Sendable {
    /// Raw view of one subtable, laid out for the lookup loop. Each hash slot holds its whole entry
    /// inline — hash, payload, rank, priority, then the masked key words — so a probe touches one
    /// or two cache lines, not one per array.
    struct Subtable {
        var mask: UnsafeMutablePointer<UInt64>          // 16 words
        var words: UnsafeMutablePointer<UInt8>          // significant word indices
        var wordCount: Int
        var maxPriority: Int32
        var slotMask: Int
        var stride: Int
        var slots: UnsafeMutableRawPointer
        var entryCount: Int
    }

    /// Slot layout (bytes): 0 hash, 4 payload (emptySlot when unused), 8 rank, 12 priority, 16… words.
    static let emptySlot = Int32.min
    static let slotHeader = 16

    /// Unique per table ever built in this process: tags exact-match cache entries, so a cache can
    /// never confuse a new table with a freed one that lived at the same address.
    public let version: UInt64
    private static let versions = Atomic<UInt64>(0)

    public let ruleCount: Int
    /// Words any rule looks at: the exact-match cache keys on these only.
    public let significantWords: WordSet
    let subtables: UnsafeMutablePointer<Subtable>
    public let subtableCount: Int
    /// Union mask words (for the exact-match cache) and their indices.
    let unionMask: UnsafeMutablePointer<UInt64>
    let unionWords: UnsafeMutablePointer<UInt8>
    let unionWordCount: Int

    public init(_ entries: [ClassifierEntry]) {
        version = Self.versions.add(1, ordering: .relaxed).newValue
        ruleCount = entries.count
        // Rank every rule once: priority descending, then sequence ascending.
        let order = entries.indices.sorted {
            let a = entries[$0], b = entries[$1]
            return a.priority != b.priority ? a.priority > b.priority : a.sequence < b.sequence
        }
        var rank = [UInt32](repeating: 0, count: entries.count)
        for (r, i) in order.enumerated() { rank[i] = UInt32(r) }

        // Group by mask; within a group keep the best rule per masked key.
        var groups: [FlowKey: [FlowKey: Int]] = [:]
        var union = FlowKey()
        for (i, entry) in entries.enumerated() {
            for w in 0..<FlowKey.wordCount { union[word: w] |= entry.match.mask[word: w] }
            if let existing = groups[entry.match.mask]?[entry.match.key] {
                if rank[i] < rank[existing] { groups[entry.match.mask]![entry.match.key] = i }
            } else {
                groups[entry.match.mask, default: [:]][entry.match.key] = i
            }
        }
        significantWords = WordSet(mask: union)
        unionMask = .allocate(capacity: FlowKey.wordCount)
        for w in 0..<FlowKey.wordCount { unionMask[w] = union[word: w] }
        let unionIndices = significantWords.indices
        unionWords = .allocate(capacity: max(unionIndices.count, 1))
        for (i, w) in unionIndices.enumerated() { unionWords[i] = UInt8(w) }
        unionWordCount = unionIndices.count

        var built: [Subtable] = []
        built.reserveCapacity(groups.count)
        for (mask, members) in groups {
            let indices = WordSet(mask: mask).indices
            let n = members.count
            var capacity = 4
            while capacity < n * 2 { capacity <<= 1 }
            let stride = Self.slotHeader + 8 * indices.count
            var st = Subtable(
                mask: .allocate(capacity: FlowKey.wordCount), words: .allocate(capacity: max(indices.count, 1)),
                wordCount: indices.count, maxPriority: -1, slotMask: capacity - 1, stride: stride,
                slots: .allocate(byteCount: capacity * stride, alignment: 64), entryCount: n)
            for w in 0..<FlowKey.wordCount { st.mask[w] = mask[word: w] }
            for (i, w) in indices.enumerated() { st.words[i] = UInt8(w) }
            for slot in 0..<capacity {
                st.slots.storeBytes(of: Self.emptySlot, toByteOffset: slot * stride + 4, as: Int32.self)
            }
            for (key, ruleIndex) in members {
                var k = key
                let h = withUnsafePointer(to: &k) { kp in
                    kp.withMemoryRebound(to: UInt64.self, capacity: FlowKey.wordCount) { hashWords($0, st.mask, st.words, st.wordCount) }
                }
                var slot = Int(h) & st.slotMask
                while st.slots.load(fromByteOffset: slot * stride + 4, as: Int32.self) != Self.emptySlot {
                    slot = (slot + 1) & st.slotMask
                }
                let p = st.slots + slot * stride
                p.storeBytes(of: h, as: UInt32.self)
                p.storeBytes(of: entries[ruleIndex].payload, toByteOffset: 4, as: Int32.self)
                p.storeBytes(of: rank[ruleIndex], toByteOffset: 8, as: UInt32.self)
                p.storeBytes(of: Int32(entries[ruleIndex].priority), toByteOffset: 12, as: Int32.self)
                for (j, w) in indices.enumerated() {
                    p.storeBytes(of: key[word: w], toByteOffset: Self.slotHeader + 8 * j, as: UInt64.self)
                }
                st.maxPriority = max(st.maxPriority, Int32(entries[ruleIndex].priority))
            }
            built.append(st)
        }
        built.sort { $0.maxPriority > $1.maxPriority }
        subtableCount = built.count
        subtables = .allocate(capacity: max(built.count, 1))
        subtables.initialize(from: built, count: built.count)
    }

    deinit {
        for i in 0..<subtableCount {
            let st = subtables[i]
            st.mask.deallocate()
            st.words.deallocate()
            st.slots.deallocate()
        }
        subtables.deallocate()
        unionMask.deallocate()
        unionWords.deallocate()
    }

    /// The payload of the best matching rule, or -1 when no rule matches.
    @inline(__always)
    public func lookup(_ key: UnsafePointer<FlowKey>) -> Int32 {
        key.withMemoryRebound(to: UInt64.self, capacity: FlowKey.wordCount) { lookupWords($0) }
    }

    /// Subtables whose home slots are computed and prefetched up front, so their cache misses overlap.
    static let prefetchDepth = 16

    @inline(__always)
    func lookupWords(_ key: UnsafePointer<UInt64>) -> Int32 {
        var hashes: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &hashes) { raw -> Int32 in
            let early = raw.baseAddress!.assumingMemoryBound(to: UInt32.self)
            let prefetched = min(subtableCount, Self.prefetchDepth)
            for s in 0..<prefetched {
                let st = subtables + s
                let h = hashWords(key, st.pointee.mask, st.pointee.words, st.pointee.wordCount)
                early[s] = h
                vs_prefetch(st.pointee.slots + (Int(h) & st.pointee.slotMask) * st.pointee.stride)
            }
            var bestRank = UInt32.max
            var bestPriority: Int32 = -1
            var bestPayload: Int32 = -1
            for s in 0..<subtableCount {
                let st = subtables + s
                // Equal priority may still win a tie on rank, so only strictly lower priorities stop us.
                if st.pointee.maxPriority < bestPriority { break }
                let wordCount = st.pointee.wordCount
                let stride = st.pointee.stride
                let h = s < prefetched ? early[s] : hashWords(key, st.pointee.mask, st.pointee.words, wordCount)
                var slot = Int(h) & st.pointee.slotMask
                while true {
                    let p = st.pointee.slots + slot * stride
                    let payload = p.load(fromByteOffset: 4, as: Int32.self)
                    if payload == Self.emptySlot { break }
                    if p.load(as: UInt32.self) == h {
                        var equal = true
                        for j in 0..<wordCount {
                            let w = Int(st.pointee.words[j])
                            if key[w] & st.pointee.mask[w] != p.load(fromByteOffset: Self.slotHeader + 8 * j, as: UInt64.self) {
                                equal = false
                                break
                            }
                        }
                        if equal {
                            let rank = p.load(fromByteOffset: 8, as: UInt32.self)
                            if rank < bestRank {
                                bestRank = rank
                                bestPriority = p.load(fromByteOffset: 12, as: Int32.self)
                                bestPayload = payload
                            }
                            break
                        }
                    }
                    slot = (slot + 1) & st.pointee.slotMask
                }
            }
            return bestPayload
        }
    }

    /// Heap bytes held by this version's subtables (for "bytes per rule").
    public var memoryBytes: Int {
        var total = 0
        for i in 0..<subtableCount {
            let st = subtables[i]
            total += 16 * 8 + (st.slotMask + 1) * st.stride
        }
        return total
    }
}

/// A worker's exact-match cache in front of the classifier: remembers the result for the exact
/// values of the words any rule looks at, so a hit costs one hash over those words and one compare.
///
/// Entries are tagged with the table's identity; a new table version invalidates them all at once.
/// Direct-mapped, fixed size, raw memory: nothing is allocated per packet.
public struct ExactMatchCache: @unchecked Sendable {
    public static let maxWords = 8
    struct Entry {
        var tag: UInt64 = 0           // table version; 0 = empty
        var hash: UInt32 = 0
        var payload: Int32 = -1
        var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    }

    let entries: UnsafeMutablePointer<Entry>
    let mask: Int
    public private(set) var hits: UInt64 = 0
    public private(set) var misses: UInt64 = 0

    public init(capacity: Int = 8192) {
        precondition(capacity.nonzeroBitCount == 1)
        entries = .allocate(capacity: capacity)
        entries.initialize(repeating: Entry(), count: capacity)
        mask = capacity - 1
    }

    public func destroy() { entries.deallocate() }

    /// Classifies `key` against `table`, through the cache.
    @inline(__always)
    public mutating func lookup(_ key: UnsafePointer<FlowKey>, in table: ClassifierTable) -> Int32 {
        let count = table.unionWordCount
        return key.withMemoryRebound(to: UInt64.self, capacity: FlowKey.wordCount) { k -> Int32 in
            // Tables looking at more words than the cache holds go straight to the classifier.
            guard count <= Self.maxWords else { return table.lookupWords(k) }
            let tag = table.version
            let h = hashWords(k, table.unionMask, table.unionWords, count)
            let entry = entries + (Int(h) & mask)
            if entry.pointee.tag == tag && entry.pointee.hash == h {
                let equal = withUnsafePointer(to: &entry.pointee.words) { wp in
                    wp.withMemoryRebound(to: UInt64.self, capacity: Self.maxWords) { stored -> Bool in
                        for j in 0..<count {
                            let w = Int(table.unionWords[j])
                            if k[w] & table.unionMask[w] != stored[j] { return false }
                        }
                        return true
                    }
                }
                if equal {
                    hits &+= 1
                    return entry.pointee.payload
                }
            }
            misses &+= 1
            let payload = table.lookupWords(k)
            entry.pointee.tag = tag
            entry.pointee.hash = h
            entry.pointee.payload = payload
            withUnsafeMutablePointer(to: &entry.pointee.words) { wp in
                wp.withMemoryRebound(to: UInt64.self, capacity: Self.maxWords) { stored in
                    for j in 0..<count {
                        let w = Int(table.unionWords[j])
                        stored[j] = k[w] & table.unionMask[w]
                    }
                }
            }
            return payload
        }
    }
}
