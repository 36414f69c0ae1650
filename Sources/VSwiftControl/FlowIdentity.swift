import VSwiftClassifier
import VSwiftPacket

/// A flow's identity in its table: OpenFlow's "identical match and priority".
///
/// Kept compact: only the words the match's mask uses are stored (mask and key of each), up to
/// four of them inline — an IPv4 five-tuple flow needs four or five — and the rest in an array.
/// A whole `Match` is 256 bytes; as the key of a dictionary of a million flows (at most half full)
/// it made the table some 550 MB of memory that every bulk change had to fault in and copy.
/// The match is rebuilt when asked for (`match`).
struct FlowIdentity: Hashable {
    let priority: UInt16
    /// Bit i set: word i of the mask is not zero. Its (mask, key) pair is stored, in word order.
    let words: UInt16
    private let m0: UInt64, k0: UInt64, m1: UInt64, k1: UInt64
    private let m2: UInt64, k2: UInt64, m3: UInt64, k3: UInt64
    /// Mask and key of the fifth and later words, alternately; nil when there are at most four.
    private let more: [UInt64]?

    static let inlineWords = 4

    init(match: Match, priority: UInt16) {
        self.priority = priority
        var words: UInt16 = 0
        var pairs: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        var more: [UInt64]? = nil
        var stored = 0
        for i in 0..<FlowKey.wordCount {
            let mask = match.mask[word: i]
            guard mask != 0 else { continue }
            words |= 1 << UInt16(i)
            let key = match.key[word: i]
            switch stored {
            case 0: (pairs.0, pairs.1) = (mask, key)
            case 1: (pairs.2, pairs.3) = (mask, key)
            case 2: (pairs.4, pairs.5) = (mask, key)
            case 3: (pairs.6, pairs.7) = (mask, key)
            default: more = (more ?? []) + [mask, key]
            }
            stored += 1
        }
        self.words = words
        (m0, k0, m1, k1, m2, k2, m3, k3) = pairs
        self.more = more
    }

    init(_ rule: FlowRule) {
        self.init(match: rule.match, priority: rule.priority)
    }

    /// The (mask, key) pair of the `n`th stored word.
    @inline(__always)
    private func pair(_ n: Int) -> (mask: UInt64, key: UInt64) {
        switch n {
        case 0: return (m0, k0)
        case 1: return (m1, k1)
        case 2: return (m2, k2)
        case 3: return (m3, k3)
        default: return (more![2 * (n - Self.inlineWords)], more![2 * (n - Self.inlineWords) + 1])
        }
    }

    var match: Match {
        var match = Match()
        var rest = words
        var n = 0
        while rest != 0 {
            let word = rest.trailingZeroBitCount
            rest &= rest - 1
            let (mask, key) = pair(n)
            match.mask[word: word] = mask
            match.key[word: word] = key
            n += 1
        }
        return match
    }

    /// Same match, whatever the priorities.
    func hasSameMatch(as other: FlowIdentity) -> Bool {
        words == other.words && m0 == other.m0 && k0 == other.k0 && m1 == other.m1 && k1 == other.k1
            && m2 == other.m2 && k2 == other.k2 && m3 == other.m3 && k3 == other.k3 && more == other.more
    }

    static func == (a: FlowIdentity, b: FlowIdentity) -> Bool {
        a.priority == b.priority && a.hasSameMatch(as: b)
    }

    func hash(into hasher: inout Hasher) {
        // Mixed by hand into one word first: feeding Hasher every word costs more than the rest
        // of a million-flow add-flows.
        var h = (UInt64(priority) | UInt64(words) << 16) &* 0x9E37_79B9_7F4A_7C15
        @inline(__always) func mix(_ mask: UInt64, _ key: UInt64) {
            h = (h ^ mask) &* 0xFF51_AFD7_ED55_8CCD
            h = (h ^ (h >> 29) ^ key) &* 0xC4CE_B9FE_1A85_EC53
            h ^= h >> 32
        }
        mix(m0, k0)
        mix(m1, k1)
        mix(m2, k2)
        mix(m3, k3)
        if let more {
            for i in stride(from: 0, to: more.count, by: 2) { mix(more[i], more[i + 1]) }
        }
        hasher.combine(h)
    }
}
