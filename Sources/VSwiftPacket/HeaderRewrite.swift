/// In-place header rewrites on a raw frame: the set-field actions of a flow (mod_dl_*, mod_nw_*,
/// mod_tp_*, dec_ttl, IPv6 addresses and flow label, ECN, ARP fields, VLAN modify/push/pop), with
/// checksums kept right.
///
/// Header location: each action re-parses the frame itself (L2 + up to two VLAN tags, the IP header,
/// the IPv6 extension chain when L4 is needed) with the *same validity rules as `FlowExtractor`*: an
/// action applies exactly to the headers extraction would have parsed, and never to anything else.
/// The dominant case (an untagged IPv4 frame) costs an ethertype compare and four header sanity
/// compares before the store and the incremental checksum updates. No offsets need to be carried
/// between extraction and actions, so VLAN push/pop in between cannot leave them stale.
///
/// Checksums (RFC 1624 incremental updates, so a checksum that was wrong stays exactly as wrong):
/// - IPv4 header checksum on any IPv4 header change;
/// - TCP/UDP checksums (and ICMPv6 for IPv6 addresses) for address changes through the
///   pseudo-header, and for port changes; a zero UDP checksum (none) stays zero, and an updated UDP
///   checksum that comes out 0 is stored as 0xffff;
/// - no L4 update for later fragments (they have no L4 header) — their ports are not rewritten at
///   all; first fragments are updated (the field is in the first fragment);
/// - an IPv6 destination change under a routing header with segments left > 0 does not touch the
///   L4 checksum (the pseudo-header uses the final destination), as OVS;
/// - SCTP CRC32c after a port change: incremental too (CRC32c is affine in the message, see
///   `Checksum.crc32cDelta`), O(log n) and independent of the payload, so a correct CRC stays
///   correct and a wrong one stays wrong (as OVS). A fragmented SCTP packet gets its ports rewritten
///   but its CRC cannot be updated (it covers bytes in other fragments).
///
/// A frame that is too short or does not carry the header is left untouched (`.notApplicable`);
/// nothing is read or written outside `[frame, frame + length)` except by `pushVLAN` (and the VLAN
/// setters that push), which write the 4 bytes before `frame` only when `headroom >= 4`.
public enum HeaderRewrite {
    public enum Result: UInt8, Sendable {
        /// The header was rewritten (or already had the value).
        case done
        /// The frame does not carry a (valid) header this action applies to; it is unchanged.
        case notApplicable
        /// dec_ttl: the TTL/hop limit was ≤ 1; the packet must be dropped (it is unchanged).
        case drop
        /// A tag push needed 4 bytes of headroom that are not there; the frame is unchanged.
        case noRoom
    }

    // MARK: Ethernet

    @inlinable @inline(__always)
    public static func setEthernetSource(_ frame: UnsafeMutableRawPointer, length: Int, _ mac: UInt64) -> Result {
        guard length >= 14 else { return .notApplicable }
        Wire.putMAC(frame, 6, mac)
        return .done
    }

    @inlinable @inline(__always)
    public static func setEthernetDestination(_ frame: UnsafeMutableRawPointer, length: Int, _ mac: UInt64) -> Result {
        guard length >= 14 else { return .notApplicable }
        Wire.putMAC(frame, 0, mac)
        return .done
    }

    // MARK: IPv4 addresses

    /// mod_nw_src for IPv4 (ARP is not rewritten).
    @inlinable
    public static func setIPv4Source(_ frame: UnsafeMutableRawPointer, length: Int, _ address: UInt32) -> Result {
        setIPv4Address(frame, length: length, address, field: 12)
    }

    /// mod_nw_dst for IPv4.
    @inlinable
    public static func setIPv4Destination(_ frame: UnsafeMutableRawPointer, length: Int, _ address: UInt32) -> Result {
        setIPv4Address(frame, length: length, address, field: 16)
    }

