import Synchronization

/// One byte per map-cache entry slot that the workers set when they use the entry and the control
/// side takes (reads and clears) when it sweeps: how the database learns which entries are in use
/// (to refresh them before their TTL ends, RFC 9301 §5.4, and to evict the least recently used)
/// without the workers writing anything shared per packet.
///
/// Relaxed atomics on their own bytes: a worker reads its byte first and writes only when it is
/// clear, so while an entry is in use its cache line is only read by every worker (no line
/// bouncing per packet); it is written once per sweep. A mark set through an old snapshot after
/// its slot was reused marks the new entry used: at worst one needless refresh.
///
/// Owned by one `MapCacheDatabase` and referenced by every snapshot it builds, so it lives as
/// long as any worker can still read one of them.
// @unchecked: the bytes are only touched through the atomics; the pointer itself never changes.
public final class UseMarks: @unchecked Sendable {
    let bytes: UnsafeMutablePointer<Atomic<UInt8>>
    public let capacity: Int

    public init(capacity: Int) {
        precondition(capacity >= 1)
        self.capacity = capacity
        bytes = .allocate(capacity: capacity)
        for i in 0..<capacity { (bytes + i).initialize(to: Atomic(0)) }
    }

    deinit {
        bytes.deinitialize(count: capacity)
        bytes.deallocate()
    }

    /// Marks slot `slot` used (the workers' side).
    @inline(__always)
    public func mark(_ slot: Int) { UseMarks.mark(bytes, slot) }

    @inline(__always)
    static func mark(_ bytes: UnsafeMutablePointer<Atomic<UInt8>>, _ slot: Int) {
        if bytes[slot].load(ordering: .relaxed) == 0 { bytes[slot].store(1, ordering: .relaxed) }
    }

    /// Whether slot `slot` was marked since the last take, clearing it (the control side).
    public func take(_ slot: Int) -> Bool { bytes[slot].exchange(0, ordering: .relaxed) != 0 }
}
