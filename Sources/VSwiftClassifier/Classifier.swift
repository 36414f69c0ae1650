// Over 500 lines on purpose: one data structure, the tuple space (subtables, their build, lookup,
// burst lookup and removal), whose private memory layout every part reads; the rules as data are in
// FlowRule.swift, the burst scratch in ClassifierBurst.swift, the cache in ExactMatchCache.swift.
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

/// Hash of `key`'s words listed in `words[0..<count]`, word `words[j]` ANDed with `mask[j]`
/// (masks are stored compactly, one per significant word).
@inline(__always)
func hashWords(_ key: UnsafePointer<UInt64>, _ mask: UnsafePointer<UInt64>, _ words: UnsafePointer<UInt8>, _ count: Int) -> UInt32 {
    var h: UInt64 = 0x9E37_79B9_7F4A_7C15
    for j in 0..<count {
        h = (h ^ (key[Int(words[j])] & mask[j])) &* 0xFF51_AFD7_ED55_8CCD
        h = h ^ (h >> 29)
    }
    return UInt32(truncatingIfNeeded: h ^ (h >> 32))
}

/// One rule of the classifier: what it matches, how it ranks, and the rule index returned on match.
public struct ClassifierEntry: Sendable {
    public var match: Match
    public var priority: UInt16
    /// Tie-breaker among equal priorities: the lower sequence wins (deterministic, unlike OpenFlow's
    /// "undefined"): the flow added first keeps winning.
    public var sequence: UInt64
    public var rule: RuleIndex

