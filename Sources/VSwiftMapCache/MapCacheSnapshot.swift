import Synchronization
import VSwiftPacket

/// One entry as the snapshot is built from it.
public struct SnapshotEntry: Sendable {
    public var prefix: EIDPrefix
    /// nil: positive (locators); else the negative Map-Reply's action.
    public var negative: NegativeAction?
    public var locators: [Locator]
    /// The entry's byte in the database's `UseMarks`.
    public var markSlot: Int

    public init(prefix: EIDPrefix, negative: NegativeAction? = nil, locators: [Locator], markSlot: Int) {
        self.prefix = prefix
        self.negative = negative
        self.locators = locators
        self.markSlot = markSlot
    }
}

/// A hash-table slot: a prefix (or a marker, see below) and the best real prefix it stands for.
/// 32 bytes, two to a cache line.
struct PrefixSlot {
    /// 0: empty. Else bit 63 set, bit 62 IPv6, bits 32..<40 the length over 128 bits, low 24 bits
    /// the instance id.
    var meta: UInt64
    var high: UInt64
    var low: UInt64
    /// Index of the longest real prefix that covers this slot's (address, length): itself for a
    /// real prefix, a shorter one (or -1) for a marker.
    var best: Int32
    var isReal: Bool
}

/// Per entry, what the packet path reads after the lookup: 32 bytes, so one cache line holds
/// all of it; with a single usable locator (the common case) the RLOC itself is here.
struct EntryRecord {
    /// The RLOC when `selectionCount` is 1.
    var rloc: IPAddress
    var locatorStart: Int32
    /// Into the shared selection tables (identical tables are stored once: they depend only on
    /// the locators' priorities, weights and status, which most entries share).
    var selectionStart: Int32
    var markSlot: Int32
    /// 0 (no usable locator, or negative), 1, or `LocatorSelection.slots`.
    var selectionCount: UInt16
    var action: MapCacheAction
    var locatorCount: UInt8
}

/// The worker's view of a lookup: the action, and for `.encapsulate` the chosen RLOC.
public struct MapCacheResolution: Sendable {
    public var action: MapCacheAction
    /// The entry (-1 on a miss), for counters and `MapCacheSnapshot.prefix(of:)`.
    public var entry: Int32
    public var rloc: IPAddress
}

/// One immutable version of the map-cache, as the workers read it: longest-prefix match of an
/// inner destination within an instance id, then an RLOC chosen by flow hash (`LocatorSelection`).
///
/// Lookup is a binary search on prefix lengths over one hash table (Waldvogel, Varghese, Turner,
/// Plattner, "Scalable High Speed IP Routing Lookups", SIGCOMM 1997): the table holds every prefix
/// and, for each, *markers* — its address cut to the shorter lengths its search path visits — each
/// carrying the longest real prefix that covers it. A probe that finds something goes to longer
/// lengths, one that finds nothing to shorter ones, so a lookup costs at most ⌈log₂(lengths+1)⌉
/// probes (6 for IPv4's 33 lengths, 8 for IPv6's 129) instead of one per length present. The
/// lengths searched are those present in the family (any instance); the instance id is part of
/// every key.
///
/// Memory: raw, allocated once in `init` and never written after (except the use marks, which
/// belong to the database's `UseMarks`); the lookup allocates nothing, retains nothing, takes no
/// lock. Published to the workers as flow tables are (`CompiledFlowTable`): the control thread
/// hands the pointer over while the workers are parked and releases the previous version once
/// every worker has parked again (the park handshake is the grace period).
// @unchecked: raw memory written only in `init`; immutable once published, so any thread may read it.
public final class MapCacheSnapshot: @unchecked Sendable {
    let slots: UnsafeMutablePointer<PrefixSlot>
    let slotMask: Int
    /// Distinct lengths (over 128 bits) present, ascending: IPv4 ones at [0, 129), IPv6 ones at
    /// [129, 258).
    let lengths: UnsafeMutablePointer<UInt8>
    let lengthCountIPv4: Int
    let lengthCountIPv6: Int
    let records: UnsafeMutablePointer<EntryRecord>
    let locators: UnsafeMutablePointer<IPAddress>
    let selection: UnsafeMutablePointer<UInt8>
    let marks: UnsafeMutablePointer<Atomic<UInt8>>
    /// Keeps `marks` alive.
    let useMarks: UseMarks
    /// Entries, in the order given to `init` (control side: reports and tests).
    public let prefixes: [EIDPrefix]
    public var count: Int { prefixes.count }
    /// Slots of the hash table (prefixes and markers at most half of them).
    public var tableSlots: Int { slotMask + 1 }
    private let selectionBytes: Int
    private let locatorBytes: Int
    /// Bytes of the tables the packet path reads.
    public var memoryBytes: Int {
        tableSlots * MemoryLayout<PrefixSlot>.stride + count * MemoryLayout<EntryRecord>.stride + locatorBytes + selectionBytes
    }

