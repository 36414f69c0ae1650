import CSupport
import Glibc
import Synchronization
import VSwiftMapCache
import VSwiftPacket

/// One inner destination's resolution, as a worker keeps it so that most packets of a flow do not
/// search the map-cache (70–250 ns at 10k–100k prefixes) but read one line: 32 bytes, two to a
/// line, two ways to a set.
///
/// `key` is `WorkerMapCache.key`: the tag (epoch, family, port) in the high half and the
/// destination's low 32 bits as on the wire in the low half. For an IPv4 destination that word
/// alone names (epoch, port, destination), so the hit path compares one word per way; an IPv6
/// destination's key has the family bit set (no IPv4 probe can equal it) and also compares
/// `high`/`low`. 0: empty (no epoch is 0).
struct MapResolution {
    var key: UInt64 = 0
    var high: UInt64 = 0
    var low: UInt64 = 0
    /// The snapshot's entry covering the destination (-1: none).
    var entry: Int32 = -1
    /// Next-hop index of the entry's lone RLOC; -1: decided per packet (several RLOCs chosen by
    /// flow hash, an entry that does not encapsulate, or a next hop not claimed yet).
    var hop: Int32 = -1

    init() {}

    init(key: UInt64, destination: IPAddress, entry: Int32, hop: Int32) {
        self.key = key
        high = destination.high
        low = destination.low
        self.entry = entry
        self.hop = hop
    }

    /// Whether this is the resolution `key` and `destination` name (`key` from `WorkerMapCache.key`).
    @inline(__always)
    func holds(_ key: UInt64, _ destination: IPAddress) -> Bool {
        self.key == key && high == destination.high && low == destination.low
    }
}

/// A worker's view of the LISP map-cache (remote_ip=map ports): the published snapshot and the
/// set of its RLOCs (both immutable, kept alive by the datapath's `MapCachePublication` until
/// every worker has moved past them), the worker's resolutions, and its queue of misses to the
/// control plane.
///
/// Resolutions are tagged with an *epoch*: a new snapshot, new next hops (their indices move),
/// changed tunnel ports and every `remarkSeconds` start a new one, so no resolution outlives what
/// it was made from, and an entry in steady use is looked up (and its use marked for the control
/// side's refresh, RFC 9301 §5.4) again every `remarkSeconds`: its use is seen within the
/// database's 60 s activity window. Epochs are 15 bits: when they wrap, every resolution is
/// cleared (`newEpoch`), so an old one never matches again.
///
/// Resolutions are per *port* (its slot in the tag), not per instance id: two `remote_ip=map`
/// ports of one instance with another `local_ip` or `dst_port` have next hops of their own.
///
/// Ownership: as the worker's tunnel tables (Worker.swift): `snapshot`, `rlocs` and the epoch are
/// set by the control thread while the worker is parked; the resolutions and `epochStarted` are
/// the worker thread's; `misses` goes from the worker (producer) to the control plane (consumer).
// @unchecked: the handover above is the park handshake's, which the compiler cannot see.
final class WorkerMapCache: @unchecked Sendable {
    /// 32,768 sets of two ways: 2 MiB, one huge page (a set is read at random per packet: on
    /// 4 KiB pages each read could also be a TLB miss, as for the UMEM and the snapshot's
    /// tables). 10,000 active destinations leave ~120 sets holding three or more (those take
    /// turns: a map-cache search, never a wrong answer).
    static let setBits = 15
    static let sets = 1 << setBits
    static let remarkSeconds: UInt64 = 20
    /// A key's tag, high half: epoch (15 bits) << 17 | family (IPv6 or other: 1) << 16 | port slot.
    static let epochShift: UInt64 = 49
    static let epochLimit: UInt64 = 1 << 15
    static let notIPv4Bit: UInt64 = 1 << 48
    /// A key's epoch bits.
    static let epochMask: UInt64 = ~((1 << epochShift) - 1)