    public init(match: Match, priority: UInt16, sequence: UInt64, rule: RuleIndex) {
        self.match = match
        self.priority = priority
        self.sequence = sequence
        self.rule = rule
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
// @unchecked: raw memory written only while building, in `init`; immutable once published (see
// above), so any thread may read it.
public final class ClassifierTable: @unchecked Sendable {
    /// Raw view of one subtable, laid out for the lookup loop. Each hash slot holds its whole entry
    /// inline — hash, payload, rank, priority, then the masked key words — so a probe touches one
    /// or two cache lines, not one per array.
    struct Subtable {
        var mask: UnsafeMutablePointer<UInt64>          // mask of each significant word (compact)
        var words: UnsafeMutablePointer<UInt8>          // significant word indices
        var wordCount: Int
        var maxPriority: Int32
        var slotMask: Int
        var stride: Int
        var slots: UnsafeMutableRawPointer
        var entryCount: Int
        /// One 32-bit signature per slot (`signature(hash)`, 0 = empty), 16 to a cache line: a
        /// probe walks these and touches a slot only when its signature matches, so a key this
        /// subtable does not hold (the common case when several subtables are searched) usually
        /// costs one line of signatures, not one or two lines of slots. Written with the slot,
        /// always: `signatures[i] == 0` exactly when slot i is empty.
        var signatures: UnsafeMutablePointer<UInt32>? = nil
    }

    /// Never 0, so 0 can mean "empty slot".
    @inline(__always)
    static func signature(_ hash: UInt32) -> UInt32 { hash | 1 }

    /// Slot layout (bytes): 0 hash, 4 rule index (`RuleIndex.rawValue`; emptySlot when unused), 8 rank, 12 priority, 16… words.
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
    /// Heap bytes held by this version's subtables (for "bytes per rule", and whether a burst's
    /// misses are worth the classifier's burst passes: asked per burst, so computed once).
    public let memoryBytes: Int
    /// Union of the rules' masks (compact, one per significant word) and the word indices.
    let unionMask: UnsafeMutablePointer<UInt64>
    let unionWords: UnsafeMutablePointer<UInt8>
    let unionWordCount: Int
    /// Bits the exact-match cache keys on beyond the rules' (`exactMatchAlso` at construction,
    /// kept by every table derived from this one): a caller whose cache entries must separate
    /// flows the rules do not (the XDP flow cache's megaflow shape) names them here.
    public let exactMatchAlso: FlowKey
    /// The exact-match cache's key: union mask | `exactMatchAlso`, compact as the union's. The
    /// same values as the union's when `exactMatchAlso` is empty.
    let exactMatchMask: UnsafeMutablePointer<UInt64>
    let exactMatchWords: UnsafeMutablePointer<UInt8>
    let exactMatchWordCount: Int

    public convenience init(_ entries: [ClassifierEntry], exactMatchAlso: FlowKey = FlowKey()) {
        self.init(count: entries.count, exactMatchAlso: exactMatchAlso) { entries[$0] }
    }

    /// The table of `count` entries, entry i read from `entry(i)` as needed: a caller holding its
    /// rules in another form need not build an array of a million full matches first.
    /// `exactMatchAlso`: bits the exact-match cache keys on besides the rules' (see the property).
    public init(count: Int, exactMatchAlso: FlowKey = FlowKey(), entry entryAt: (Int) -> ClassifierEntry) {
        version = Self.versions.add(1, ordering: .relaxed).newValue
        ruleCount = count
        // One pass over the entries (each read costs the caller a copy of a match) collects what
        // ranking needs and groups rules by mask (few distinct masks: one dictionary probe per rule).
        var order = [(priority: UInt16, sequence: UInt64, index: Int32)]()
        order.reserveCapacity(count)
        var groupOfMask: [FlowKey: Int] = [:]
        var groupMasks: [FlowKey] = []
        var groupOf = [Int32](repeating: 0, count: count)
        var groupSizes: [Int] = []
        var union = FlowKey()
        // Neighbouring rules mostly share a mask: checked before hashing a whole key.
        var lastGroup = -1
        for i in 0..<count {
            let entry = entryAt(i)
            order.append((entry.priority, entry.sequence, Int32(i)))
            let g: Int
            if lastGroup >= 0 && groupMasks[lastGroup] == entry.match.mask {
                g = lastGroup
            } else if let existing = groupOfMask[entry.match.mask] {
                g = existing
            } else {
                g = groupMasks.count
                groupOfMask[entry.match.mask] = g
                groupMasks.append(entry.match.mask)
                groupSizes.append(0)
                for w in 0..<FlowKey.wordCount { union[word: w] |= entry.match.mask[word: w] }
            }
            groupOf[i] = Int32(g)
            groupSizes[g] += 1
            lastGroup = g
        }
        // Rank every rule once: priority descending, then sequence ascending.
        Self.sortByRank(&order)
        var rank = [UInt32](repeating: 0, count: count)
        for (r, o) in order.enumerated() { rank[Int(o.index)] = UInt32(r) }
        (significantWords, unionMask, unionWords, unionWordCount) = Self.unionArrays(union)
        self.exactMatchAlso = exactMatchAlso
        (_, exactMatchMask, exactMatchWords, exactMatchWordCount) = Self.unionArrays(Self.either(union, exactMatchAlso))

        var built: [Subtable] = []
        built.reserveCapacity(groupMasks.count)
        for (g, mask) in groupMasks.enumerated() {
            var capacity = 4
            while capacity < groupSizes[g] * 2 { capacity <<= 1 }
            built.append(Self.emptySubtable(mask: mask, capacity: capacity))
        }
        // Insert every rule into its subtable; an identical (mask, key) keeps the better-ranked rule.
        // A batch at a time, in order: its keys are hashed and their slots prefetched first, so the
        // cache misses of a big subtable overlap instead of coming one after the other.
        let batch = 16
        let keys = UnsafeMutablePointer<FlowKey>.allocate(capacity: batch)
        keys.initialize(repeating: FlowKey(), count: batch)
        defer { keys.deallocate() }
        var payloads = [Int32](repeating: 0, count: batch)
        var priorities = [Int32](repeating: 0, count: batch)
        var hashes = [UInt32](repeating: 0, count: batch)
        var start = 0
        while start < count {
            let n = min(batch, count - start)
            for b in 0..<n {
                let entry = entryAt(start + b)
                keys[b] = entry.match.key
                payloads[b] = entry.rule.rawValue
                priorities[b] = Int32(entry.priority)
                let st = built[Int(groupOf[start + b])]
                let h = UnsafeRawPointer(keys + b).withMemoryRebound(to: UInt64.self, capacity: FlowKey.wordCount) { k in
                    hashWords(k, st.mask, st.words, st.wordCount)
                }
                hashes[b] = h
                vs_prefetch_write(st.slots + (Int(h) & st.slotMask) * st.stride)
                vs_prefetch_write(st.signatures! + (Int(h) & st.slotMask))
            }
            for b in 0..<n {
                let i = start + b
                UnsafeRawPointer(keys + b).withMemoryRebound(to: UInt64.self, capacity: FlowKey.wordCount) { k in
                    Self.insert(
                        into: &built[Int(groupOf[i])], key: k, hash: hashes[b], payload: payloads[b], rank: rank[i],
                        priority: priorities[b])
                }
            }
            start += n
        }
        built.sort { $0.maxPriority > $1.maxPriority }
        subtableCount = built.count
        subtables = .allocate(capacity: max(built.count, 1))
        subtables.initialize(from: built, count: built.count)
        memoryBytes = Self.memoryBytes(of: built)
    }

    /// Sorts `order` priority descending, then sequence ascending. With sequences below 2^48 (the
    /// control plane's are) it sorts one packed word per rule: a million tuples compared field by
    /// field took a tenth of a big table's build.
    static func sortByRank(_ order: inout [(priority: UInt16, sequence: UInt64, index: Int32)]) {
        guard order.allSatisfy({ $0.sequence < 1 << 48 }) else {
            order.sort { $0.priority != $1.priority ? $0.priority > $1.priority : $0.sequence < $1.sequence }
            return
        }
        var packed = order.map { (key: UInt64(~$0.priority) << 48 | $0.sequence, index: $0.index) }
        // Equal keys (equal priority and sequence) keep their order, as the tuple sort keeps them.
        packed.sort { $0.key != $1.key ? $0.key < $1.key : $0.index < $1.index }
        for i in packed.indices {
            let key = packed[i].key
            order[i] = (~UInt16(truncatingIfNeeded: key >> 48), key & (1 << 48 - 1), packed[i].index)
        }
    }

    /// `old` with `entries` added, built without revisiting `old`'s rules: their subtables are
    /// copied and the new entries inserted. Every new entry must come after every old one among
    /// equal priorities (a higher sequence), and must not have an old entry's match and priority
    /// (a replacement: rebuild instead). Looks up exactly as `ClassifierTable(old's entries +
    /// entries)` would.
    ///
    /// Ranks need not be dense, only in order: an old entry of priority r moves down by the number
    /// of new entries above it (priority > r); a new entry of priority q goes right after the last
    /// old entry of priority ≥ q, moved down by the new entries ahead of it.
    /// `exactMatchAlso` is added to `old`'s.
    public init(_ old: ClassifierTable, adding entries: [ClassifierEntry], exactMatchAlso: FlowKey = FlowKey()) {
        version = Self.versions.add(1, ordering: .relaxed).newValue
        ruleCount = old.ruleCount + entries.count
        // New entries in rank order; the priorities descending, for counting "new entries above r".
        let order = entries.indices.sorted { a, b in
            entries[a].priority != entries[b].priority ? entries[a].priority > entries[b].priority
                : entries[a].sequence < entries[b].sequence
        }
        let newPriorities = order.map { entries[$0].priority }
        /// How many new entries have a priority above `priority` (newPriorities is descending).
        func newAbove(_ priority: Int32) -> UInt32 {
            var low = 0, high = newPriorities.count
            while low < high {
                let mid = (low + high) / 2
                if Int32(newPriorities[mid]) > priority { low = mid + 1 } else { high = mid }
            }
            return UInt32(low)
        }

        // Copy the subtables, moving old ranks down and noting the last old rank of each priority.
        var built: [Subtable] = []
        built.reserveCapacity(old.subtableCount + 1)
        var lastRankOfPriority: [Int32: UInt32] = [:]
        for i in 0..<old.subtableCount {
            let source = old.subtables[i]
            let capacity = source.slotMask + 1
            let st = Self.copy(source)
            for slot in 0..<capacity {
                let p = st.slots + slot * st.stride
                guard p.load(fromByteOffset: 4, as: Int32.self) != Self.emptySlot else { continue }
                let rank = p.load(fromByteOffset: 8, as: UInt32.self)
                let priority = p.load(fromByteOffset: 12, as: Int32.self)
                lastRankOfPriority[priority] = max(lastRankOfPriority[priority] ?? 0, rank)
                p.storeBytes(of: rank + newAbove(priority), toByteOffset: 8, as: UInt32.self)
            }
            built.append(st)
        }
        // The last old rank among priorities ≥ q, by q descending (old ranks, before moving).
        let oldPriorities = lastRankOfPriority.keys.sorted(by: >)
        var lastRankAtOrAbove: [(priority: Int32, rank: UInt32)] = []
        var running: UInt32? = nil
        for priority in oldPriorities {
            running = max(running ?? 0, lastRankOfPriority[priority]!)
            lastRankAtOrAbove.append((priority, running!))
        }
        func nextOldRank(atOrAbove priority: Int32) -> UInt32 {
            // Entries are few per priority: a scan would do, but tables may have many priorities.
            var low = 0, high = lastRankAtOrAbove.count
            while low < high {
                let mid = (low + high) / 2
                if lastRankAtOrAbove[mid].priority >= priority { low = mid + 1 } else { high = mid }
            }
            return low == 0 ? 0 : lastRankAtOrAbove[low - 1].rank + 1
        }

        var union = FlowKey()
        for w in 0..<old.unionWordCount { union[word: Int(old.unionWords[w])] = old.unionMask[w] }
        for (position, index) in order.enumerated() {
            let entry = entries[index]
            let priority = Int32(entry.priority)
            let rank = nextOldRank(atOrAbove: priority) + UInt32(position)
            let words = WordSet(mask: entry.match.mask)
            var g = built.firstIndex { st in
                st.wordCount == words.count && (0..<st.wordCount).allSatisfy { j in
                    st.mask[j] == entry.match.mask[word: Int(st.words[j])]
                }
            }
            if g == nil {
                built.append(Self.emptySubtable(mask: entry.match.mask, capacity: 4))
                for w in 0..<FlowKey.wordCount { union[word: w] |= entry.match.mask[word: w] }
                g = built.count - 1
            }
            if (built[g!].entryCount + 1) * 2 > built[g!].slotMask + 1 { Self.grow(&built[g!]) }
            var key = entry.match.key
            withUnsafePointer(to: &key) { kp in
                kp.withMemoryRebound(to: UInt64.self, capacity: FlowKey.wordCount) { k in
                    Self.insert(into: &built[g!], key: k, payload: entry.rule.rawValue, rank: rank, priority: priority)
                }
            }
        }
        (significantWords, unionMask, unionWords, unionWordCount) = Self.unionArrays(union)
        self.exactMatchAlso = Self.either(old.exactMatchAlso, exactMatchAlso)
        (_, exactMatchMask, exactMatchWords, exactMatchWordCount) = Self.unionArrays(Self.either(union, self.exactMatchAlso))
        built.sort { $0.maxPriority > $1.maxPriority }
        subtableCount = built.count
        subtables = .allocate(capacity: max(built.count, 1))
        subtables.initialize(from: built, count: built.count)
        memoryBytes = Self.memoryBytes(of: built)
    }

    /// `old` without the entries holding `matches`, or nil when one is not there or its payload
    /// fails `isRemoved` (the caller then rebuilds). The caller must know that no other rule has
    /// one of these matches (with another priority): it would have been left out of `old` as a
    /// never-winning duplicate, and would have to come back. Subtables keep their highest
    /// priority and stay even when emptied: a lookup then probes one more, never misses a rule.
    public init?(_ old: ClassifierTable, removing matches: [Match], where isRemoved: (RuleIndex) -> Bool) {
        var built: [Subtable] = []
        built.reserveCapacity(old.subtableCount)
        for i in 0..<old.subtableCount {
            built.append(Self.copy(old.subtables[i]))
        }
        func release() {
            for st in built {
                st.mask.deallocate()
                st.words.deallocate()
                st.slots.deallocate()
                st.signatures?.deallocate()
            }
        }
        for match in matches {
            guard let g = built.firstIndex(where: { st in
                st.wordCount == WordSet(mask: match.mask).count && (0..<st.wordCount).allSatisfy { j in
                    st.mask[j] == match.mask[word: Int(st.words[j])]
                }
            }) else {
                release()
                return nil
            }
            var key = match.key
            let removed = withUnsafePointer(to: &key) { kp in
                kp.withMemoryRebound(to: UInt64.self, capacity: FlowKey.wordCount) { k in
                    Self.remove(from: &built[g], key: k, where: isRemoved)
                }
            }
            guard removed else {
                release()
                return nil
            }
        }
        version = Self.versions.add(1, ordering: .relaxed).newValue
        ruleCount = old.ruleCount - matches.count
        significantWords = old.significantWords
        unionMask = Self.copy(old.unionMask, count: old.unionWordCount)
        unionWords = Self.copy(old.unionWords, count: old.unionWordCount)
        unionWordCount = old.unionWordCount
        exactMatchAlso = old.exactMatchAlso
        exactMatchMask = Self.copy(old.exactMatchMask, count: old.exactMatchWordCount)
        exactMatchWords = Self.copy(old.exactMatchWords, count: old.exactMatchWordCount)
        exactMatchWordCount = old.exactMatchWordCount
        subtableCount = built.count
        subtables = .allocate(capacity: max(built.count, 1))
        subtables.initialize(from: built, count: built.count)
        memoryBytes = Self.memoryBytes(of: built)
    }

    /// Removes the entry with `key` (masked here) whose payload passes `isRemoved`; false when
    /// there is none. Linear probing's backward-shift deletion: later entries of the same run move
    /// up, so no probe ever stops early at the hole.
    private static func remove(from st: inout Subtable, key: UnsafePointer<UInt64>, where isRemoved: (RuleIndex) -> Bool) -> Bool {
        let h = hashWords(key, st.mask, st.words, st.wordCount)
        var hole = Int(h) & st.slotMask
        while true {
            let p = st.slots + hole * st.stride
            let payload = p.load(fromByteOffset: 4, as: Int32.self)
            if payload == emptySlot { return false }
            if p.load(as: UInt32.self) == h && (0..<st.wordCount).allSatisfy({ j in
                p.load(fromByteOffset: slotHeader + 8 * j, as: UInt64.self) == key[Int(st.words[j])] & st.mask[j]
            }) {
                guard isRemoved(RuleIndex(rawValue: payload)) else { return false }
                break
            }
            hole = (hole + 1) & st.slotMask
        }
        var next = (hole + 1) & st.slotMask
        while true {
            let q = st.slots + next * st.stride
            if q.load(fromByteOffset: 4, as: Int32.self) == emptySlot { break }
            let home = Int(q.load(as: UInt32.self)) & st.slotMask
            // The entry at `next` may fill the hole unless its home lies cyclically in (hole, next].
            let staysPut = hole <= next ? (hole < home && home <= next) : (hole < home || home <= next)
            if !staysPut {
                (st.slots + hole * st.stride).copyMemory(from: q, byteCount: st.stride)
                st.signatures![hole] = st.signatures![next]
                hole = next
            }
            next = (next + 1) & st.slotMask
        }
        (st.slots + hole * st.stride).storeBytes(of: emptySlot, toByteOffset: 4, as: Int32.self)
        st.signatures![hole] = 0
        st.entryCount -= 1
        return true
    }

    /// The words any rule looks at, as the arrays the cache and lookups walk: (set, masks, word
    /// indices, count).
    /// The bits set in `a` or in `b`.
    private static func either(_ a: FlowKey, _ b: FlowKey) -> FlowKey {
        var result = a
        for w in 0..<FlowKey.wordCount { result[word: w] |= b[word: w] }
        return result
    }

    private static func unionArrays(_ union: FlowKey)
        -> (WordSet, UnsafeMutablePointer<UInt64>, UnsafeMutablePointer<UInt8>, Int) {
        let words = WordSet(mask: union)
        let indices = words.indices
        let masks = UnsafeMutablePointer<UInt64>.allocate(capacity: max(indices.count, 1))
        let wordIndices = UnsafeMutablePointer<UInt8>.allocate(capacity: max(indices.count, 1))
        for (j, w) in indices.enumerated() {
            wordIndices[j] = UInt8(w)
            masks[j] = union[word: w]
        }
        return (words, masks, wordIndices, indices.count)
    }

    /// A subtable for `mask` with `capacity` (a power of two) empty slots.
    private static func emptySubtable(mask: FlowKey, capacity: Int) -> Subtable {
        let indices = WordSet(mask: mask).indices
        let stride = slotHeader + 8 * indices.count
        var st = Subtable(
            mask: .allocate(capacity: max(indices.count, 1)), words: .allocate(capacity: max(indices.count, 1)),
            wordCount: indices.count, maxPriority: -1, slotMask: capacity - 1, stride: stride,
            slots: .allocate(byteCount: capacity * stride, alignment: 64), entryCount: 0)
        for (j, w) in indices.enumerated() {
            st.words[j] = UInt8(w)
            st.mask[j] = mask[word: w]
        }
        for slot in 0..<capacity {
            st.slots.storeBytes(of: emptySlot, toByteOffset: slot * stride + 4, as: Int32.self)
        }
        st.signatures = emptySignatures(capacity)
        return st
    }

    /// `capacity` signatures, all 0 (every slot empty), on their own cache lines.
    private static func emptySignatures(_ capacity: Int) -> UnsafeMutablePointer<UInt32> {
        let signatures = UnsafeMutableRawPointer.allocate(byteCount: capacity * 4, alignment: 64)
            .bindMemory(to: UInt32.self, capacity: capacity)
        signatures.initialize(repeating: 0, count: capacity)
        return signatures
    }

    /// A fresh copy of the `count` elements at `source`, with room for one at least (as every
    /// array of a table has): a derived table owns all its memory and frees it alone.
    private static func copy<Element>(_ source: UnsafeMutablePointer<Element>, count: Int) -> UnsafeMutablePointer<Element> {
        let result = UnsafeMutablePointer<Element>.allocate(capacity: max(count, 1))
        result.initialize(from: source, count: count)
        return result
    }

    /// `source` with copies of all its memory (masks, word indices, slots, signatures), for a
    /// derived table to change and free on its own.
    private static func copy(_ source: Subtable) -> Subtable {
        var st = source
        st.mask = copy(source.mask, count: source.wordCount)
        st.words = copy(source.words, count: source.wordCount)
        let bytes = (source.slotMask + 1) * source.stride
        st.slots = .allocate(byteCount: bytes, alignment: 64)
        st.slots.copyMemory(from: source.slots, byteCount: bytes)
        st.signatures = copySignatures(source)
        return st
    }

    /// A copy of `source`'s signatures, for a subtable copied from it.
    private static func copySignatures(_ source: Subtable) -> UnsafeMutablePointer<UInt32> {
        let capacity = source.slotMask + 1
        let signatures = emptySignatures(capacity)
        signatures.update(from: source.signatures!, count: capacity)
        return signatures
    }

    /// Doubles `st`'s slots, re-placing every entry (its stored words are already masked).
    private static func grow(_ st: inout Subtable) {
        let oldSlots = st.slots
        let oldCapacity = st.slotMask + 1
        let capacity = oldCapacity * 2
        st.slots = .allocate(byteCount: capacity * st.stride, alignment: 64)
        st.signatures?.deallocate()
        st.signatures = emptySignatures(capacity)
        st.slotMask = capacity - 1
        for slot in 0..<capacity {
            st.slots.storeBytes(of: emptySlot, toByteOffset: slot * st.stride + 4, as: Int32.self)
        }
        for slot in 0..<oldCapacity {
            let from = oldSlots + slot * st.stride
            guard from.load(fromByteOffset: 4, as: Int32.self) != emptySlot else { continue }
            var to = Int(from.load(as: UInt32.self)) & st.slotMask
            while (st.slots + to * st.stride).load(fromByteOffset: 4, as: Int32.self) != emptySlot {
                to = (to + 1) & st.slotMask
            }
            (st.slots + to * st.stride).copyMemory(from: from, byteCount: st.stride)
            st.signatures![to] = signature(from.load(as: UInt32.self))
        }
        oldSlots.deallocate()
    }

    private static func insert(into st: inout Subtable, key: UnsafePointer<UInt64>, payload: Int32, rank: UInt32, priority: Int32) {
        insert(into: &st, key: key, hash: hashWords(key, st.mask, st.words, st.wordCount), payload: payload, rank: rank, priority: priority)
    }

    /// `insert(into:key:payload:rank:priority:)` with the key's hash in the subtable already made.
    private static func insert(
        into st: inout Subtable, key: UnsafePointer<UInt64>, hash h: UInt32, payload: Int32, rank: UInt32, priority: Int32
    ) {
        var slot = Int(h) & st.slotMask
        while true {
            let p = st.slots + slot * st.stride
            if p.load(fromByteOffset: 4, as: Int32.self) == emptySlot { break }
            if p.load(as: UInt32.self) == h && (0..<st.wordCount).allSatisfy({ j in
                p.load(fromByteOffset: slotHeader + 8 * j, as: UInt64.self) == key[Int(st.words[j])] & st.mask[j]
            }) {
                // Same match: only the better-ranked rule can ever win.
                if rank < p.load(fromByteOffset: 8, as: UInt32.self) {
                    p.storeBytes(of: payload, toByteOffset: 4, as: Int32.self)
                    p.storeBytes(of: rank, toByteOffset: 8, as: UInt32.self)
                    p.storeBytes(of: priority, toByteOffset: 12, as: Int32.self)
                    st.maxPriority = max(st.maxPriority, priority)
                }
                return
            }
            slot = (slot + 1) & st.slotMask
        }
        let p = st.slots + slot * st.stride
        p.storeBytes(of: h, as: UInt32.self)
        st.signatures![slot] = signature(h)
        p.storeBytes(of: payload, toByteOffset: 4, as: Int32.self)
        p.storeBytes(of: rank, toByteOffset: 8, as: UInt32.self)
        p.storeBytes(of: priority, toByteOffset: 12, as: Int32.self)
        for j in 0..<st.wordCount {
            p.storeBytes(of: key[Int(st.words[j])] & st.mask[j], toByteOffset: slotHeader + 8 * j, as: UInt64.self)
        }
        st.maxPriority = max(st.maxPriority, priority)
        st.entryCount += 1
    }

    deinit {
        for i in 0..<subtableCount {
            let st = subtables[i]
            st.mask.deallocate()
            st.words.deallocate()
            st.slots.deallocate()
            st.signatures?.deallocate()
        }
        subtables.deallocate()
        unionMask.deallocate()
        unionWords.deallocate()
        exactMatchMask.deallocate()
        exactMatchWords.deallocate()
    }

    /// The best matching rule, or `.miss`.
    @inline(__always)
    public func lookup(_ key: UnsafePointer<FlowKey>) -> RuleIndex {
        key.withMemoryRebound(to: UInt64.self, capacity: FlowKey.wordCount) { lookupWords($0) }
    }

    /// How many subtables ahead of the one being probed have their home slot hashed and
    /// prefetched: enough to overlap the misses of a big table, few enough that an early exit
    /// wastes little.
    static let prefetchDistance = 4

    @inline(__always)
    func lookupWords(_ key: UnsafePointer<UInt64>) -> RuleIndex {
        var ring: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &ring) { raw -> RuleIndex in
            let hashes = raw.baseAddress!.assumingMemoryBound(to: UInt32.self)
            let count = subtableCount
            @inline(__always) func hashAndPrefetch(_ s: Int) {
                let st = subtables + s
                let h = hashWords(key, st.pointee.mask, st.pointee.words, st.pointee.wordCount)
                hashes[s & (Self.prefetchDistance - 1)] = h
                vs_prefetch(st.pointee.signatures! + (Int(h) & st.pointee.slotMask))
            }
            for s in 0..<min(count, Self.prefetchDistance) { hashAndPrefetch(s) }
            var bestRank = UInt32.max
            var bestPriority: Int32 = -1
            var bestRule = RuleIndex.miss
            for s in 0..<count {
                let st = subtables + s
                // Equal priority may still win a tie on rank, so only strictly lower priorities stop us.
                if st.pointee.maxPriority < bestPriority { break }
                let h = hashes[s & (Self.prefetchDistance - 1)]
                if s + Self.prefetchDistance < count { hashAndPrefetch(s + Self.prefetchDistance) }
                let slot = st.pointee.firstCandidate(h, from: Int(h) & st.pointee.slotMask)
                if slot >= 0, let (rank, priority, rule) = st.pointee.probe(key, h, from: slot), rank < bestRank {
                    bestRank = rank
                    bestPriority = priority
                    bestRule = rule
                }
            }
            return bestRule
        }
    }

    /// The subtables' slot and signature bytes.
    static func memoryBytes(of subtables: [Subtable]) -> Int {
        subtables.reduce(0) { $0 + ($1.slotMask + 1) * ($1.stride + 4) }   // slots and their signatures
    }
}