    /// Builds the snapshot of `entries` (distinct prefixes; a repeated prefix keeps the last
    /// entry). Every `markSlot` must lie in `marks`.
    public init(_ entries: [SnapshotEntry], marks useMarks: UseMarks) {
        self.useMarks = useMarks
        marks = useMarks.bytes
        prefixes = entries.map(\.prefix)

        // Entry records, locators and selection tables.
        records = TableMemory.allocate(EntryRecord.self, capacity: entries.count)
        var locatorPool: [IPAddress] = []
        var selectionPool: [UInt8] = []
        var selectionStarts: [[UInt8]: Int32] = [:]
        for (index, entry) in entries.enumerated() {
            precondition(entry.markSlot >= 0 && entry.markSlot < useMarks.capacity, "mark slot out of range")
            var record = EntryRecord(
                rloc: IPAddress(high: 0, low: 0), locatorStart: Int32(locatorPool.count), selectionStart: 0,
                markSlot: Int32(entry.markSlot), selectionCount: 0, action: .encapsulate, locatorCount: 0)
            if let negative = entry.negative {
                record.action = MapCacheAction(negative)
            } else {
                let locators = entry.locators.prefix(255)
                let table = LocatorSelection.table(Array(locators))
                record.selectionCount = UInt16(table.count)
                record.locatorCount = UInt8(locators.count)
                // Every locator is kept, chosen or not: decapsulation trusts them all (`forEachLocator`).
                locatorPool += locators.map(\.address)
                if table.isEmpty {
                    record.action = .noUsableLocator
                } else if table.count == 1 {
                    record.rloc = locators[locators.startIndex + Int(table[0])].address
                } else {
                    if let start = selectionStarts[table] {
                        record.selectionStart = start
                    } else {
                        record.selectionStart = Int32(selectionPool.count)
                        selectionStarts[table] = record.selectionStart
                        selectionPool += table
                    }
                }
            }
            (records + index).initialize(to: record)
        }
        locators = TableMemory.allocate(IPAddress.self, capacity: locatorPool.count)
        locators.initialize(from: locatorPool, count: locatorPool.count)
        selection = TableMemory.allocate(UInt8.self, capacity: selectionPool.count)
        selection.initialize(from: selectionPool, count: selectionPool.count)
        selectionBytes = selectionPool.count
        locatorBytes = locatorPool.count * MemoryLayout<IPAddress>.stride

        // Lengths present per family.
        var present = [Bool](repeating: false, count: 258)
        for prefix in prefixes { present[(prefix.isIPv4 ? 0 : 129) + prefix.fullLength] = true }
        lengths = .allocate(capacity: 258)
        lengths.initialize(repeating: 0, count: 258)
        var v4 = 0, v6 = 0
        for bits in 0...128 where present[bits] { lengths[v4] = UInt8(bits); v4 += 1 }
        for bits in 0...128 where present[129 + bits] { lengths[129 + v6] = UInt8(bits); v6 += 1 }
        lengthCountIPv4 = v4
        lengthCountIPv6 = v6

        // The table: real prefixes first, then the markers on each one's search path.
        var table = SlotTable(expected: entries.count * 2)
        for (index, prefix) in prefixes.enumerated() {
            let key = Self.key(prefix.instanceID, prefix.address, prefix.isIPv4, prefix.fullLength)
            table.insert(key, best: Int32(index), isReal: true)
        }
        for prefix in prefixes {
            let (base, count) = prefix.isIPv4 ? (0, v4) : (129, v6)
            let target = prefix.fullLength
            var lo = 0, hi = count - 1
            while lo <= hi {
                let mid = (lo + hi) >> 1
                let bits = Int(lengths[base + mid])
                if bits == target { break }
                if bits > target {
                    hi = mid - 1
                    continue
                }
                lo = mid + 1
                let key = Self.key(prefix.instanceID, prefix.address, prefix.isIPv4, bits)
                if table.find(key) != nil { continue }
                // The marker stands for the longest real prefix of length <= bits covering it.
                var best: Int32 = -1
                var j = mid
                while j >= 0 {
                    if let slot = table.find(Self.key(prefix.instanceID, prefix.address, prefix.isIPv4, Int(lengths[base + j]))),
                        table.slots[slot].isReal
                    {
                        best = table.slots[slot].best
                        break
                    }
                    j -= 1
                }
                table.insert(key, best: best, isReal: false)
            }
        }
        slots = table.slots
        slotMask = table.mask
    }

