import CSupport
import VSwiftPacket

/// A worker's exact-match cache in front of the classifier: remembers the result for the exact
/// values of the words any rule looks at, so a hit costs one hash over those words and one compare.
///
/// Layout: direct-mapped slots of one cache line each — table tag, hash, payload, then up to
/// `wordsPerEntry` masked key words — so a hit or a rejection touches one line, and the hash
/// rejects another flow without comparing words. A table whose rules look at more words (up to
/// `maxWords`) uses an aligned pair of slots: the second holds the remaining words under the tag
/// `version | continuation`, which no single-slot lookup can match; a single-slot insertion over
/// it breaks the pair, so the pair then misses. Wider tables bypass the cache.
///
/// Entries are tagged with the table's globally unique version; a new table version (or another
/// bridge's table) never hits a stale entry. Fixed size, raw memory: nothing allocated per packet.
///
/// Insertion policy (cf. OVS `emc-insert-inv-prob`): a miss always takes an empty slot or one of
/// another table version. It evicts a live entry always while the cache works, but once more than
/// half of a window of lookups missed (more active flows than slots, or a scan) only with
/// probability 1/`thrashInsertionInverse`, until fewer than a quarter miss. The entries then stay
/// put and keep hitting, instead of colliding flows evicting each other on every pass; the flows
/// that keep coming back still get in, and a stream of flows that do not come back soon pays for
/// no line written and never read.
public struct ExactMatchCache: @unchecked Sendable {
    public static let wordsPerEntry = 6
    public static let maxWords = 2 * wordsPerEntry
    /// Tag bit of the second slot of a pair (versions never reach it).
    static let continuation: UInt64 = 1 << 63
    /// Lookups per window of the thrash detector.
    static let window = 4096

    struct Entry {
        var tag: UInt64 = 0           // table version; 0 = empty
        var hash: UInt32 = 0
        var payload: Int32 = -1
        var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
    }

    let entries: UnsafeMutablePointer<Entry>
    let mask: Int
    let scratch: ClassifierBurstScratch
    /// Per key of a burst: its hash over the table's words (the classifier's scratch is reused
    /// for subtable hashes while these are still needed for insertion).
    let burstHashes: UnsafeMutablePointer<UInt32>
    public let thrashInsertionInverse: UInt64
    public private(set) var hits: UInt64 = 0
    public private(set) var misses: UInt64 = 0
    /// True while the last window's lookups mostly missed: insertion is then probabilistic.
    public private(set) var thrashing = false
    private var windowLookups = 0
    private var windowMisses = 0
    private var random: UInt64 = 0x2545_F491_4F6C_DD1D

