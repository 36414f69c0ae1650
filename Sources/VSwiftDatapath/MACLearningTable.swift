import CXDP

/// The NORMAL action's MAC learning table for one bridge, shared by all workers.
///
/// Open addressing over `capacity` slots; a MAC lives within `probeLength` slots of its hash.
/// Each slot is two words: (mac << 16 | port + 1) and the second it was last seen. Workers read and
/// write the words with relaxed atomics and no lock: a racing reader sees either the old or the
/// new word, and at worst floods one frame or keeps a stale port for one frame — the same
/// outcome as a lookup just before a move. Learning writes only when something changed, so a
/// steady flow does not bounce cache lines between workers.
///
/// A value type over raw memory (no ARC on the packet path); the datapath frees it explicitly.
/// Copyable on purpose, unlike the other raw-memory owners (which are `~Copyable` with `deinit`):
/// it is shared, not owned: the datapath's bridge record holds it and every worker's bridge entry
/// (raw memory, an `Optional` read with `if let` on the packet path) holds a copy of the same
/// pointer, so no one copy may free it; `destroy` is called once, by the datapath, with the
/// workers parked and the entries cleared.
// @unchecked: raw memory shared by design; every word is read and written with relaxed atomics
// (see above), and only the datapath frees it, after the workers no longer use it.
public struct MACLearningTable: @unchecked Sendable {
    package static let noPort = PortSlot(rawValue: .max)
    static let probeLength = 8

    public let capacity: Int
    /// An entry unseen for this many seconds is gone (OVS's default mac-aging-time is 300 s).
    public let agingSeconds: UInt64
    private let words: UnsafeMutablePointer<UInt64>

    public init(capacity: Int = 8192, agingSeconds: UInt64 = 300) {
        precondition(capacity.nonzeroBitCount == 1 && capacity >= Self.probeLength)
        self.capacity = capacity
        self.agingSeconds = agingSeconds
        words = .allocate(capacity: capacity * 2)
        words.initialize(repeating: 0, count: capacity * 2)
    }

    public func destroy() { words.deallocate() }

    /// A table of its own with the same entries (a flow trace learns into it; see Worker+Trace).
    /// Read with relaxed loads: workers may be learning meanwhile. Control path.
    package func copy() -> MACLearningTable {
        let table = MACLearningTable(capacity: capacity, agingSeconds: agingSeconds)
        for i in 0..<capacity * 2 { table.words[i] = vs_load_relaxed_u64(words + i) }
        return table
    }

    @inline(__always)
    private func home(_ mac: UInt64) -> Int {
        Int(truncatingIfNeeded: (mac &* 0x9E37_79B9_7F4A_7C15) >> 40) & (capacity - 1)
    }

    @inline(__always)
    private func entry(_ slot: Int) -> UInt64 { vs_load_relaxed_u64(words + 2 * slot) }
    @inline(__always)
    private func seen(_ slot: Int) -> UInt64 { vs_load_relaxed_u64(words + 2 * slot + 1) }

    /// Records that `mac` was seen on `port` at second `now`.
    @inline(__always)
    package func learn(_ mac: UInt64, port: PortSlot, now: UInt64) {
        let wanted = mac << 16 | UInt64(port.rawValue &+ 1)
        let start = home(mac)
        var victim = -1
        var victimSeen = UInt64.max
        for i in 0..<Self.probeLength {
            let slot = (start + i) & (capacity - 1)
            let word = entry(slot)
            if word >> 16 == mac {
                if word != wanted { vs_store_relaxed_u64(words + 2 * slot, wanted) }
                if seen(slot) != now { vs_store_relaxed_u64(words + 2 * slot + 1, now) }
                return
            }
            // Prefer an empty slot, then an expired one, then the least recently seen.
            let lastSeen = word == 0 ? 0 : seen(slot)
            if word == 0 || lastSeen &+ agingSeconds <= now {
                if victimSeen != 0 { victim = slot; victimSeen = 0 }
            } else if lastSeen < victimSeen {
                victim = slot
                victimSeen = lastSeen
            }
        }
        vs_store_relaxed_u64(words + 2 * victim + 1, now)
        vs_store_relaxed_u64(words + 2 * victim, wanted)
    }

    /// The port `mac` was last seen on, or `noPort` if unknown or aged out.
    @inline(__always)
    package func lookup(_ mac: UInt64, now: UInt64) -> PortSlot {
        let start = home(mac)
        for i in 0..<Self.probeLength {
            let slot = (start + i) & (capacity - 1)
            let word = entry(slot)
            if word >> 16 == mac, word != 0 {
                if seen(slot) &+ agingSeconds <= now { return Self.noPort }
                return PortSlot(rawValue: UInt16(truncatingIfNeeded: word) &- 1)
            }
        }
        return Self.noPort
    }

    /// Forgets every MAC learned on `port` (the port was deleted). Control path.
    package func forget(port: PortSlot) {
        for slot in 0..<capacity where entry(slot) != 0 && UInt16(truncatingIfNeeded: entry(slot)) == port.rawValue &+ 1 {
            vs_store_relaxed_u64(words + 2 * slot, 0)
        }
    }

    /// Live (learned, not aged out) entries, as (mac, port). Control path.
    package func entries(now: UInt64) -> [(mac: UInt64, port: PortSlot)] {
        var result: [(UInt64, PortSlot)] = []
        for slot in 0..<capacity {
            let word = entry(slot)
            if word != 0 && seen(slot) &+ agingSeconds > now {
                result.append((word >> 16, PortSlot(rawValue: UInt16(truncatingIfNeeded: word) &- 1)))
            }
        }
        return result
    }
}
