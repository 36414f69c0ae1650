import CSupport
import CXDP
import VSwiftPacket

/// What a LISP port did about packets that do not fit (RFC 9300 §7): ICMP answers and inner
/// fragmentation on encapsulation, reassembly of outer fragments on decapsulation. Summed over
/// workers; `dump-ports` prints it under the port once any is nonzero.
public struct PathMTUStatistics: Codable, Sendable, Equatable {
    /// ICMP Fragmentation Needed / ICMPv6 Packet Too Big sent back to an inner source.
    public var icmpSent: UInt64 = 0
    /// Answers not sent: over the per-worker rate (`Worker.icmpAnswersPerSecond`).
    public var icmpRateLimited: UInt64 = 0
    /// Inner IPv4 packets (DF clear) split so that each piece fits once encapsulated.
    public var innerFragmented: UInt64 = 0
    /// Pieces of those sent on.
    public var innerFragments: UInt64 = 0
    /// Outer LISP datagrams reassembled from their fragments (then decapsulated as any other).
    public var reassembled: UInt64 = 0
    /// Datagrams discarded because their fragments did not all come within the timeout.
    public var reassemblyTimeouts: UInt64 = 0
    /// Datagrams discarded because two fragments overlapped.
    public var reassemblyOverlaps: UInt64 = 0
    /// Fragments dropped as exact copies of one already held (the datagram kept waiting).
    public var fragmentDuplicates: UInt64 = 0
    /// Fragments dropped because every reassembly slot was taken.
    public var reassemblyTableFull: UInt64 = 0
    /// Datagrams discarded as larger than a frame can hold.
    public var reassemblyTooBig: UInt64 = 0
    /// Datagrams discarded for more fragments than allowed.
    public var reassemblyTooManyFragments: UInt64 = 0
    /// Fragments (or their datagram) dropped as inconsistent: a non-last fragment not a multiple of
    /// 8 bytes, bytes past the last fragment, two different ends.
    public var reassemblyMalformed: UInt64 = 0

    public init() {}

    init(_ c: UnsafeMutablePointer<PathMTUCounterBlock>) {
        icmpSent = vs_load_relaxed_u64(&c.pointee.icmpSent)
        icmpRateLimited = vs_load_relaxed_u64(&c.pointee.icmpRateLimited)
        innerFragmented = vs_load_relaxed_u64(&c.pointee.innerFragmented)
        innerFragments = vs_load_relaxed_u64(&c.pointee.innerFragments)
        reassembled = vs_load_relaxed_u64(&c.pointee.reassembled)
        reassemblyTimeouts = vs_load_relaxed_u64(&c.pointee.timeouts)
        reassemblyOverlaps = vs_load_relaxed_u64(&c.pointee.overlaps)
        fragmentDuplicates = vs_load_relaxed_u64(&c.pointee.duplicates)
        reassemblyTableFull = vs_load_relaxed_u64(&c.pointee.tableFull)
        reassemblyTooBig = vs_load_relaxed_u64(&c.pointee.tooBig)
        reassemblyTooManyFragments = vs_load_relaxed_u64(&c.pointee.tooManyFragments)
        reassemblyMalformed = vs_load_relaxed_u64(&c.pointee.malformed)
    }

    public static func + (a: PathMTUStatistics, b: PathMTUStatistics) -> PathMTUStatistics {
        var s = PathMTUStatistics()
        s.icmpSent = a.icmpSent + b.icmpSent
        s.icmpRateLimited = a.icmpRateLimited + b.icmpRateLimited
        s.innerFragmented = a.innerFragmented + b.innerFragmented
        s.innerFragments = a.innerFragments + b.innerFragments
        s.reassembled = a.reassembled + b.reassembled
        s.reassemblyTimeouts = a.reassemblyTimeouts + b.reassemblyTimeouts
        s.reassemblyOverlaps = a.reassemblyOverlaps + b.reassemblyOverlaps
        s.fragmentDuplicates = a.fragmentDuplicates + b.fragmentDuplicates
        s.reassemblyTableFull = a.reassemblyTableFull + b.reassemblyTableFull
        s.reassemblyTooBig = a.reassemblyTooBig + b.reassemblyTooBig
        s.reassemblyTooManyFragments = a.reassemblyTooManyFragments + b.reassemblyTooManyFragments
        s.reassemblyMalformed = a.reassemblyMalformed + b.reassemblyMalformed
        return s
    }

    /// Every counter is zero.
    public var isZero: Bool { self == PathMTUStatistics() }
}

/// One worker's `PathMTUStatistics` for one LISP port (relaxed atomic adds by the worker).
struct PathMTUCounterBlock {
    var icmpSent: UInt64 = 0
    var icmpRateLimited: UInt64 = 0
    var innerFragmented: UInt64 = 0
    var innerFragments: UInt64 = 0
    var reassembled: UInt64 = 0
    var timeouts: UInt64 = 0
    var overlaps: UInt64 = 0
    var duplicates: UInt64 = 0
    var tableFull: UInt64 = 0
    var tooBig: UInt64 = 0
    var tooManyFragments: UInt64 = 0
    var malformed: UInt64 = 0
}
