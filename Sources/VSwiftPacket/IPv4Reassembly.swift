import Glibc

/// Reassembly of IPv4 datagrams from their fragments (RFC 791 §3.2) in memory allocated once:
/// an ETR reassembles outer-fragmented LISP packets as any IP host would (RFC 9300 §7).
///
/// Bounded whatever arrives: at most `Limits.datagrams` datagrams wait at a time, each in its own
/// buffer of `Limits.datagramLength` bytes with at most `Limits.fragmentsPerDatagram` fragments,
/// for at most `Limits.timeout` seconds. A fragment is copied into its datagram's buffer at once,
/// so the caller can recycle the frame it came in: a sender of endless first fragments fills the
/// table (then counted `tableFull`) and holds no packet buffers.
///
/// Rules, each an `Outcome`:
/// - fragments are of one datagram when source, destination, protocol and identification agree
///   (RFC 791);
/// - a fragment that overlaps another of its datagram discards the whole datagram (`overlap`): two
///   fragments that claim the same bytes cannot both be trusted (RFC 5722's rule for IPv6, which
///   Linux applies to IPv4 too since 2018); an exact duplicate of a fragment already held is
///   dropped alone (`duplicate`), the datagram keeps waiting;
/// - a fragment other than the last must carry a multiple of 8 bytes (RFC 791), and nothing may
///   lie past the last fragment's end (`malformed`; the datagram is discarded when it is the one
///   that becomes inconsistent);
/// - a datagram larger than `datagramLength` (`tooBig`) or of more fragments than allowed
///   (`tooManyFragments`) is discarded.
/// The reassembled header is the first fragment's, with total length, MF, offset and checksum set.
///
/// Worker thread only (one per worker); nothing here allocates after `init`.
public final class IPv4Reassembler {
    public struct Limits: Sendable {
        /// Datagrams waiting at a time.
        public var datagrams = 64
        public var fragmentsPerDatagram = 16
        /// The largest reassembled datagram, header included.
        public var datagramLength = 3800
        /// Seconds a datagram waits for its missing fragments (RFC 791 suggests 15; a tunnel's
        /// fragments arrive within milliseconds, and a short wait frees a full table sooner).
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

    struct Entry {
        var inUse = false
        var source: UInt32 = 0
        var destination: UInt32 = 0
        var identification: UInt16 = 0
        var proto: UInt8 = 0
        var created: UInt64 = 0
        /// The first fragment's header length; 0 until it arrived.
        var headerLength = 0
        /// The payload length, known from the last fragment (MF clear); -1 until then.
        var payloadLength = -1
        var received = 0
        var fragmentCount = 0
    }

    /// Room for the longest header before the payload in each buffer.
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