    let resolutions: UnsafeMutablePointer<MapResolution>
    /// Per port slot: its keys' tag in the current epoch (`epochKey | slot << 32`), rewritten by
    /// `newEpoch`: the hit path makes an IPv4 key with one load and one `or`.
    let keyTags: UnsafeMutablePointer<UInt64>
    /// Per slot of the burst being classified: the set `prefetch` found, as its byte offset in
    /// `resolutions` (its number << 6: no shift where it is used) — a hint, for the hit path
    /// (`Worker.mapFrameSet`, whose key compare catches a wrong one) and `hintedHop`; 0 for a
    /// frame it could not read: at worst one useless prefetch, cheaper than a branch on every
    /// frame.
    let burstSets: UnsafeMutablePointer<Int32>
    /// A slot per burst slot and as many more as the act loop reads ahead, those never written
    /// after 0: the act loop reads the hints of slots ahead without testing for the burst's end
    /// (past it, a stale hint or 0: a set all the same).
    static let burstSetsCapacity = ClassifyBurst.capacity + max(Worker.mapSetDistance, Worker.mapHopDistance)
    /// nil until something is published: every lookup misses.
    var snapshot: Unmanaged<MapCacheSnapshot>?
    var rlocs: Unmanaged<MapCacheRLOCSet>?
    /// The epoch (1..<`epochLimit`) in its place in a key (<< `epochShift`), so that the hit path
    /// makes a key with two `or`s.
    private(set) var epochKey: UInt64 = 1 << WorkerMapCache.epochShift
    var epochStarted: UInt64 = 0
    /// Whether the worker has a `remote_ip=map` port (set with its tunnel ports, worker parked):
    /// only then are bursts' sets prefetched.
    var hasPorts = false
    /// Whether bursts' likely next hops are prefetched too (`usesManyNextHops`; worker parked).
    var prefetchesNextHops = false
    let misses = MapCacheMissRing()
    /// A trace-mode worker's record of what its lookups found (nil in a live worker).
    var traceOutcomes: UnsafeMutablePointer<MapCacheTraceRoom>?

    init() {
        resolutions = HugePageTable.allocate(MapResolution.self, capacity: Self.sets * 2)
        keyTags = .allocate(capacity: DatapathLimits.maxPorts)
        burstSets = .allocate(capacity: Self.burstSetsCapacity)
        burstSets.initialize(repeating: 0, count: Self.burstSetsCapacity)
        resolutions.initialize(repeating: MapResolution(), count: Self.sets * 2)
        keyTags.initialize(repeating: 0, count: DatapathLimits.maxPorts)
        writeKeyTags()
    }

    deinit {
        HugePageTable.free(resolutions)
        keyTags.deallocate()
        burstSets.deallocate()
        if let traceOutcomes {
            traceOutcomes.pointee.items.deallocate()
            traceOutcomes.deallocate()
        }
    }

    /// Forgets every resolution: a new epoch in the keys, no sweep — except when the 15 bits wrap
    /// (every 32,767 epochs), where all are cleared so that none from the last round can match.
    @inline(never)
    func newEpoch(now: UInt64) {
        var epoch = (epochKey >> Self.epochShift) &+ 1
        if epoch >= Self.epochLimit {
            resolutions.update(repeating: MapResolution(), count: Self.sets * 2)
            epoch = 1
        }
        epochKey = epoch << Self.epochShift
        epochStarted = now
        writeKeyTags()
    }

    /// `keyTags` for the current epoch (256 words: every 20 s and on reconfiguration).
    private func writeKeyTags() {
        for slot in 0..<DatapathLimits.maxPorts { keyTags[slot] = epochKey | UInt64(slot) << 32 }
    }

    /// The current epoch (tests).
    var epoch: UInt64 { epochKey >> Self.epochShift }

    /// The key of `destination`'s resolution for `port` in the current epoch.
    @inline(__always)
    func key(port: PortSlot, destination: IPAddress) -> UInt64 {
        if destination.isIPv4 { return key(port: port, wireIPv4: Self.wireIPv4(destination)) }
        return keyTags[port.index] | Self.notIPv4Bit | UInt64(Self.wireIPv4(destination))
    }

    /// The key of the IPv4 destination whose 4 bytes, loaded as they are on the wire, are
    /// `wireIPv4`, for `port` in the current epoch.
    @inline(__always)
    func key(port: PortSlot, wireIPv4: UInt32) -> UInt64 {
        Self.key(port: port, wireIPv4: wireIPv4, tags: keyTags)
    }