    deinit {
        TableMemory.free(slots)
        lengths.deallocate()
        TableMemory.free(records)
        TableMemory.free(locators)
        TableMemory.free(selection)
    }

    // MARK: The packet path

    /// The entry whose prefix is the longest covering `destination` in instance `instanceID`
    /// (low 24 bits), or -1.
    @inline(__always)
    public func lookup(instanceID: UInt32, destination: IPAddress) -> Int32 {
        let isIPv4 = destination.isIPv4
        let base = isIPv4 ? 0 : 129
        var lo = 0
        var hi = (isIPv4 ? lengthCountIPv4 : lengthCountIPv6) - 1
        var best: Int32 = -1
        while lo <= hi {
            let mid = (lo + hi) >> 1
            let bits = Int(lengths[base + mid])
            let key = Self.key(instanceID, destination, isIPv4, bits)
            var i = Int(truncatingIfNeeded: key.hash) & slotMask
            var found = false
            while true {
                let slot = slots + i
                let meta = slot.pointee.meta
                if meta == 0 { break }
                if meta == key.meta && slot.pointee.low == key.low && slot.pointee.high == key.high {
                    found = true
                    if slot.pointee.best >= 0 { best = slot.pointee.best }
                    break
                }
                i = (i + 1) & slotMask
            }
            if found { lo = mid + 1 } else { hi = mid - 1 }
        }
        return best
    }

    /// What to do with a packet for `entry` (`.miss` for -1).
    @inline(__always)
    public func action(of entry: Int32) -> MapCacheAction {
        entry < 0 ? .miss : records[Int(entry)].action
    }

    /// The RLOC for a flow of hash `flowHash` to `entry`, whose action is `.encapsulate`.
    @inline(__always)
    public func locator(of entry: Int32, flowHash: UInt64) -> IPAddress {
        let record = records[Int(entry)]
        if record.selectionCount == 1 { return record.rloc }
        // Multiply-shift of the hash's high half: an index below the count without a division.
        let index = Int(truncatingIfNeeded: ((flowHash >> 32) &* UInt64(record.selectionCount)) >> 32)
        return locators[Int(record.locatorStart) + Int(selection[Int(record.selectionStart) + index])]
    }

    /// Records that `entry` was used (for the database's refresh and LRU).
    @inline(__always)
    public func markUsed(_ entry: Int32) {
        UseMarks.mark(marks, Int(records[Int(entry)].markSlot))
    }