    @inlinable @inline(__always)
    static func setIPv4Address(_ p: UnsafeMutableRawPointer, length: Int, _ new: UInt32, field: Int) -> Result {
        guard let ip = IPLocation.ipv4(p, length: length) else { return .notApplicable }
        let at = ip.l3 &+ field
        let old = Wire.u32(p, at)
        if old == new { return .done }
        Wire.put32(p, at, new)
        let sum = ip.l3 &+ 10
        Wire.put16(p, sum, Checksum.update(checksum: Wire.u16(p, sum), old32: old, new32: new))
        if ip.hasL4 {
            switch ip.proto {
            case IPProtocol.tcp:
                guard ip.l4Length >= 20 else { break }
                let c = ip.l4 &+ 16
                Wire.put16(p, c, Checksum.update(checksum: Wire.u16(p, c), old32: old, new32: new))
            case IPProtocol.udp:
                guard ip.l4Length >= 8 else { break }
                let c = ip.l4 &+ 6
                let checksum = Wire.u16(p, c)
                if checksum != 0 { Wire.put16(p, c, udp(Checksum.update(checksum: checksum, old32: old, new32: new))) }
            default:
                break // ICMP has no pseudo-header; SCTP's CRC does not cover addresses.
            }
        }
        return .done
    }

    // MARK: IPv6 addresses

    /// set_field:…->ipv6_src, the address as (high, low) 64-bit words (as in a `FlowKey`).
    @inlinable
    public static func setIPv6Source(_ frame: UnsafeMutableRawPointer, length: Int, high: UInt64, low: UInt64) -> Result {
        setIPv6Address(frame, length: length, (high, low), field: 8)
    }

    /// set_field:…->ipv6_dst.
    @inlinable
    public static func setIPv6Destination(_ frame: UnsafeMutableRawPointer, length: Int, high: UInt64, low: UInt64) -> Result {
        setIPv6Address(frame, length: length, (high, low), field: 24)
    }

    @inlinable @inline(__always)
    static func setIPv6Address(_ p: UnsafeMutableRawPointer, length: Int, _ new: (UInt64, UInt64), field: Int) -> Result {
        guard let l3 = IPLocation.ipv6Header(p, length: length) else { return .notApplicable }
        let at = l3 &+ field
        let old = (Wire.u64(p, at), Wire.u64(p, at &+ 8))
        if old == new { return .done }
        Wire.put64(p, at, new.0)
        Wire.put64(p, at &+ 8, new.1)
        let ip = IPLocation.ipv6(p, l3: l3, length: length)
        guard ip.hasL4 else { return .done }
        if field == 24 && ip.routingActive { return .done }
        let c: Int
        switch ip.proto {
        case IPProtocol.tcp:
            guard ip.l4Length >= 20 else { return .done }
            c = ip.l4 &+ 16
        case IPProtocol.udp:
            guard ip.l4Length >= 8 else { return .done }
            c = ip.l4 &+ 6
            let checksum = Wire.u16(p, c)
            if checksum != 0 { Wire.put16(p, c, udp(Checksum.update(checksum: checksum, old128: old, new128: new))) }
            return .done
        case IPProtocol.icmpv6:
            guard ip.l4Length >= 4 else { return .done }
            c = ip.l4 &+ 2
        default:
            return .done
        }
        Wire.put16(p, c, Checksum.update(checksum: Wire.u16(p, c), old128: old, new128: new))
        return .done
    }

    // MARK: TOS / TTL

    /// mod_nw_tos: sets the DSCP bits (the upper six bits of `tos`; its low two bits are ignored) and
    /// keeps ECN. IPv4 (header checksum updated) and IPv6 (traffic class).
    @inlinable
    public static func setNetworkTOS(_ frame: UnsafeMutableRawPointer, length: Int, _ tos: UInt8) -> Result {
        setTrafficClass(frame, length: length, bits: 0xfc, tos)
    }

    /// set_field:…->nw_ecn / mod_nw_ecn: the ECN bits (the low two bits of the IPv4 TOS or IPv6
    /// traffic class), keeping DSCP. IPv4's header checksum is updated; IPv6 has none.
    @inlinable
    public static func setECN(_ frame: UnsafeMutableRawPointer, length: Int, _ ecn: UInt8) -> Result {
        setTrafficClass(frame, length: length, bits: 0x03, ecn)
    }