    /// `key(port:wireIPv4:)` with `keyTags` at hand.
    @inline(__always)
    static func key(port: PortSlot, wireIPv4: UInt32, tags: UnsafePointer<UInt64>) -> UInt64 {
        tags[port.index] | UInt64(wireIPv4)
    }

    /// At most this many next hops in use (the RLOCs of the `remote_ip=map` ports' instances) are
    /// not prefetched per burst by a table of many rules (`Worker.prefetchMapNextHops`; a small
    /// table's act loop prefetches each frame's own, `Worker.prefetchMapCacheAhead`): their
    /// packet-path lines (64 bytes each, 8 KiB for 128) are read again every few dozen packets
    /// and mostly stay in L1, where a prefetch loop over the burst costs more instructions than
    /// it saves (measured at 64 RLOCs, bench/results/archive/2026-12-07-lisp-map-hops.md).
    static let nextHopPrefetchThreshold = 128

    /// Whether `nextHops` next hops (at most: the RLOCs of each `remote_ip=map` port's instance,
    /// summed over the ports) are more than stay in L1 (`nextHopPrefetchThreshold`).
    static func usesManyNextHops(_ nextHops: Int) -> Bool {
        nextHops > nextHopPrefetchThreshold
    }

    /// An address's low 32 bits as a load of its 4 bytes on the wire gives them (the IPv4 address
    /// of an IPv4 one): the keys and set indices of the hit path, which loads them from the frame
    /// without a byte swap.
    @inline(__always)
    static func wireIPv4(_ address: IPAddress) -> UInt32 { UInt32(truncatingIfNeeded: address.low).bigEndian }

    /// Starts a new epoch when the current one is `remarkSeconds` old (an entry in steady use is
    /// then searched again and its use marked).
    @inline(__always)
    func renewEpochIfDue(now: UInt64) {
        if now &- epochStarted >= Self.remarkSeconds { newEpoch(now: now) }
    }

    /// The first way of set `number`.
    @inline(__always)
    func set(number: Int) -> UnsafeMutablePointer<MapResolution> {
        Self.set(number: number, in: resolutions)
    }

    /// `set(number:)` with `resolutions` at hand.
    @inline(__always)
    static func set(number: Int, in resolutions: UnsafeMutablePointer<MapResolution>) -> UnsafeMutablePointer<MapResolution> {
        // Two 32-byte ways per set: the set's byte offset is its number << 6.
        set(offset: Int32(truncatingIfNeeded: number << 6), in: resolutions)
    }

    /// The first way of the set at byte offset `offset` (a `burstSets` hint: its number << 6).
    @inline(__always)
    static func set(offset: Int32, in resolutions: UnsafeMutablePointer<MapResolution>) -> UnsafeMutablePointer<MapResolution> {
        UnsafeMutableRawPointer(resolutions).advanced(by: Int(offset)).assumingMemoryBound(to: MapResolution.self)
    }

    /// The first way of `destination`'s set. The port is in the key, not the index: the set is
    /// known from the frame alone, before the frame's output port is, so that `prefetch` can
    /// start loading it a burst ahead.
    @inline(__always)
    func set(_ destination: IPAddress) -> UnsafeMutablePointer<MapResolution> {
        set(number: Self.setNumber(destination))
    }

    /// The set of an IPv4 destination loaded as on the wire: multiply-shift (the top bits of the
    /// product), one multiply.
    @inline(__always)
    static func setNumber(wireIPv4: UInt32) -> Int {
        Int(truncatingIfNeeded: (UInt64(wireIPv4) &* 0x9e37_79b9_7f4a_7c15) >> UInt64(64 - setBits))
    }

    /// The set of any destination: an IPv4 one as `setNumber(wireIPv4:)`, others by their words
    /// folded into one. Addresses that fold alike only share a set, which holds two (a slower
    /// lookup, never a wrong one).
    @inline(__always)
    static func setNumber(_ destination: IPAddress) -> Int {
        if destination.isIPv4 { return setNumber(wireIPv4: wireIPv4(destination)) }
        let h = (destination.low ^ destination.high.byteSwapped) &* 0x9e37_79b9_7f4a_7c15
        return Int(truncatingIfNeeded: h >> UInt64(64 - setBits))
    }

