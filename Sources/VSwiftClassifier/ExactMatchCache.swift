import CSupport
import VSwiftPacket

/// A worker's exact-match cache in front of the classifier: remembers the result for the exact
/// values of the words any rule looks at, so a hit costs one hash over those words and one compare.
///
/// Layout: slots of one cache line each — table tag, hash, rule index, then up to `wordsPerEntry`
/// masked key words — so a hit or a rejection touches one line, and the hash rejects another flow
/// without comparing words. A table whose rules look at more words (up to `maxWords`) uses an
/// aligned pair of slots as one *unit*: the second holds the remaining words under the tag
/// `version | continuation`, which no single-slot lookup can match; a single-slot insertion over
/// it breaks the pair, so the pair then misses. Wider tables bypass the cache.
///
/// Placement (cf. OVS's EMC, which probes two positions per hash): a key may sit in four units,
/// two 2-unit buckets — `a` from the hash's low bits and its neighbour `a ^ 1` (same 128-byte
/// block), `b` from the high bits and `b ^ 1`. A lookup compares them in that order; an insertion
/// takes the first that is empty or of another table version. Direct-mapped, 60,000 active flows
/// in 65,536 slots hit 61 % (colliding flows evict each other); with two buckets of two nearly all
/// of them find a unit of their own (pipeline `flows-1M-60k`: hit rate 96.4 %).
///
/// The key is the words of the union of the table's masks, plus the table's `exactMatchAlso`
/// bits: a datapath with the XDP flow cache adds the megaflow shape there (in_port, dl_type, VLAN
/// present bits, nw_proto, nw_frag; nw_ttl when a rule decrements it), so two flows whose XDP
/// entries differ never share a cache entry and each misses once, to be handed over.
///
/// Entries are tagged with the table's globally unique version; a new table version (or another
/// bridge's table) never hits a stale entry. Fixed size, raw memory: nothing allocated per packet.
///
/// Insertion policy (cf. OVS `emc-insert-inv-prob`): a miss always takes an empty unit or one of
/// another table version. When all four hold live entries it evicts one of them (at random)
/// always while the cache works, but once more than half of a window of lookups missed (more
/// active flows than slots, or a scan) only with probability 1/`thrashInsertionInverse`, until
/// fewer than a quarter miss. The entries then stay put and keep hitting, instead of colliding
/// flows evicting each other on every pass; the flows that keep coming back still get in, and a
/// stream of flows that do not come back soon pays for no line written and never read.
// @unchecked: raw memory owned by one worker (or one caller): created with it, used by its thread
// only, freed (deinit) after that thread is joined; never shared. Noncopyable: the one owner.
public struct ExactMatchCache: ~Copyable, @unchecked Sendable {
    public static let wordsPerEntry = 6
    public static let maxWords = 2 * wordsPerEntry
    /// Tag bit of the second slot of a pair (versions never reach it).
    static let continuation: UInt64 = 1 << 63
    /// Lookups per window of the thrash detector.
    static let window = 4096

    struct Entry {
        var tag: UInt64 = 0           // table version; 0 = empty
        var hash: UInt32 = 0
        var rule: RuleIndex = .miss
        var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
    }

    let entries: UnsafeMutablePointer<Entry>
    /// Per slot, for the unit starting there: `meta(hash, version)` of the entry it holds (0:
    /// empty, also the second slot of a pair). A filter in front of the entries, 16 to a line (256
    /// KiB at the default size, so it stays in L2): a lookup reads a unit's line only when its
    /// meta matches, so a miss touches no entry line, and an insertion finds a unit of another
    /// version without reading four.
    let metas: UnsafeMutablePointer<UInt32>
    /// Slots - 1.
    let mask: Int
    let scratch: ClassifierBurstScratch
    /// Per key of a burst: its hash over the table's words (the classifier's scratch is reused
    /// for subtable hashes while these are still needed for insertion).
    let burstHashes: UnsafeMutablePointer<UInt32>
    public let thrashInsertionInverse: UInt64
    public private(set) var hits: UInt64 = 0
    public private(set) var misses: UInt64 = 0
    /// Where the keys the last `lookup(burst:...)` missed are in its `keys` (as many as `misses`
    /// grew by): the XDP flow cache's installer is handed those (Worker+FlowCacheInstall.swift).
    public var burstMissIndices: UnsafePointer<UInt8> { UnsafePointer(scratch.misses) }
    /// True while the last window's lookups mostly missed: insertion is then probabilistic.
    public private(set) var thrashing = false
    private var windowLookups = 0
    private var windowMisses = 0
    private var random: UInt64 = 0x2545_F491_4F6C_DD1D