    /// Lookup, use mark and RLOC choice in one: what a worker does per packet on the encap path.
    @inline(__always)
    public func resolve(instanceID: UInt32, destination: IPAddress, flowHash: UInt64) -> MapCacheResolution {
        let entry = lookup(instanceID: instanceID, destination: destination)
        guard entry >= 0 else { return MapCacheResolution(action: .miss, entry: -1, rloc: IPAddress(high: 0, low: 0)) }
        markUsed(entry)
        let action = records[Int(entry)].action
        let rloc = action == .encapsulate ? locator(of: entry, flowHash: flowHash) : IPAddress(high: 0, low: 0)
        return MapCacheResolution(action: action, entry: entry, rloc: rloc)
    }

    // MARK: Keys

    struct Key {
        var meta: UInt64
        var high: UInt64
        var low: UInt64

        @inline(__always)
        var hash: UInt64 {
            var h = meta &* 0x9E37_79B9_7F4A_7C15
            h = (h ^ high) &* 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 32
            h = (h ^ low) &* 0xC4CE_B9FE_1A85_EC53
            return h ^ (h >> 29)
        }
    }

    @inline(__always)
    static func key(_ instanceID: UInt32, _ address: IPAddress, _ isIPv4: Bool, _ bits: Int) -> Key {
        let masked = EIDPrefix.masked(address, toBits: bits)
        let meta = 1 << 63 | (isIPv4 ? 0 : 1 << 62) | UInt64(bits) << 32 | UInt64(instanceID & EIDPrefix.maxInstanceID)
        return Key(meta: meta, high: masked.high, low: masked.low)
    }
}

/// The open-addressing table while a snapshot is built: linear probing, at most half full
/// (doubled and rehashed when it would be more).
struct SlotTable {
    var slots: UnsafeMutablePointer<PrefixSlot>
    var mask: Int
    var used = 0

    init(expected: Int) {
        var capacity = 16
        while capacity < expected * 2 { capacity <<= 1 }
        slots = TableMemory.allocate(PrefixSlot.self, capacity: capacity)
        slots.initialize(repeating: PrefixSlot(meta: 0, high: 0, low: 0, best: -1, isReal: false), count: capacity)
        mask = capacity - 1
    }

    func find(_ key: MapCacheSnapshot.Key) -> Int? {
        var i = Int(truncatingIfNeeded: key.hash) & mask
        while slots[i].meta != 0 {
            if slots[i].meta == key.meta && slots[i].high == key.high && slots[i].low == key.low { return i }
            i = (i + 1) & mask
        }
        return nil
    }

    /// Inserts `key` or, when present, overwrites its slot.
    mutating func insert(_ key: MapCacheSnapshot.Key, best: Int32, isReal: Bool) {
        if (used + 1) * 2 > mask + 1 { grow() }
        var i = Int(truncatingIfNeeded: key.hash) & mask
        while slots[i].meta != 0 {
            if slots[i].meta == key.meta && slots[i].high == key.high && slots[i].low == key.low { break }
            i = (i + 1) & mask
        }
        if slots[i].meta == 0 { used += 1 }
        slots[i] = PrefixSlot(meta: key.meta, high: key.high, low: key.low, best: best, isReal: isReal)
    }

    private mutating func grow() {
        let old = slots
        let oldCapacity = mask + 1
        let capacity = oldCapacity * 2
        slots = TableMemory.allocate(PrefixSlot.self, capacity: capacity)
        slots.initialize(repeating: PrefixSlot(meta: 0, high: 0, low: 0, best: -1, isReal: false), count: capacity)
        mask = capacity - 1
        for j in 0..<oldCapacity where old[j].meta != 0 {
            let key = MapCacheSnapshot.Key(meta: old[j].meta, high: old[j].high, low: old[j].low)
            var i = Int(truncatingIfNeeded: key.hash) & mask
            while slots[i].meta != 0 { i = (i + 1) & mask }
            slots[i] = old[j]
        }
        TableMemory.free(old)
    }
}
