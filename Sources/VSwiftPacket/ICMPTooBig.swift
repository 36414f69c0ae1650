import Glibc

/// "Packet too big" answers of a tunnel ingress whose encapsulated packet would not fit the
/// egress MTU (RFC 9300 §7.1, the stateless approach; RFC 1191 §4 for IPv4, RFC 8201 and RFC 4443
/// §3.2 for IPv6): ICMP Destination Unreachable / Fragmentation Needed (type 3 code 4) or ICMPv6
/// Packet Too Big (type 2 code 0), carrying the MTU the inner packet must fit.
///
/// The answer is an Ethernet frame back out of the port the packet came in on: the original's L2
/// header with its addresses swapped (VLAN tags kept), and the ICMP packet's source address is the
/// original's destination. The switch has no address of its own on the EID side (it is transparent
/// to the hosts), and that is what OVS's tunnel PMTUD did: the host's stack only matches the quoted
/// packet against its sockets and route cache, whatever the ICMP's source.
///
/// Nothing is allocated; the caller gives an output buffer that does not overlap the original.
public enum ICMPTooBig {
    /// RFC 1812 §4.3.2.3: an ICMP error quotes as much of the original as fits in 576 bytes.
    public static let maxIPv4Length = 576
    /// RFC 4443 §2.4 (c): as much as fits in the IPv6 minimum MTU.
    public static let maxIPv6Length = 1280
    /// TTL / hop limit of the answers (Linux's default).
    public static let hopLimit: UInt8 = 64

    /// May an ICMP error answer the IPv4 packet at `ip` (`length` bytes)? Not (RFC 1122 §3.2.2,
    /// RFC 1812 §4.3.2.7): about a fragment other than the first, an ICMP error message, a datagram
    /// to a multicast or broadcast address, or from an address that is not one host's (0, loopback,
    /// multicast, class E, broadcast). The answer's source is the original destination, which must
    /// therefore be unicast too.
    public static func mayAnswerIPv4(_ ip: UnsafeRawPointer, length: Int) -> Bool {
        guard length >= 20 else { return false }
        let ihl = Int(Wire.u8(ip, 0) & 0x0f) &<< 2
        guard Wire.u8(ip, 0) >> 4 == 4, ihl >= 20, ihl <= length else { return false }
        guard Wire.u16(ip, 6) & 0x1fff == 0 else { return false }
        let source = Wire.u32(ip, 12)
        let destination = Wire.u32(ip, 16)
        guard source != 0, source >> 24 != 127, source >> 28 < 0xe else { return false }
        guard destination != 0, destination >> 28 < 0xe else { return false }
        if Wire.u8(ip, 9) == IPProtocol.icmp {
            guard ihl < length else { return false }
            switch Wire.u8(ip, ihl) {
            case 0, 8, 13, 14, 15, 16, 17, 18: break   // queries and replies, not errors
            default: return false
            }
        }
        return true
    }

    /// May an ICMPv6 error answer the IPv6 packet at `ip` (`length` bytes)? Not (RFC 4443 §2.4 (e))
    /// about an ICMPv6 error message, or from the unspecified, loopback or a multicast address. A
    /// Packet Too Big may answer a packet to a multicast group (§2.4 (e.2)), but this one would come
    /// from that group's address: not sent either.
    public static func mayAnswerIPv6(_ ip: UnsafeRawPointer, length: Int) -> Bool {
        guard length >= 40, Wire.u8(ip, 0) >> 4 == 6 else { return false }
        let sourceHigh = Wire.u64(ip, 8)
        let sourceLow = Wire.u64(ip, 16)
        guard !(sourceHigh == 0 && sourceLow <= 1), sourceHigh >> 56 != 0xff else { return false }
        guard Wire.u64(ip, 24) >> 56 != 0xff else { return false }
        let end = min(40 &+ Int(Wire.u16(ip, 4)), length)
        let chain = IPv6Walk(ip, start: 40, end: end, nextHeader: Wire.u8(ip, 6))
        guard chain.isValid else { return false }
        if chain.proto == IPProtocol.icmpv6 {
            guard chain.l4 < end, Wire.u8(ip, chain.l4) >= 128 else { return false }
        }
        return true
    }