    /// `capacity` slots (a power of two, at least 2); `thrashInsertionInverse` a power of two (1:
    /// always insert). The default, 65,536 slots (4 MiB, like OVS's per-thread EMC + SMC), holds
    /// most of 60,000 active flows; at 8,192 slots such a load thrashed (pipeline `flows-1M-60k`:
    /// 236–241 ns/packet against 180–204 at 65,536, alternating runs, when the cache was
    /// direct-mapped).
    public init(capacity: Int = 65536, thrashInsertionInverse: UInt64 = 32) {
        precondition(capacity.nonzeroBitCount == 1 && capacity >= 2)
        precondition(thrashInsertionInverse.nonzeroBitCount == 1)
        precondition(MemoryLayout<Entry>.stride == 64)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: capacity * 64, alignment: 64)
        entries = raw.bindMemory(to: Entry.self, capacity: capacity)
        entries.initialize(repeating: Entry(), count: capacity)
        metas = UnsafeMutableRawPointer.allocate(byteCount: capacity * 4, alignment: 64).bindMemory(to: UInt32.self, capacity: capacity)
        metas.initialize(repeating: 0, count: capacity)
        mask = capacity - 1
        scratch = ClassifierBurstScratch()
        burstHashes = .allocate(capacity: ClassifierBurstScratch.capacity)
        self.thrashInsertionInverse = thrashInsertionInverse
    }

    /// The cache owns its memory (noncopyable): freed here, with its scratch (by the scratch's own deinit).
    deinit {
        UnsafeMutableRawPointer(entries).deallocate()
        UnsafeMutableRawPointer(metas).deallocate()
        burstHashes.deallocate()
    }

    /// Classifies `key` against `table`, through the cache.
    @inline(__always)
    public mutating func lookup(_ key: UnsafePointer<FlowKey>, in table: ClassifierTable) -> RuleIndex {
        let count = table.exactMatchWordCount
        return key.withMemoryRebound(to: UInt64.self, capacity: FlowKey.wordCount) { k -> RuleIndex in
            guard count <= Self.maxWords else {
                misses &+= 1
                return table.lookupWords(k)
            }
            let h = hashWords(k, table.exactMatchMask, table.exactMatchWords, count)
            let wide = count > Self.wordsPerEntry
            let found = find(k, h, wide: wide, table)
            if found >= 0 {
                hits &+= 1
                account(lookups: 1, misses: 0)
                return entries[found].rule
            }
            misses &+= 1
            account(lookups: 1, misses: 1)
            let rule = table.lookupWords(k)
            let s = victim(h, wide: wide, table)
            if s >= 0 { insert(s, k, h, rule, table) }
            return rule
        }
    }

    /// Classifies `keys[0..<count]` (count ≤ `ClassifierBurstScratch.capacity`) against `table`,
    /// writing each one's rule (or `.miss`) to `results`. Same answers as `lookup` key by key.
    ///
    /// Three passes, so the cache's misses overlap: hash every key and prefetch its metas; find
    /// each key's unit by meta and prefetch its line; compare. The keys the cache misses go to
    /// the classifier together (`ClassifierTable.lookup(burst:...)`).
    @inline(__always)
    public mutating func lookup(burst keys: UnsafePointer<FlowKey>, count: Int, in table: ClassifierTable,
                                results: UnsafeMutablePointer<RuleIndex>) {
        precondition(count <= ClassifierBurstScratch.capacity)
        let wordCount = table.exactMatchWordCount
        let words = UnsafeRawPointer(keys).assumingMemoryBound(to: UInt64.self)
        let candidates = scratch.candidates
        guard wordCount <= Self.maxWords else {
            for i in 0..<count { scratch.misses[i] = UInt8(i) }
            misses &+= UInt64(count)
            table.lookup(burst: keys, which: scratch.misses, count: count, results: results, scratch: scratch)
            return
        }
        let wide = wordCount > Self.wordsPerEntry
        for i in 0..<count {
            let h = hashWords(words + i &* FlowKey.wordCount, table.exactMatchMask, table.exactMatchWords, wordCount)
            burstHashes[i] = h
            // The usual burst is one busy flow: a key hashing as the one before shares its units.
            if i > 0 && h == burstHashes[i &- 1] { continue }
            vs_prefetch(metas + candidate(0, h, wide: wide))
            vs_prefetch(metas + candidate(2, h, wide: wide))
        }
        for i in 0..<count {
            let h = burstHashes[i]
            if i > 0 && h == burstHashes[i &- 1] {
                candidates[i] = candidates[i &- 1]
                continue
            }
            let s = findByMeta(h, wide: wide, table)
            candidates[i] = s
            if s >= 0 {
                vs_prefetch(entries + s)
                if wide { vs_prefetch(entries + s + 1) }
            }
        }
        var missCount = 0
        for i in 0..<count {
            let k = words + i &* FlowKey.wordCount
            var s = candidates[i]
            // Another key's meta by chance (1 in 65,536 per unit): look at every unit.
            if s >= 0 && !holds(s, k, burstHashes[i], table) { s = find(k, burstHashes[i], wide: wide, table) }
            if s >= 0 {
                results[i] = entries[s].rule
            } else {
                scratch.misses[missCount] = UInt8(i)
                missCount += 1
            }
        }
        hits &+= UInt64(count - missCount)
        misses &+= UInt64(missCount)
        account(lookups: count, misses: missCount)
        guard missCount > 0 else { return }
        if table.memoryBytes <= ClassifierTable.cacheResidentBytes {
            // Nothing to overlap: one key at a time is cheaper than the passes of a burst.
            for m in 0..<missCount {
                let i = Int(scratch.misses[m])
                results[i] = table.lookupWords(words + i &* FlowKey.wordCount)
            }
        } else {
            table.lookup(burst: keys, which: scratch.misses, count: missCount, results: results, scratch: scratch)
        }
        for m in 0..<missCount {
            let i = Int(scratch.misses[m])
            let h = burstHashes[i]
            let k = words + i &* FlowKey.wordCount
            // A flow repeated in the burst is inserted once.
            let s = victim(h, wide: wide, table)
            if s >= 0 && find(k, h, wide: wide, table) < 0 { insert(s, k, h, results[i], table) }
        }
    }

    /// Forgets `key`'s entry for `table`, if the cache holds one, so the key's next lookup misses.
    /// For a miss whose hand-over to the XDP flow cache was refused (a full ring): otherwise
    /// the flow would hit here forever and never be handed over again.
    public mutating func forget(_ key: UnsafePointer<FlowKey>, in table: ClassifierTable) {
        let count = table.exactMatchWordCount
        guard count <= Self.maxWords else { return }
        key.withMemoryRebound(to: UInt64.self, capacity: FlowKey.wordCount) { k in
            let h = hashWords(k, table.exactMatchMask, table.exactMatchWords, count)
            let s = find(k, h, wide: count > Self.wordsPerEntry, table)
            // A meta of 0 is no unit's (every meta has bit 16 set): the slot is free again.
            if s >= 0 { metas[s] = 0 }
        }
    }

    // MARK: Units

    /// The first slot of candidate unit `c` (0..<4) of hash `h`: units `a`, `a ^ 1`, `b`, `b ^ 1`,
    /// where `a` comes from the low half of the hash and `b` from the high half (a rotation, so a
    /// cache of more than 65,536 units still uses every bit). For a wide table a unit is a pair
    /// of slots (the first even).
    @inline(__always)
    func candidate(_ c: Int, _ h: UInt32, wide: Bool) -> Int {
        let base = c < 2 ? h : (h >> 16 | h << 16)
        let u = Int(base) ^ (c & 1)
        return (wide ? u << 1 : u) & mask
    }

    /// A unit's meta: 16 bits of signature (never all 0, mixed from the whole hash, so keys
    /// sharing a unit differ in it) over the low 16 bits of the table version.
    @inline(__always)
    static func meta(_ h: UInt32, _ version: UInt64) -> UInt32 {
        ((h &* 0x9E37_79B1) & 0xFFFF_0000) | 0x1_0000 | (UInt32(truncatingIfNeeded: version) & 0xFFFF)
    }

    /// The first candidate unit whose meta is that of `h`, or -1 (then the cache holds no key
    /// with hash `h`).
    @inline(__always)
    func findByMeta(_ h: UInt32, wide: Bool, _ table: ClassifierTable) -> Int {
        let expected = Self.meta(h, table.version)
        for c in 0..<4 {
            let s = candidate(c, h, wide: wide)
            if metas[s] == expected { return s }
        }
        return -1
    }

    /// The first slot of the unit holding `k` (hash `h`) for `table`, or -1.
    @inline(__always)
    func find(_ k: UnsafePointer<UInt64>, _ h: UInt32, wide: Bool, _ table: ClassifierTable) -> Int {
        let expected = Self.meta(h, table.version)
        for c in 0..<4 {
            let s = candidate(c, h, wide: wide)
            if metas[s] == expected && holds(s, k, h, table) { return s }
        }
        return -1
    }

    /// Byte offset of masked word `j` from a slot (pair) start: words past the first slot's
    /// continue after the second slot's 16-byte header.
    @inline(__always)
    static func wordOffset(_ j: Int) -> Int {
        j < wordsPerEntry ? 16 &+ 8 &* j : 32 &+ 8 &* j
    }

    @inline(__always)
    func holds(_ s: Int, _ k: UnsafePointer<UInt64>, _ h: UInt32, _ table: ClassifierTable) -> Bool {
        let entry = entries + s
        let tag = table.version
        guard entry.pointee.tag == tag && entry.pointee.hash == h else { return false }
        let count = table.exactMatchWordCount
        if count > Self.wordsPerEntry && (entry + 1).pointee.tag != tag | Self.continuation { return false }
        let raw = UnsafeRawPointer(entry)
        for j in 0..<count where k[Int(table.exactMatchWords[j])] & table.exactMatchMask[j]
            != raw.load(fromByteOffset: Self.wordOffset(j), as: UInt64.self) {
            return false
        }
        return true
    }

    @inline(__always)
    func insert(_ s: Int, _ k: UnsafePointer<UInt64>, _ h: UInt32, _ rule: RuleIndex, _ table: ClassifierTable) {
        let entry = entries + s
        let count = table.exactMatchWordCount
        entry.pointee.tag = table.version
        entry.pointee.hash = h
        entry.pointee.rule = rule
        metas[s] = Self.meta(h, table.version)
        if count > Self.wordsPerEntry {
            (entry + 1).pointee.tag = table.version | Self.continuation
            metas[s + 1] = 0
        }
        let raw = UnsafeMutableRawPointer(entry)
        for j in 0..<count {
            raw.storeBytes(of: k[Int(table.exactMatchWords[j])] & table.exactMatchMask[j], toByteOffset: Self.wordOffset(j), as: UInt64.self)
        }
    }

    // MARK: Insertion policy

    @inline(__always)
    private mutating func account(lookups: Int, misses: Int) {
        windowLookups &+= lookups
        windowMisses &+= misses
        if windowLookups >= Self.window {
            // Hysteresis: a cache that holds its entries under thrash may settle between the two.
            if windowMisses * 2 > windowLookups {
                thrashing = true
            } else if windowMisses * 4 < windowLookups {
                thrashing = false
            }
            windowLookups = 0
            windowMisses = 0
        }
    }

    /// The unit (first slot) a miss of hash `h` goes to, or -1 when the policy keeps it out: the
    /// first candidate not holding an entry of this table version (by its meta: an entry 65,536
    /// versions old counts as live, which only steers the choice), else one chosen at random
    /// (while thrashing, only with probability 1/`thrashInsertionInverse`). xorshift64: cheap,
    /// deterministic across runs.
    @inline(__always)
    private mutating func victim(_ h: UInt32, wide: Bool, _ table: ClassifierTable) -> Int {
        let version = UInt32(truncatingIfNeeded: table.version) & 0xFFFF
        for c in 0..<4 {
            let s = candidate(c, h, wide: wide)
            if metas[s] & 0xFFFF != version || metas[s] == 0 { return s }
        }
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        if thrashing && (random >> 2) & (thrashInsertionInverse &- 1) != 0 { return -1 }
        return candidate(Int(random & 3), h, wide: wide)
    }
}