    /// The `bits` of the IPv4 TOS byte (header checksum updated) or IPv6 traffic class set from
    /// `value` (in place: same bit positions), the other bits kept.
    @inlinable
    static func setTrafficClass(_ frame: UnsafeMutableRawPointer, length: Int, bits: UInt8, _ value: UInt8) -> Result {
        guard length >= 14 else { return .notApplicable }
        let l2 = L2.parse(frame, length: length)
        if l2.etherType == EtherType.ipv4 {
            guard let ip = IPv4Location(frame, l3: l2.l3Offset, length: length) else { return .notApplicable }
            let old = Wire.u16(frame, ip.l3) // version/IHL, TOS
            let new = (old & ~UInt16(bits)) | UInt16(value & bits)
            Wire.put16(frame, ip.l3, new)
            let sum = ip.l3 &+ 10
            Wire.put16(frame, sum, Checksum.update(checksum: Wire.u16(frame, sum), old16: old, new16: new))
            return .done
        }
        guard let l3 = IPLocation.ipv6Header(frame, length: length) else { return .notApplicable }
        let word = Wire.u32(frame, l3) // version(4) traffic class(8) flow label(20)
        Wire.put32(frame, l3, (word & ~(UInt32(bits) << 20)) | UInt32(value & bits) << 20)
        return .done
    }

    /// set_field:…->ipv6_label: the 20-bit flow label (no checksum covers it).
    @inlinable
    public static func setIPv6FlowLabel(_ frame: UnsafeMutableRawPointer, length: Int, _ label: UInt32) -> Result {
        guard let l3 = IPLocation.ipv6Header(frame, length: length) else { return .notApplicable }
        let word = Wire.u32(frame, l3)
        Wire.put32(frame, l3, (word & 0xfff0_0000) | (label & 0x000f_ffff))
        return .done
    }

    /// dec_ttl: IPv4 TTL (header checksum updated) or IPv6 hop limit. `.drop` when it is ≤ 1 (the
    /// packet is left unchanged and must not be forwarded); `.notApplicable` for non-IP frames.
    @inlinable
    public static func decrementTTL(_ frame: UnsafeMutableRawPointer, length: Int) -> Result {
        guard length >= 14 else { return .notApplicable }
        let l2 = L2.parse(frame, length: length)
        if l2.etherType == EtherType.ipv4 {
            guard let ip = IPv4Location(frame, l3: l2.l3Offset, length: length) else { return .notApplicable }
            let old = Wire.u16(frame, ip.l3 &+ 8) // TTL, protocol
            guard old > 0x1ff else { return .drop }
            let new = old &- 0x100
            Wire.put16(frame, ip.l3 &+ 8, new)
            let sum = ip.l3 &+ 10
            Wire.put16(frame, sum, Checksum.update(checksum: Wire.u16(frame, sum), old16: old, new16: new))
            return .done
        }
        guard let l3 = IPLocation.ipv6Header(frame, length: length) else { return .notApplicable }
        let hopLimit = Wire.u8(frame, l3 &+ 7)
        guard hopLimit > 1 else { return .drop }
        Wire.put8(frame, l3 &+ 7, hopLimit &- 1)
        return .done
    }

    /// set_field:…->nw_ttl: IPv4 TTL (header checksum updated) or IPv6 hop limit.
    @inlinable
    public static func setTTL(_ frame: UnsafeMutableRawPointer, length: Int, _ ttl: UInt8) -> Result {
        guard length >= 14 else { return .notApplicable }
        let l2 = L2.parse(frame, length: length)
        if l2.etherType == EtherType.ipv4 {
            guard let ip = IPv4Location(frame, l3: l2.l3Offset, length: length) else { return .notApplicable }
            let old = Wire.u16(frame, ip.l3 &+ 8)
            let new = UInt16(ttl) << 8 | (old & 0xff)
            Wire.put16(frame, ip.l3 &+ 8, new)
            let sum = ip.l3 &+ 10
            Wire.put16(frame, sum, Checksum.update(checksum: Wire.u16(frame, sum), old16: old, new16: new))
            return .done
        }
        guard let l3 = IPLocation.ipv6Header(frame, length: length) else { return .notApplicable }
        Wire.put8(frame, l3 &+ 7, ttl)
        return .done
    }

    // MARK: ARP

