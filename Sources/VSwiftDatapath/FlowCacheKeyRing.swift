import Synchronization
import VSwiftPacket

/// Flow keys between a worker and the XDP flow cache's installer, one direction per ring: a
/// bounded single-producer single-consumer ring of flow keys with the flow-table version they were
/// classified with and their bridge. Each worker has two (Worker.swift): `flowCacheRequests`, its
/// misses to install (the worker produces, the installer thread consumes), and
/// `flowCacheForgets`, hand-overs the installer lost or refused for a reason that may not recur,
/// for the worker's exact-match cache to forget (the installer produces under its lock, the
/// worker consumes once per round). Preallocated; a full ring refuses (counted by the producer in
/// `refusedFull`: the installer reports the requests' as `handoverRingFull`, the forgets' as
/// `forgetOverflow`) and never blocks. The producer writes a key straight into its slot
/// (`reserve`, then `commit`), so a push copies nothing else and allocates nothing.
// @unchecked: each slot is written by the producer before the release store of `head` that
// publishes it, and read by the consumer after its acquire load, before the release store of
// `tail` that gives it back; `refusedFull` is written by the producer alone (relaxed).
final class FlowCacheKeyRing: @unchecked Sendable {
    struct Request {
        var key = FlowKey()
        /// `ClassifierTable.version` of the table that classified `key`.
        var version: UInt64 = 0
        var bridge: Int32 = 0
    }

    static let capacity = 256
    private let slots: UnsafeMutablePointer<Request>
    private let head = Atomic<Int>(0)   // next to write (producer)
    private let tail = Atomic<Int>(0)   // next to read (consumer)
    /// Requests not pushed because the ring was full.
    let refusedFull = Atomic<UInt64>(0)

    init() {
        slots = .allocate(capacity: Self.capacity)
        slots.initialize(repeating: Request(), count: Self.capacity)
    }

    deinit { slots.deallocate() }

    /// Producer side: the next free slot, or nil when the ring is full (the caller counts what it
    /// dropped with `noteRefused`).
    @inline(__always)
    func reserve() -> UnsafeMutablePointer<Request>? {
        let h = head.load(ordering: .relaxed)
        guard h &- tail.load(ordering: .acquiring) < Self.capacity else { return nil }
        return slots + (h & (Self.capacity - 1))
    }

    /// Producer side: `count` requests were dropped because the ring was full.
    @inline(__always)
    func noteRefused(_ count: Int) {
        refusedFull.store(refusedFull.load(ordering: .relaxed) &+ UInt64(count), ordering: .relaxed)
    }

    /// Producer side: publishes the slot `reserve` gave.
    @inline(__always)
    func commit() {
        head.store(head.load(ordering: .relaxed) &+ 1, ordering: .releasing)
    }

    /// Consumer side: hands each waiting request to `body` (at most `limit`); returns how many.
    func drain(limit: Int, _ body: (Request) -> Void) -> Int {
        var t = tail.load(ordering: .relaxed)
        let h = head.load(ordering: .acquiring)
        var n = 0
        while t != h && n < limit {
            body(slots[t & (Self.capacity - 1)])
            t &+= 1
            n += 1
        }
        tail.store(t, ordering: .releasing)
        return n
    }
}
