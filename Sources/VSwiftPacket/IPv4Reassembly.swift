/// IPv4 fragments (RFC 791 §3.2) into the shared `FragmentReassembler`: reading a fragment's
/// header, and the reassembled header — the first fragment's, with total length, MF, offset and
/// checksum set.
extension FragmentReassembler {
    /// Takes the IPv4 fragment at `ip` (`length` bytes from its header on; its header checksum
    /// already verified by the caller, and MF or the offset set).
    public func addIPv4(_ ip: UnsafeRawPointer, length: Int, now: UInt64) -> Outcome {
        guard length >= 20 else { return .malformed }
        let headerLength = Int(Wire.u8(ip, 0) & 0x0f) &<< 2
        let total = Int(Wire.u16(ip, 2))
        guard Wire.u8(ip, 0) >> 4 == 4, headerLength >= 20, total >= headerLength, total <= length else { return .malformed }
        let field = Wire.u16(ip, 6)
        let outcome = add(Fragment(source: IPAddress(ipv4: Wire.u32(ip, 12)), destination: IPAddress(ipv4: Wire.u32(ip, 16)),
                                   identification: UInt32(Wire.u16(ip, 4)), proto: Wire.u8(ip, 9),
                                   header: ip, headerLength: headerLength, payload: ip + headerLength,
                                   start: Int(field & 0x1fff) &<< 3, size: total &- headerLength, more: field & 0x2000 != 0),
                          now: now)
        guard outcome == .complete else { return outcome }
        let kept = keptHeader(completed)
        let header = kept.header
        Wire.put16(header, 2, UInt16(kept.headerLength &+ kept.payloadLength))
        Wire.put16(header, 6, Wire.u16(header, 6) & 0x4000)
        Wire.put16(header, 10, 0)
        Wire.put16(header, 10, Checksum.checksum(header, length: kept.headerLength))
        return .complete
    }

    /// The offset of the IPv4 header when the frame at `frame` (Ethernet, up to two VLAN tags) is
    /// a UDP fragment (MF set or an offset) with a well-formed header (RFC 791: version 4, IHL at
    /// least 5, total length within the frame, header checksum); else 0.
    public static func ipv4UDPFragmentOffset(_ frame: UnsafeRawPointer, length: Int) -> Int {
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
}
