import Glibc

/// Reassembly of IP datagrams from their fragments in memory allocated once: an ETR reassembles
/// outer-fragmented LISP packets as any IP host would (RFC 9300 §7). One table serves both
/// families; what differs — how a fragment's header is read and how the whole datagram's header is
/// rewritten — is in `IPv4Reassembly.swift` (RFC 791 §3.2) and `IPv6Reassembly.swift` (RFC 8200
/// §4.5). What is shared, here: the buffers, the bounds, the timeout and the rules that decide an
/// `Outcome`.
///
/// Bounded whatever arrives: at most `Limits.datagrams` datagrams wait at a time, each in its own
/// buffer of `Limits.datagramLength` bytes with at most `Limits.fragmentsPerDatagram` fragments,
/// for at most `Limits.timeout` seconds. A fragment is copied into its datagram's buffer at once,
/// so the caller can recycle the frame it came in: a sender of endless first fragments fills the
/// table (then counted `tableFull`) and holds no packet buffers.
///
/// Rules, each an `Outcome`:
/// - fragments are of one datagram when source, destination, identification and protocol agree
///   (RFC 791; RFC 8200 §4.5 keys on source, destination and identification, and the protocol is
///   the Fragment header's next header, the same in every fragment); an IPv4 and an IPv6 datagram
///   never share a key (IPv4 addresses are stored IPv4-mapped);
/// - a fragment that overlaps another of its datagram discards the whole datagram (`overlap`):
///   RFC 8200 §4.5 and RFC 5722 for IPv6, and Linux applies the rule to IPv4 too since 2018; an
///   exact duplicate of a fragment already held is dropped alone (`duplicate`), the datagram keeps
///   waiting;
/// - a fragment other than the last must carry a nonzero multiple of 8 bytes (RFC 791, RFC 8200),
///   and nothing may lie past the last fragment's end (`malformed`; the datagram is discarded when
///   it is the one that becomes inconsistent);
/// - a datagram larger than `datagramLength` (`tooBig`) or of more fragments than allowed
///   (`tooManyFragments`) is discarded.
///
/// Worker thread only (one per worker); nothing here allocates after `init`.
public final class FragmentReassembler {
    public struct Limits: Sendable {
        /// Datagrams waiting at a time.
        public var datagrams = 64
        public var fragmentsPerDatagram = 16
        /// The largest reassembled datagram, header included.
        public var datagramLength = 3800
        /// Seconds a datagram waits for its missing fragments (RFC 791 suggests 15, RFC 8200 sets
        /// 60 as the most; a tunnel's fragments arrive within milliseconds, and a short wait frees
        /// a full table sooner).
        public var timeout: UInt64 = 3

        public init() {}
    }

    public enum Outcome: UInt8, Sendable {
        /// Kept, waiting for the rest.
        case held
        /// The datagram is whole: read it at `completed`, then `release` it.
        case complete
        case duplicate
        case overlap
        case tableFull
        case tooBig
        case tooManyFragments
        case malformed
    }

    /// What identifies a fragment and where its bytes go.
    struct Fragment {
        var source: IPAddress
        var destination: IPAddress
        var identification: UInt32
        var proto: UInt8
        /// The header kept from the first fragment (IPv4 header, IPv6 fixed header).
        var header: UnsafeRawPointer
        var headerLength: Int
        var payload: UnsafeRawPointer
        /// In payload bytes.
        var start: Int
        var size: Int
        var more: Bool
    }

    struct Entry {
        var inUse = false
        var source = IPAddress(high: 0, low: 0)
        var destination = IPAddress(high: 0, low: 0)
        var identification: UInt32 = 0
        var proto: UInt8 = 0
        var created: UInt64 = 0
        /// The first fragment's header length; 0 until it arrived.
        var headerLength = 0
        /// The payload length, known from the last fragment (MF clear); -1 until then.
        var payloadLength = -1
        var received = 0
        var fragmentCount = 0
    }

    /// Room for the longest header kept before the payload in each buffer (IPv4 with options: 60).
    static let headerRoom = 60

    public let limits: Limits
    let entries: UnsafeMutablePointer<Entry>
    /// Per entry, `fragmentsPerDatagram` ranges: start << 32 | end, in payload bytes.
    let ranges: UnsafeMutablePointer<UInt64>
    let buffers: UnsafeMutableRawPointer
    let bufferSize: Int
    /// Datagrams waiting now.
    public private(set) var count = 0
    /// The entry `add` just completed.
    public private(set) var completed = -1

    public init(limits: Limits = Limits()) {
        precondition(limits.datagrams > 0 && limits.fragmentsPerDatagram > 0 && limits.datagramLength >= 68)
        self.limits = limits
        entries = .allocate(capacity: limits.datagrams)
        entries.initialize(repeating: Entry(), count: limits.datagrams)
        ranges = .allocate(capacity: limits.datagrams * limits.fragmentsPerDatagram)
        ranges.initialize(repeating: 0, count: limits.datagrams * limits.fragmentsPerDatagram)
        bufferSize = Self.headerRoom + limits.datagramLength
        buffers = .allocate(byteCount: limits.datagrams * bufferSize, alignment: 64)
    }