    /// Starts loading the sets of the inner destinations of the frames at
    /// `addresses[first..<end]` (offsets from `base`), keeping their sets' offsets in `burstSets`
    /// at the same indices: called for each burst on a worker with `remote_ip=map` ports before
    /// it is classified, so that the lines are on their way while it is. Measured: a 1,000-flow
    /// burst missed that line on most packets without it (`lisp-map-*`: 30 of the 45 ns between
    /// map and static encapsulation were the load of the set's tag). Only a hint: the lookup at
    /// output reads the frame as it is then (a header action may have changed it).
    ///
    /// A frame of 34 bytes or more with the IPv4 ethertype, the common case, takes a few
    /// instructions (the 4 bytes at the destination's place, one multiply); anything else is
    /// parsed out of line, in a second pass. Why so: the first loop then calls nothing and
    /// everything it uses stays in registers (through the class's fields, each store to
    /// `burstSets` would also make the compiler load them again).
    @inline(__always)
    func prefetch(burst addresses: UnsafePointer<UInt64>, lengths: UnsafePointer<UInt32>, in base: UnsafeRawPointer,
                  first: Int, end: Int) {
        let numbers = burstSets
        let table = UnsafeRawPointer(resolutions)
        var others = false
        var slot = first
        while slot < end {
            let frame = base + Int(truncatingIfNeeded: addresses[slot])
            if let wire = LISP.ipv4EthertypeDestinationOnWire(frame, length: Int(lengths[slot])) {
                let number = Self.setNumber(wireIPv4: wire)
                numbers[slot] = Int32(truncatingIfNeeded: number << 6)
                vs_prefetch(table + (number << 6))
            } else {
                others = true
            }
            slot &+= 1
        }
        if others { prefetchParsing(burst: addresses, lengths: lengths, in: base, first: first, end: end) }
    }

    /// `prefetch`'s second pass: the frames of the burst that are not untagged IPv4 (VLAN tags,
    /// IPv6, not IP).
    @inline(never)
    func prefetchParsing(burst addresses: UnsafePointer<UInt64>, lengths: UnsafePointer<UInt32>, in base: UnsafeRawPointer,
                         first: Int, end: Int) {
        for slot in first..<end {
            let frame = base + Int(truncatingIfNeeded: addresses[slot])
            let length = Int(lengths[slot])
            if LISP.ipv4EthertypeDestinationOnWire(frame, length: length) == nil {
                prefetchParsing(frame, length: length, slot: slot)
            }
        }
    }

    /// `prefetch` for one frame that is not untagged IPv4.
    @inline(__always)
    func prefetchParsing(_ frame: UnsafeRawPointer, length: Int, slot: Int) {
        guard let inner = LISP.innerPacket(frame, length: length) else {
            burstSets[slot] = 0
            return
        }
        let number = Self.setNumber(inner.destination)
        burstSets[slot] = Int32(truncatingIfNeeded: number << 6)
        vs_prefetch(set(number: number))
    }

    /// The next-hop index way 0 of burst slot `slot`'s set names (-1: none): read once the burst
    /// is classified, when the set `prefetch` asked for has arrived, so that the worker can
    /// prefetch that next hop too (a hint: the lookup at output decides).
    @inline(__always)
    func hintedHop(slot: Int) -> Int32 {
        Self.set(offset: burstSets[slot], in: resolutions).pointee.hop
    }
}

/// Misses a worker hands to the LISP control plane: a single-producer (worker), single-consumer
/// (the control plane's drain, one at a time) ring; full → the miss is counted and dropped, the
/// worker never waits.
// @unchecked: slots handed from the one producer to the one consumer by `head`/`tail`'s
// release/acquire.
final class MapCacheMissRing: @unchecked Sendable {
    static let capacity = 256
    private let slots: UnsafeMutablePointer<MapCacheMiss>
    private let head = Atomic<Int>(0)   // next to write (worker)
    private let tail = Atomic<Int>(0)   // next to read (control plane)