    /// A field of an Ethernet/IPv4 ARP body, by its offset in the body (its width follows).
    public enum ARPField: Int, Sendable {
        case operation = 6              // arp_op, 16 bits
        case senderHardwareAddress = 8  // arp_sha, 48 bits
        case senderProtocolAddress = 14 // arp_spa, 32 bits
        case targetHardwareAddress = 18 // arp_tha, 48 bits
        case targetProtocolAddress = 24 // arp_tpa, 32 bits
    }

    /// set_field:…->arp_op/arp_sha/arp_spa/arp_tha/arp_tpa: `value`'s low 16, 48 or 32 bits.
    @inlinable
    public static func setARP(_ field: ARPField, _ frame: UnsafeMutableRawPointer, length: Int, _ value: UInt64) -> Result {
        guard let l3 = ARPLocation.header(frame, length: length) else { return .notApplicable }
        let offset = l3 &+ field.rawValue
        switch field {
        case .operation: Wire.put16(frame, offset, UInt16(truncatingIfNeeded: value))
        case .senderHardwareAddress, .targetHardwareAddress: Wire.putMAC(frame, offset, value)
        case .senderProtocolAddress, .targetProtocolAddress: Wire.put32(frame, offset, UInt32(truncatingIfNeeded: value))
        }
        return .done
    }

    // MARK: Transport ports

    /// mod_tp_src: TCP, UDP or SCTP source port (IPv4 or IPv6), checksum updated.
    @inlinable
    public static func setTransportSource(_ frame: UnsafeMutableRawPointer, length: Int, _ port: UInt16) -> Result {
        setPort(frame, length: length, port, field: 0)
    }

    /// mod_tp_dst: TCP, UDP or SCTP destination port (IPv4 or IPv6), checksum updated.
    @inlinable
    public static func setTransportDestination(_ frame: UnsafeMutableRawPointer, length: Int, _ port: UInt16) -> Result {
        setPort(frame, length: length, port, field: 2)
    }