    /// `capacity` slots (a power of two, at least 2); `thrashInsertionInverse` a power of two (1:
    /// always insert). The default, 65,536 slots (4 MiB, like OVS's per-thread EMC + SMC), holds
    /// most of 60,000 active flows; at 8,192 slots such a load thrashed (pipeline `flows-1M-60k`:
    /// 236–241 ns/packet against 180–204 at 65,536, alternating runs).
    public init(capacity: Int = 65536, thrashInsertionInverse: UInt64 = 32) {
        precondition(capacity.nonzeroBitCount == 1 && capacity >= 2)
        precondition(thrashInsertionInverse.nonzeroBitCount == 1)
        precondition(MemoryLayout<Entry>.stride == 64)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: capacity * 64, alignment: 64)
        entries = raw.bindMemory(to: Entry.self, capacity: capacity)
        entries.initialize(repeating: Entry(), count: capacity)
        mask = capacity - 1
        scratch = ClassifierBurstScratch()
        burstHashes = .allocate(capacity: ClassifierBurstScratch.capacity)
        self.thrashInsertionInverse = thrashInsertionInverse
    }

    public func destroy() {
        UnsafeMutableRawPointer(entries).deallocate()
        scratch.destroy()
        burstHashes.deallocate()
    }

    /// Classifies `key` against `table`, through the cache.
    @inline(__always)
    public mutating func lookup(_ key: UnsafePointer<FlowKey>, in table: ClassifierTable) -> Int32 {
        let count = table.unionWordCount
        return key.withMemoryRebound(to: UInt64.self, capacity: FlowKey.wordCount) { k -> Int32 in
            guard count <= Self.maxWords else {
                misses &+= 1
                return table.lookupWords(k)
            }
            let h = hashWords(k, table.unionMask, table.unionWords, count)
            let entry = slot(h, wide: count > Self.wordsPerEntry)
            if holds(entry, k, h, table) {
                hits &+= 1
                account(lookups: 1, misses: 0)
                return entry.pointee.payload
            }
            misses &+= 1
            account(lookups: 1, misses: 1)
            let payload = table.lookupWords(k)
            if admits(entry, table) { insert(entry, k, h, payload, table) }
            return payload
        }
    }

    /// Classifies `keys[0..<count]` (count ≤ `ClassifierBurstScratch.capacity`) against `table`,
    /// writing each payload (-1: no match) to `results`. Same answers as `lookup` key by key.
    ///
    /// All keys are hashed and their slots prefetched before the first is compared, so the cache's
    /// misses overlap; the keys the cache misses go to the classifier together
    /// (`ClassifierTable.lookup(burst:...)`).
    @inline(__always)
    public mutating func lookup(burst keys: UnsafePointer<FlowKey>, count: Int, in table: ClassifierTable,
                                results: UnsafeMutablePointer<Int32>) {
        precondition(count <= ClassifierBurstScratch.capacity)
        let wordCount = table.unionWordCount
        let words = UnsafeRawPointer(keys).assumingMemoryBound(to: UInt64.self)
        guard wordCount <= Self.maxWords else {
            for i in 0..<count { scratch.misses[i] = UInt8(i) }
            misses &+= UInt64(count)
            table.lookup(burst: keys, which: scratch.misses, count: count, results: results, scratch: scratch)
            return
        }
        let wide = wordCount > Self.wordsPerEntry
        for i in 0..<count {
            let h = hashWords(words + i &* FlowKey.wordCount, table.unionMask, table.unionWords, wordCount)
            burstHashes[i] = h
            let entry = slot(h, wide: wide)
            vs_prefetch(entry)
            if wide { vs_prefetch(entry + 1) }
        }
        var missCount = 0
        for i in 0..<count {
            let h = burstHashes[i]
            let entry = slot(h, wide: wide)
            if holds(entry, words + i &* FlowKey.wordCount, h, table) {
                results[i] = entry.pointee.payload
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
            let entry = slot(h, wide: wide)
            if admits(entry, table) { insert(entry, words + i &* FlowKey.wordCount, h, results[i], table) }
        }
    }

    // MARK: Slots

    /// The slot for hash `h`; a pair's first slot (even) for a wide table.
    @inline(__always)
    func slot(_ h: UInt32, wide: Bool) -> UnsafeMutablePointer<Entry> {
        entries + (Int(h) & (wide ? mask & ~1 : mask))
    }

    /// Byte offset of masked word `j` from a slot (pair) start: words past the first slot's
    /// continue after the second slot's 16-byte header.
    @inline(__always)
    static func wordOffset(_ j: Int) -> Int {
        j < wordsPerEntry ? 16 &+ 8 &* j : 32 &+ 8 &* j
    }

    @inline(__always)
    func holds(_ entry: UnsafeMutablePointer<Entry>, _ k: UnsafePointer<UInt64>, _ h: UInt32, _ table: ClassifierTable) -> Bool {
        let tag = table.version
        guard entry.pointee.tag == tag && entry.pointee.hash == h else { return false }
        let count = table.unionWordCount
        if count > Self.wordsPerEntry && (entry + 1).pointee.tag != tag | Self.continuation { return false }
        let raw = UnsafeRawPointer(entry)
        for j in 0..<count where k[Int(table.unionWords[j])] & table.unionMask[j]
            != raw.load(fromByteOffset: Self.wordOffset(j), as: UInt64.self) {
            return false
        }
        return true
    }

    @inline(__always)
    func insert(_ entry: UnsafeMutablePointer<Entry>, _ k: UnsafePointer<UInt64>, _ h: UInt32, _ payload: Int32,
                _ table: ClassifierTable) {
        let count = table.unionWordCount
        entry.pointee.tag = table.version
        entry.pointee.hash = h
        entry.pointee.payload = payload
        if count > Self.wordsPerEntry { (entry + 1).pointee.tag = table.version | Self.continuation }
        let raw = UnsafeMutableRawPointer(entry)
        for j in 0..<count {
            raw.storeBytes(of: k[Int(table.unionWords[j])] & table.unionMask[j], toByteOffset: Self.wordOffset(j), as: UInt64.self)
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

    /// Whether a miss may be inserted into `entry` (xorshift64: cheap, deterministic across runs).
    @inline(__always)
    private mutating func admits(_ entry: UnsafeMutablePointer<Entry>, _ table: ClassifierTable) -> Bool {
        guard thrashing, entry.pointee.tag == table.version else { return true }
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        return random & (thrashInsertionInverse &- 1) == 0
    }
}
