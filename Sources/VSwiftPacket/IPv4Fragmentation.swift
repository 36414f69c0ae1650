import Glibc

/// Splitting an IPv4 packet into fragments (RFC 791 §3.2, "fragmentation"), for a tunnel ingress
/// whose encapsulated packet would not fit the egress MTU while the inner packet allows it (DF
/// clear: RFC 9300 §7.1's stateless approach fragments the inner packet, so each piece is
/// encapsulated and reassembled by the destination host, not by the ETR).
///
/// The caller copies the payload; these functions write the headers. Nothing is allocated.
public enum IPv4Fragmentation {
    /// Payload bytes per fragment so that a fragment with a `headerLength`-byte header is at most
    /// `maxPacket` bytes: a multiple of 8 (the offset's unit), or 0 when not even 8 bytes fit.
    @inlinable
    public static func payloadPerFragment(maxPacket: Int, headerLength: Int) -> Int {
        max(0, (maxPacket &- headerLength) & ~7)
    }

    /// Writes at `out` (room for 60 bytes) the header of a fragment other than the first of the
    /// packet whose `headerLength`-byte header is at `ip`: the fixed 20 bytes, then only the
    /// options whose copied flag (0x80) is set (RFC 791 §3.1), padded with end-of-list bytes to
    /// a multiple of 4, IHL updated. A malformed option ends the copy. Returns the header length.
    public static func laterFragmentHeader(_ ip: UnsafeRawPointer, headerLength: Int,
                                           into out: UnsafeMutableRawPointer) -> Int {
        memcpy(out, ip, 20)
        var o = 20
        var i = 20
        while i < headerLength {
            let type = Wire.u8(ip, i)
            if type == 0 { break }                    // end of option list
            if type == 1 { i &+= 1; continue }        // no-operation: not copied
            guard i &+ 1 < headerLength else { break }
            let optionLength = Int(Wire.u8(ip, i &+ 1))
            guard optionLength >= 2, i &+ optionLength <= headerLength else { break }
            if type & 0x80 != 0 {
                memcpy(out + o, ip + i, optionLength)
                o &+= optionLength
            }
            i &+= optionLength
        }
        while o & 3 != 0 {
            Wire.put8(out, o, 0)
            o &+= 1
        }
        Wire.put8(out, 0, 0x40 | UInt8(o >> 2))
        return o
    }

    /// Makes the header at `ip` a fragment's: total length `headerLength + payloadLength`, flags
    /// MF (`moreFragments`; DF is clear, or there would be no fragmenting), fragment offset
    /// `offset` bytes (a multiple of 8), and the header checksum.
    public static func finishHeader(_ ip: UnsafeMutableRawPointer, headerLength: Int, payloadLength: Int,
                                    offset: Int, moreFragments: Bool) {
        Wire.put16(ip, 2, UInt16(truncatingIfNeeded: headerLength &+ payloadLength))
        Wire.put16(ip, 6, (moreFragments ? 0x2000 : 0) | UInt16(truncatingIfNeeded: offset >> 3) & 0x1fff)
        Wire.put16(ip, 10, 0)
        Wire.put16(ip, 10, Checksum.checksum(ip, length: headerLength))
    }
}