    @inlinable @inline(__always)
    static func setPort(_ p: UnsafeMutableRawPointer, length: Int, _ port: UInt16, field: Int) -> Result {
        guard let ip = IPLocation.any(p, length: length), ip.hasL4 else { return .notApplicable }
        let at = ip.l4 &+ field
        switch ip.proto {
        case IPProtocol.tcp:
            guard ip.l4Length >= 20 else { return .notApplicable }
            let old = Wire.u16(p, at)
            Wire.put16(p, at, port)
            let c = ip.l4 &+ 16
            Wire.put16(p, c, Checksum.update(checksum: Wire.u16(p, c), old16: old, new16: port))
        case IPProtocol.udp:
            guard ip.l4Length >= 8 else { return .notApplicable }
            let old = Wire.u16(p, at)
            Wire.put16(p, at, port)
            let c = ip.l4 &+ 6
            let checksum = Wire.u16(p, c)
            if checksum != 0 { Wire.put16(p, c, udp(Checksum.update(checksum: checksum, old16: old, new16: port))) }
        case IPProtocol.sctp:
            guard ip.l4Length >= 12 else { return .notApplicable }
            let oldPorts = p.loadUnaligned(fromByteOffset: ip.l4, as: UInt32.self)
            Wire.put16(p, at, port)
            guard !ip.isFragment else { break }
            let newPorts = p.loadUnaligned(fromByteOffset: ip.l4, as: UInt32.self)
            let delta = UInt32(littleEndian: oldPorts ^ newPorts)
            if delta != 0 {
                let c = ip.l4 &+ 8 // CRC32c, stored little-endian
                let crc = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: c, as: UInt32.self))
                let updated = crc ^ Checksum.crc32cDelta(firstWordXOR: delta, length: ip.l4Length)
                p.storeBytes(of: updated.littleEndian, toByteOffset: c, as: UInt32.self)
            }
        default:
            return .notApplicable
        }
        return .done
    }

    /// A computed UDP checksum of 0 is sent as 0xffff (0 means "no checksum").
    @inlinable @inline(__always)
    static func udp(_ checksum: UInt16) -> UInt16 { checksum == 0 ? 0xffff : checksum }

    // MARK: VLAN

    /// push_vlan: a new outermost tag (`tpid`, normally 0x8100 or 0x88a8, and `tci`) after the MACs.
    /// The 12 MAC bytes move 4 bytes back into the headroom (`headroom` = bytes available in the
    /// buffer before `frame`); the payload is not copied. On `.done`, `frame` is 4 bytes earlier and
    /// `length` 4 bytes longer (so the caller's headroom is 4 bytes less).
    @inlinable @inline(__always)
    public static func pushVLAN(_ frame: inout UnsafeMutableRawPointer, length: inout Int, headroom: Int,
                                tpid: UInt16, tci: UInt16) -> Result {
        guard length >= 14 else { return .notApplicable }
        guard headroom >= 4 else { return .noRoom }
        let old = frame
        let macs0 = old.loadUnaligned(as: UInt64.self)
        let macs1 = old.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        let new = old - 4
        new.storeBytes(of: macs0, as: UInt64.self)
        new.storeBytes(of: macs1, toByteOffset: 8, as: UInt32.self)
        Wire.put32(new, 12, UInt32(tpid) << 16 | UInt32(tci))
        frame = new
        length &+= 4
        return .done
    }

    /// strip_vlan / pop_vlan: removes the outermost 802.1Q/802.1ad tag by moving the MACs 4 bytes
    /// forward. On `.done`, `frame` is 4 bytes later and `length` 4 bytes shorter.
    @inlinable @inline(__always)
    public static func popVLAN(_ frame: inout UnsafeMutableRawPointer, length: inout Int) -> Result {
        guard length >= 18, EtherType.isVLAN(Wire.u16(frame, 12)) else { return .notApplicable }
        let old = frame
        let macs0 = old.loadUnaligned(as: UInt64.self)
        let macs1 = old.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        let new = old + 4
        new.storeBytes(of: macs0, as: UInt64.self)
        new.storeBytes(of: macs1, toByteOffset: 8, as: UInt32.self)
        frame = new
        length &-= 4
        return .done
    }

    /// mod_vlan_vid: sets the VID of the outermost tag; an untagged frame gets a new 802.1Q tag with
    /// this VID and PCP 0 (as OVS), which moves `frame`/`length` like `pushVLAN`.
    @inlinable
    public static func setVLANID(_ frame: inout UnsafeMutableRawPointer, length: inout Int, headroom: Int,
                                 _ vid: UInt16) -> Result {
        modifyOrPushTag(&frame, length: &length, headroom: headroom, keep: 0xf000, set: vid & 0x0fff)
    }

    /// mod_vlan_pcp: sets the PCP of the outermost tag; an untagged frame gets a new 802.1Q tag with
    /// VID 0 and this PCP (as OVS).
    @inlinable
    public static func setVLANPriority(_ frame: inout UnsafeMutableRawPointer, length: inout Int, headroom: Int,
                                       _ pcp: UInt8) -> Result {
        modifyOrPushTag(&frame, length: &length, headroom: headroom, keep: 0x1fff, set: UInt16(pcp & 7) << 13)
    }

    @inlinable @inline(__always)
    static func modifyOrPushTag(_ frame: inout UnsafeMutableRawPointer, length: inout Int, headroom: Int,
                                keep: UInt16, set: UInt16) -> Result {
        guard length >= 14 else { return .notApplicable }
        if EtherType.isVLAN(Wire.u16(frame, 12)) {
            guard length >= 18 else { return .notApplicable }
            Wire.put16(frame, 14, (Wire.u16(frame, 14) & keep) | set)
            return .done
        }
        return pushVLAN(&frame, length: &length, headroom: headroom, tpid: EtherType.vlan, tci: set)
    }
}

/// Where the IP header and the transport header are, by the extractor's rules.
@usableFromInline
struct IPLocation {
    @usableFromInline var l3: Int
    @usableFromInline var l4: Int
    /// IP payload bytes from `l4` (by the IP length fields; within the frame).
    @usableFromInline var l4Length: Int
    @usableFromInline var proto: UInt8
    /// Not a later fragment, and (IPv6) the extension chain is valid: an L4 header may be at `l4`.
    @usableFromInline var hasL4: Bool
    /// Any fragment (first or later).
    @usableFromInline var isFragment: Bool
    @usableFromInline var routingActive = false