    init() {
        slots = .allocate(capacity: Self.capacity)
        slots.initialize(repeating: MapCacheMiss(instanceID: 0, destination: IPAddress(), source: IPAddress()), count: Self.capacity)
    }

    deinit { slots.deallocate() }

    /// Worker side: false when full.
    @inline(__always)
    func push(_ miss: MapCacheMiss) -> Bool {
        let h = head.load(ordering: .relaxed)
        guard h &- tail.load(ordering: .acquiring) < Self.capacity else { return false }
        slots[h & (Self.capacity - 1)] = miss
        head.store(h &+ 1, ordering: .releasing)
        return true
    }

    /// Consumer side: appends at most `limit` misses, oldest first; returns how many.
    func drain(into misses: inout [MapCacheMiss], limit: Int) -> Int {
        var t = tail.load(ordering: .relaxed)
        let h = head.load(ordering: .acquiring)
        var moved = 0
        while t != h && moved < limit {
            misses.append(slots[t & (Self.capacity - 1)])
            t &+= 1
            moved += 1
        }
        tail.store(t, ordering: .releasing)
        return moved
    }
}

/// The RLOCs of one snapshot, per instance id: a `remote_ip=map` port decapsulates LISP only from
/// an RLOC of an entry in its own instance (DESIGN.md, "Trust boundary: LISP decapsulation").
/// Built with the snapshot's publication (off the packet path), immutable after: open addressing,
/// at most half full, so a lookup is a hash and a probe or two.
// @unchecked: raw memory written only in `init`.
final class MapCacheRLOCSet: @unchecked Sendable {
    struct Slot {
        var address = IPAddress()
        var instanceID: UInt32 = 0
        var used = false
    }
    private let slots: UnsafeMutablePointer<Slot>
    private let mask: Int
    /// Distinct (instance id, RLOC) pairs.
    let count: Int
    /// Distinct RLOCs per instance id (counted here, before any worker is parked to take the set).
    private let countByInstance: [UInt32: Int]

    init(_ snapshot: MapCacheSnapshot) {
        var pairs: [Pair] = []
        var seen: Set<Pair> = []
        snapshot.forEachLocator { instanceID, address in
            let pair = Pair(instanceID: instanceID, address: address)
            if seen.insert(pair).inserted { pairs.append(pair) }
        }
        var capacity = 16
        while capacity < pairs.count * 2 { capacity <<= 1 }
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: Slot(), count: capacity)
        mask = capacity - 1
        count = pairs.count
        countByInstance = pairs.reduce(into: [:]) { $0[$1.instanceID, default: 0] += 1 }
        for pair in pairs {
            var i = Self.hash(pair.instanceID, pair.address) & mask
            while slots[i].used { i = (i + 1) & mask }
            slots[i] = Slot(address: pair.address, instanceID: pair.instanceID, used: true)
        }
    }

    deinit { slots.deallocate() }

    struct Pair: Hashable {
        var instanceID: UInt32
        var address: IPAddress
    }

    @inline(__always)
    static func hash(_ instanceID: UInt32, _ address: IPAddress) -> Int {
        let h = address.low &* 0x9e37_79b9_7f4a_7c15 ^ address.high &* 0xc2b2_ae3d_27d4_eb4f ^ UInt64(instanceID) &* 0x1656_67b1_9e37_79f9
        return Int(truncatingIfNeeded: h >> 32)
    }

    /// How many of the RLOCs are in instance `instanceID`.
    func count(instanceID: UInt32) -> Int { countByInstance[instanceID] ?? 0 }

    @inline(__always)
    func contains(instanceID: UInt32, address: IPAddress) -> Bool {
        var i = Self.hash(instanceID, address) & mask
        while slots[i].used {
            if slots[i].address == address && slots[i].instanceID == instanceID { return true }
            i = (i + 1) & mask
        }
        return false
    }
}

/// What a trace-mode worker's map-cache lookups found, in order (Worker+Trace.swift reports them).
struct MapCacheTraceRoom {
    static let capacity = 16
    struct Item {
        var port: PortSlot
        var instanceID: UInt32
        var destination: IPAddress
        var entry: Int32
        var action: MapCacheAction
        var rloc: IPAddress
    }
    let items: UnsafeMutablePointer<Item>
    var count = 0
}
