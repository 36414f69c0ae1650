import CSupport
import Glibc
import Synchronization
import VSwiftMapCache
import VSwiftPacket

/// One inner destination's resolution, as a worker keeps it so that most packets of a flow do not
/// search the map-cache (70–250 ns at 10k–100k prefixes) but read one line: 32 bytes, two to a
/// line, two ways to a set.
struct MapResolution {
    var destination = IPAddress()
    /// `WorkerMapCache.tag(instanceID:)`: the epoch << 32 | instance id; 0: empty.
    var tag: UInt64 = 0
    /// The snapshot's entry covering the destination (-1: none).
    var entry: Int32 = -1
    /// Next-hop index of the entry's lone RLOC; -1: decided per packet (several RLOCs chosen by
    /// flow hash, an entry that does not encapsulate, or a next hop not claimed yet).
    var hop: Int32 = -1
}

/// A worker's view of the LISP map-cache (remote_ip=map ports): the published snapshot and the
/// set of its RLOCs (both immutable, kept alive by the datapath's `MapCachePublication` until
/// every worker has moved past them), the worker's resolutions, and its queue of misses to the
/// control plane.
///
/// Resolutions are tagged with an *epoch*: a new snapshot, new next hops (their indices move) and
/// every `remarkSeconds` start a new one, so no resolution outlives what it was made from, and an
/// entry in steady use is looked up (and its use marked for the control side's refresh, RFC 9301
/// §5.4) again every `remarkSeconds`: its use is seen within the database's 60 s activity window.
///
/// Ownership: as the worker's tunnel tables (Worker.swift): `snapshot`, `rlocs` and `epochTag` are
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

    let resolutions: UnsafeMutablePointer<MapResolution>
    /// Per slot of the burst being classified: the set `prefetch` found (a hint for `hintedHop`;
    /// 0 for a frame it could not read).
    let burstSets: UnsafeMutablePointer<Int32>
    /// nil until something is published: every lookup misses.
    var snapshot: Unmanaged<MapCacheSnapshot>?
    var rlocs: Unmanaged<MapCacheRLOCSet>?
    /// The epoch (never 0) in the high half of a resolution's tag, kept shifted so that the hit
    /// path makes a tag with one `or`.
    private(set) var epochTag: UInt64 = 1 << 32
    var epochStarted: UInt64 = 0
    /// Whether the worker has a `remote_ip=map` port (set with its tunnel ports, worker parked):
    /// only then are bursts' sets prefetched.
    var hasPorts = false
    let misses = MapCacheMissRing()
    /// A trace-mode worker's record of what its lookups found (nil in a live worker).
    var traceOutcomes: UnsafeMutablePointer<MapCacheTraceRoom>?

    init() {
        resolutions = HugePageTable.allocate(MapResolution.self, capacity: Self.sets * 2)
        burstSets = .allocate(capacity: ClassifyBurst.capacity)
        burstSets.initialize(repeating: 0, count: ClassifyBurst.capacity)
        resolutions.initialize(repeating: MapResolution(), count: Self.sets * 2)
    }

    deinit {
        HugePageTable.free(resolutions)
        burstSets.deallocate()
        if let traceOutcomes {
            traceOutcomes.pointee.items.deallocate()
            traceOutcomes.deallocate()
        }
    }

    /// Forgets every resolution (a tag compare, no sweep).
    @inline(__always)
    func newEpoch(now: UInt64) {
        epochTag &+= 1 << 32
        if epochTag == 0 { epochTag = 1 << 32 }
        epochStarted = now
    }

    /// A resolution's tag for `instanceID` in the current epoch.
    @inline(__always)
    func tag(instanceID: UInt32) -> UInt64 { epochTag | UInt64(instanceID) }

    /// Starts a new epoch when the current one is `remarkSeconds` old (an entry in steady use is
    /// then searched again and its use marked).
    @inline(__always)
    func renewEpochIfDue(now: UInt64) {
        if now &- epochStarted >= Self.remarkSeconds { newEpoch(now: now) }
    }

    /// The first way of `destination`'s set (multiply-shift: the top bits of the products). The
    /// instance id is in the tag, not the index: the set is known from the frame alone, before the
    /// frame's output port is, so that `prefetch` can start loading it a burst ahead.
    @inline(__always)
    func set(_ destination: IPAddress) -> UnsafeMutablePointer<MapResolution> {
        resolutions + Self.setIndex(destination)
    }

    /// The index of `destination`'s set's way 0 in `resolutions`: multiply-shift of the address's
    /// words folded into one, with the IPv4-mapped marker taken out so that an IPv4 address hashes
    /// as its 32 bits alone (one multiply, no constant to add). Addresses that fold alike only
    /// share a set, which holds two (a slower lookup, never a wrong one).
    @inline(__always)
    static func setIndex(_ destination: IPAddress) -> Int {
        let h = (destination.low ^ destination.high ^ IPAddress.mappedMarker) &* 0x9e37_79b9_7f4a_7c15
        return Int(truncatingIfNeeded: h >> UInt64(64 - setBits)) &* 2
    }

    /// Starts loading the set of the inner destination of `frame`: called for every frame of a
    /// burst on a worker with `remote_ip=map` ports as its key is extracted, so that the line is
    /// on its way while the burst is classified. Measured: a 1,000-flow burst missed that line on
    /// most packets without it (`lisp-map-*`: 30 of the 45 ns between map and static
    /// encapsulation were the load of the set's tag). Only a hint: the lookup at output reads the
    /// frame as it is then (a header action may have changed it).
    ///
    /// An untagged IPv4 frame, the common case, takes a few instructions (its address's high word
    /// is 0, so the set's hash is one multiply); anything else is parsed out of line.
    @inline(__always)
    func prefetch(_ frame: UnsafeRawPointer, length: Int, slot: Int) {
        if let destination = LISP.untaggedIPv4DestinationHint(frame, length: length) {
            let index = Self.setIndex(destination)
            burstSets[slot] = Int32(truncatingIfNeeded: index)
            vs_prefetch(resolutions + index)
            return
        }
        prefetchParsing(frame, length: length, slot: slot)
    }

    /// `prefetch` for anything but untagged IPv4: VLAN tags, IPv6, not IP.
    @inline(never)
    func prefetchParsing(_ frame: UnsafeRawPointer, length: Int, slot: Int) {
        guard let inner = LISP.innerPacket(frame, length: length) else {
            burstSets[slot] = 0
            return
        }
        let index = Self.setIndex(inner.destination)
        burstSets[slot] = Int32(truncatingIfNeeded: index)
        vs_prefetch(resolutions + index)
    }

    /// The next-hop index way 0 of burst slot `slot`'s set names (-1: none): read a few frames
    /// before the frame is acted on, when the set prefetched at extraction has arrived, so that
    /// the worker can prefetch that next hop too (a hint: the lookup at output decides).
    @inline(__always)
    func hintedHop(slot: Int) -> Int32 {
        resolutions[Int(burstSets[slot])].hop
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