    @inlinable @inline(__always)
    init(l3: Int, l4: Int, l4Length: Int, proto: UInt8, hasL4: Bool, isFragment: Bool) {
        self.l3 = l3
        self.l4 = l4
        self.l4Length = l4Length
        self.proto = proto
        self.hasL4 = hasL4
        self.isFragment = isFragment
    }

    @inlinable @inline(__always)
    static func ipv4(_ p: UnsafeRawPointer, length: Int) -> IPLocation? {
        guard length >= 14 else { return nil }
        let l2 = L2.parse(p, length: length)
        guard l2.etherType == EtherType.ipv4 else { return nil }
        return ipv4(p, l3: l2.l3Offset, length: length)
    }

    @inlinable @inline(__always)
    static func ipv4(_ p: UnsafeRawPointer, l3: Int, length: Int) -> IPLocation? {
        guard let ip = IPv4Location(p, l3: l3, length: length) else { return nil }
        let frag = Wire.u16(p, l3 &+ 6)
        return IPLocation(l3: l3, l4: ip.l4, l4Length: ip.l4Length, proto: Wire.u8(p, l3 &+ 9),
                          hasL4: frag & 0x1fff == 0, isFragment: frag & 0x3fff != 0)
    }

    /// The offset of a valid fixed IPv6 header (version 6, payload within the frame), or nil.
    @inlinable @inline(__always)
    static func ipv6Header(_ p: UnsafeRawPointer, length: Int) -> Int? {
        guard length >= 14 else { return nil }
        let l2 = L2.parse(p, length: length)
        guard l2.etherType == EtherType.ipv6 else { return nil }
        return ipv6Header(p, l3: l2.l3Offset, length: length)
    }

    @inlinable @inline(__always)
    static func ipv6Header(_ p: UnsafeRawPointer, l3: Int, length: Int) -> Int? {
        guard length &- l3 >= IPv6Walk.headerLength, Wire.u8(p, l3) >> 4 == 6 else { return nil }
        guard l3 &+ IPv6Walk.headerLength &+ Int(Wire.u16(p, l3 &+ 4)) <= length else { return nil }
        return l3
    }

    /// The transport location behind a valid IPv6 header at `l3`.
    @inlinable @inline(__always)
    static func ipv6(_ p: UnsafeRawPointer, l3: Int, length: Int) -> IPLocation {
        let end = l3 &+ IPv6Walk.headerLength &+ Int(Wire.u16(p, l3 &+ 4))
        let chain = IPv6Walk(p, start: l3 &+ IPv6Walk.headerLength, end: end, nextHeader: Wire.u8(p, l3 &+ 6))
        var ip = IPLocation(l3: l3, l4: chain.l4, l4Length: end &- chain.l4, proto: chain.proto,
                            hasL4: chain.isValid && UInt64(chain.frag) & Frag.later == 0,
                            isFragment: chain.frag != 0)
        ip.routingActive = chain.routingActive
        return ip
    }

    /// IPv4 or IPv6.
    @inlinable @inline(__always)
    static func any(_ p: UnsafeRawPointer, length: Int) -> IPLocation? {
        guard length >= 14 else { return nil }
        let l2 = L2.parse(p, length: length)
        if l2.etherType == EtherType.ipv4 { return ipv4(p, l3: l2.l3Offset, length: length) }
        guard l2.etherType == EtherType.ipv6, let l3 = ipv6Header(p, l3: l2.l3Offset, length: length) else {
            return nil
        }
        return ipv6(p, l3: l3, length: length)
    }
}

/// Where an ARP/RARP header is, by the extractor's rules (`FlowExtractor.parseARP`): Ethernet/IPv4
/// ARP only, all 28 bytes in the frame. ARP has no checksum.
@usableFromInline
enum ARPLocation {
    @inlinable @inline(__always)
    static func header(_ p: UnsafeRawPointer, length: Int) -> Int? {
        guard length >= 14 else { return nil }
        let l2 = L2.parse(p, length: length)
        guard l2.etherType == EtherType.arp || l2.etherType == EtherType.rarp else { return nil }
        let l3 = l2.l3Offset
        // htype 1 (Ethernet), ptype 0x0800, hlen 6, plen 4.
        guard length &- l3 >= 28, Wire.u64(p, l3) >> 16 == 0x0001_0800_0604 else { return nil }
        return l3
    }
}