    /// Writes at `out` the frame answering the frame at `frame` (`length` bytes, IPv4 header at
    /// `l3`) with ICMP Fragmentation Needed and `nextHopMTU` (RFC 1191 §4): IPv4 from the original's
    /// destination to its source, TOS 0xc0 (internetwork control, as Linux's icmp_send), TTL 64,
    /// `identification`, and the original IP packet quoted up to 576 bytes in all. Returns the
    /// frame's length (at most `l3 + 576`, the room `out` must have).
    public static func writeIPv4(answering frame: UnsafeRawPointer, length: Int, l3: Int, nextHopMTU: UInt16,
                                 identification: UInt16, into out: UnsafeMutableRawPointer) -> Int {
        let ip = frame + l3
        let original = min(Int(Wire.u16(ip, 2)), length &- l3)
        let quoted = min(original, maxIPv4Length &- 28)
        writeSwappedL2(answering: frame, l3: l3, into: out)
        let o = out + l3
        let total = 28 &+ quoted
        Wire.put32(o, 0, 0x45c0_0000 | UInt32(total))
        Wire.put32(o, 4, UInt32(identification) << 16)
        Wire.put32(o, 8, UInt32(hopLimit) << 24 | UInt32(IPProtocol.icmp) << 16)
        Wire.put32(o, 12, Wire.u32(ip, 16))
        Wire.put32(o, 16, Wire.u32(ip, 12))
        Wire.put16(o, 10, Checksum.checksum(o, length: 20))
        let icmp = o + 20
        Wire.put32(icmp, 0, 0x0304_0000)
        Wire.put32(icmp, 4, UInt32(nextHopMTU))
        memcpy(icmp + 8, ip, quoted)
        Wire.put16(icmp, 2, Checksum.checksum(icmp, length: 8 &+ quoted))
        return l3 &+ total
    }

    /// Writes at `out` the frame answering the frame at `frame` (`length` bytes, IPv6 header at
    /// `l3`) with ICMPv6 Packet Too Big and `mtu` (RFC 4443 §3.2): from the original's destination
    /// to its source, hop limit 64, the original quoted up to 1280 bytes in all (§2.4 (c)). Returns
    /// the frame's length (at most `l3 + 1280`, the room `out` must have).
    public static func writeIPv6(answering frame: UnsafeRawPointer, length: Int, l3: Int, mtu: UInt32,
                                 into out: UnsafeMutableRawPointer) -> Int {
        let ip = frame + l3
        let original = min(40 &+ Int(Wire.u16(ip, 4)), length &- l3)
        let quoted = min(original, maxIPv6Length &- 48)
        writeSwappedL2(answering: frame, l3: l3, into: out)
        let o = out + l3
        Wire.put32(o, 0, 0x6000_0000)
        Wire.put32(o, 4, UInt32(8 &+ quoted) << 16 | UInt32(IPProtocol.icmpv6) << 8 | UInt32(hopLimit))
        memcpy(o + 8, ip + 24, 16)
        memcpy(o + 24, ip + 8, 16)
        let icmp = o + 40
        Wire.put32(icmp, 0, 0x0200_0000)
        Wire.put32(icmp, 4, mtu)
        memcpy(icmp + 8, ip, quoted)
        Wire.put16(icmp, 2, Checksum.transportIPv6(icmp, length: 8 &+ quoted, source: o + 8, destination: o + 24,
                                                   nextHeader: IPProtocol.icmpv6))
        return l3 &+ 48 &+ quoted
    }

    /// The ethertype after up to two VLAN tags and the offset of the network header, for a frame
    /// of at least 14 bytes.
    public static func networkHeader(_ frame: UnsafeRawPointer, length: Int) -> (etherType: UInt16, l3: Int) {
        let l2 = L2.parse(frame, length: length)
        return (l2.etherType, l2.l3Offset)
    }

    /// The original's L2 header (tags too) with source and destination swapped.
    static func writeSwappedL2(answering frame: UnsafeRawPointer, l3: Int, into out: UnsafeMutableRawPointer) {
        memcpy(out, frame, l3)
        Wire.putMAC(out, 0, Ethernet.source(frame))
        Wire.putMAC(out, 6, Ethernet.destination(frame))
    }
}