    deinit {
        entries.deallocate()
        ranges.deallocate()
        buffers.deallocate()
    }

    /// Discards the datagrams that have waited `limits.timeout` seconds or more; returns how many.
    public func expire(now: UInt64) -> Int {
        guard count > 0 else { return 0 }
        var expired = 0
        for i in 0..<limits.datagrams where entries[i].inUse && now &- entries[i].created >= limits.timeout {
            release(i)
            expired &+= 1
        }
        return expired
    }

    /// Takes one fragment (its header checked by the family's caller): copies its bytes, and when
    /// they complete the datagram sets `completed` and returns `.complete`; the caller then
    /// rewrites the kept header (`keptHeader`) for the whole datagram.
    func add(_ f: Fragment, now: UInt64) -> Outcome {
        precondition(f.headerLength <= Self.headerRoom)
        let end = f.start &+ f.size
        if f.more && (f.size == 0 || f.size & 7 != 0) { return .malformed }

        var slot = -1
        var free = -1
        for i in 0..<limits.datagrams {
            let e = entries + i
            if !e.pointee.inUse {
                if free < 0 { free = i }
                continue
            }
            if e.pointee.identification == f.identification && e.pointee.source == f.source
                && e.pointee.destination == f.destination && e.pointee.proto == f.proto {
                slot = i
                break
            }
        }
        if slot < 0 {
            guard free >= 0 else { return .tableFull }
            slot = free
            entries[slot] = Entry(inUse: true, source: f.source, destination: f.destination, identification: f.identification,
                                  proto: f.proto, created: now)
            count &+= 1
        }
        let e = entries + slot
        guard end &+ f.headerLength <= limits.datagramLength else {
            release(slot)
            return .tooBig
        }
        let held = ranges + slot &* limits.fragmentsPerDatagram
        for r in 0..<e.pointee.fragmentCount {
            let rangeStart = Int(held[r] >> 32)
            let rangeEnd = Int(held[r] & 0xffff_ffff)
            if rangeStart == f.start && rangeEnd == end { return .duplicate }
            if f.start < rangeEnd && rangeStart < end {
                release(slot)
                return .overlap
            }
        }
        if f.more {
            if e.pointee.payloadLength >= 0 && end >= e.pointee.payloadLength {
                release(slot)
                return .malformed
            }
        } else {
            // The last fragment: nothing held may lie past its end, nor may another last disagree.
            var beyond = e.pointee.payloadLength >= 0 && e.pointee.payloadLength != end
            for r in 0..<e.pointee.fragmentCount where Int(held[r] & 0xffff_ffff) > end { beyond = true }
            if beyond {
                release(slot)
                return .malformed
            }
            e.pointee.payloadLength = end
        }
        guard e.pointee.fragmentCount < limits.fragmentsPerDatagram else {
            release(slot)
            return .tooManyFragments
        }
        let buffer = buffers + slot &* bufferSize
        memcpy(buffer + (Self.headerRoom &+ f.start), f.payload, f.size)
        if f.start == 0 {
            memcpy(buffer + (Self.headerRoom &- f.headerLength), f.header, f.headerLength)
            e.pointee.headerLength = f.headerLength
        }
        held[e.pointee.fragmentCount] = UInt64(f.start) << 32 | UInt64(end)
        e.pointee.fragmentCount &+= 1
        e.pointee.received &+= f.size
        guard e.pointee.headerLength > 0, e.pointee.payloadLength >= 0, e.pointee.received == e.pointee.payloadLength else {
            return .held
        }
        // Whole: no overlaps and every range within [0, payloadLength), so the bytes cover it.
        guard e.pointee.headerLength &+ e.pointee.payloadLength <= limits.datagramLength else {
            release(slot)
            return .tooBig
        }
        completed = slot
        return .complete
    }

    /// The header kept for entry `slot`, its length, and the payload length behind it.
    func keptHeader(_ slot: Int) -> (header: UnsafeMutableRawPointer, headerLength: Int, payloadLength: Int, proto: UInt8) {
        let e = entries + slot
        return (buffers + (slot &* bufferSize &+ Self.headerRoom &- e.pointee.headerLength), e.pointee.headerLength,
                e.pointee.payloadLength, e.pointee.proto)
    }

    /// The reassembled datagram of entry `slot` (after `.complete`) and its length.
    public func datagram(_ slot: Int) -> (start: UnsafeRawPointer, length: Int) {
        let kept = keptHeader(slot)
        return (UnsafeRawPointer(kept.header), kept.headerLength &+ kept.payloadLength)
    }

    /// Frees entry `slot`.
    public func release(_ slot: Int) {
        guard entries[slot].inUse else { return }
        entries[slot].inUse = false
        count &-= 1
    }
}