    /// Takes the IPv4 fragment at `ip` (`length` bytes from its header on; its header checksum
    /// already verified by the caller, and MF or the offset set).
    public func add(_ ip: UnsafeRawPointer, length: Int, now: UInt64) -> Outcome {
        guard length >= 20 else { return .malformed }
        let headerLength = Int(Wire.u8(ip, 0) & 0x0f) &<< 2
        let total = Int(Wire.u16(ip, 2))
        guard Wire.u8(ip, 0) >> 4 == 4, headerLength >= 20, total >= headerLength, total <= length else { return .malformed }
        let field = Wire.u16(ip, 6)
        let more = field & 0x2000 != 0
        let start = Int(field & 0x1fff) &<< 3
        let size = total &- headerLength
        let end = start &+ size
        if more && (size == 0 || size & 7 != 0) { return .malformed }
        let source = Wire.u32(ip, 12)
        let destination = Wire.u32(ip, 16)
        let identification = Wire.u16(ip, 4)
        let proto = Wire.u8(ip, 9)

        var slot = -1
        var free = -1
        for i in 0..<limits.datagrams {
            let e = entries + i
            if !e.pointee.inUse {
                if free < 0 { free = i }
                continue
            }
            if e.pointee.identification == identification && e.pointee.source == source
                && e.pointee.destination == destination && e.pointee.proto == proto {
                slot = i
                break
            }
        }
        if slot < 0 {
            guard free >= 0 else { return .tableFull }
            slot = free
            entries[slot] = Entry(inUse: true, source: source, destination: destination, identification: identification,
                                  proto: proto, created: now)
            count &+= 1
        }
        let e = entries + slot
        guard end &+ 20 <= limits.datagramLength else {
            release(slot)
            return .tooBig
        }
        let held = ranges + slot &* limits.fragmentsPerDatagram
        for r in 0..<e.pointee.fragmentCount {
            let rangeStart = Int(held[r] >> 32)
            let rangeEnd = Int(held[r] & 0xffff_ffff)
            if rangeStart == start && rangeEnd == end { return .duplicate }
            if start < rangeEnd && rangeStart < end {
                release(slot)
                return .overlap
            }
        }
        if more {
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
        memcpy(buffer + (Self.headerRoom &+ start), ip + headerLength, size)
        if start == 0 {
            memcpy(buffer + (Self.headerRoom &- headerLength), ip, headerLength)
            e.pointee.headerLength = headerLength
        }
        held[e.pointee.fragmentCount] = UInt64(start) << 32 | UInt64(end)
        e.pointee.fragmentCount &+= 1
        e.pointee.received &+= size
        guard e.pointee.headerLength > 0, e.pointee.payloadLength >= 0, e.pointee.received == e.pointee.payloadLength else {
            return .held
        }
        // Whole: no overlaps and every range within [0, payloadLength), so the bytes cover it.
        let length = e.pointee.headerLength &+ e.pointee.payloadLength
        guard length <= limits.datagramLength else {
            release(slot)
            return .tooBig
        }
        let header = buffer + (Self.headerRoom &- e.pointee.headerLength)
        Wire.put16(header, 2, UInt16(length))
        Wire.put16(header, 6, Wire.u16(header, 6) & 0x4000)
        Wire.put16(header, 10, 0)
        Wire.put16(header, 10, Checksum.checksum(header, length: e.pointee.headerLength))
        completed = slot
        return .complete
    }

    /// The reassembled datagram of entry `slot` (after `.complete`) and its length.
    public func datagram(_ slot: Int) -> (start: UnsafeRawPointer, length: Int) {
        let e = entries + slot
        let buffer = buffers + slot &* bufferSize
        return (UnsafeRawPointer(buffer + (Self.headerRoom &- e.pointee.headerLength)),
                e.pointee.headerLength &+ e.pointee.payloadLength)
    }

    /// The offset of the IPv4 header when the frame at `frame` (Ethernet, up to two VLAN tags) is
    /// a UDP fragment (MF set or an offset) with a well-formed header (RFC 791: version 4, IHL at
    /// least 5, total length within the frame, header checksum); else 0.
    public static func udpFragmentOffset(_ frame: UnsafeRawPointer, length: Int) -> Int {
        guard length >= 34 else { return 0 }
        let l2 = L2.parse(frame, length: length)
        let l3 = l2.l3Offset
        guard l2.etherType == EtherType.ipv4, length &- l3 >= 20 else { return 0 }
        let ip = frame + l3
        let headerLength = Int(Wire.u8(ip, 0) & 0x0f) &<< 2
        guard Wire.u8(ip, 0) >> 4 == 4, headerLength >= 20, Wire.u8(ip, 9) == IPProtocol.udp,
              Wire.u16(ip, 6) & 0x3fff != 0 else { return 0 }
        let total = Int(Wire.u16(ip, 2))
        guard total >= headerLength, total <= length &- l3, Checksum.sum(ip, length: headerLength) == 0xffff else { return 0 }
        return l3
    }

    /// Frees entry `slot`.
    public func release(_ slot: Int) {
        guard entries[slot].inUse else { return }
        entries[slot].inUse = false
        count &-= 1
    }
}
