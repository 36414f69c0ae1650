/// Counter slots 0..<capacity: a high-water mark plus a stack of returned slots, so no array of
/// `capacity` entries is ever built.
struct CounterSlotAllocator {
    let capacity: Int
    private var nextUnused = 0
    private var returned: [Int] = []

    init(capacity: Int) {
        self.capacity = capacity
    }

    var available: Int { capacity - nextUnused + returned.count }

    /// A free slot; `fresh` when no rule has ever had it, so its counters are still zero (the
    /// datapath's counter memory starts zeroed) and need no reset.
    mutating func allocate() -> (slot: Int, fresh: Bool)? {
        if let slot = returned.popLast() { return (slot, false) }
        guard nextUnused < capacity else { return nil }
        defer { nextUnused += 1 }
        return (nextUnused, true)
    }

    mutating func release(_ slot: Int) {
        returned.append(slot)
    }

    mutating func release(_ slots: [Int]) {
        returned.append(contentsOf: slots)
    }
}

/// Counter slots (0..<capacity) as bits: a million insertions into a `Set` and lookups cost
/// replace-flows more than these 256 KB.
struct SlotSet {
    private var words: [UInt64]

    init(capacity: Int) {
        words = [UInt64](repeating: 0, count: (capacity + 63) / 64)
    }

    mutating func insert(_ slot: Int) {
        words[slot >> 6] |= 1 << UInt64(slot & 63)
    }

    func contains(_ slot: Int) -> Bool {
        words[slot >> 6] & (1 << UInt64(slot & 63)) != 0
    }
}
