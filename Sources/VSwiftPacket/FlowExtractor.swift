/// Flow-key extraction from a raw Ethernet frame, in the manner of OVS's `flow_extract`.
///
/// What is parsed:
/// - Ethernet II: `dl_src`, `dl_dst`, `dl_type`. An 802.3 length field (< 0x600) gives
///   `dl_type = 0x05ff` (OVS's `FLOW_DL_TYPE_NONE`) and nothing above L2 (LLC/SNAP is not parsed).
/// - Up to two 802.1Q (0x8100) / 802.1ad (0x88a8) tags, with the present bit 0x1000 set in the TCI:
///   one tag → `vlan_tci`; two → outer in `vlan_outer_tci`, inner in `vlan_tci`. A third tag is
///   not parsed: `dl_type` is then its TPID and nothing above L2 is extracted (as OVS).
/// - ARP/RARP for Ethernet/IPv4 only: `arp_op` (when ≤ 0xff) in `nw_proto`, `spa`/`tpa` in
///   `nw_src`/`nw_dst`, `arp_sha`/`arp_tha`.
/// - IPv4: addresses, `nw_proto`, `nw_tos`, `nw_ttl`, `nw_frag`. A header with version ≠ 4,
///   IHL < 5, IHL beyond the frame, or a total length < IHL or beyond the frame is invalid: only L2
///   is recorded (the version checks, here and for IPv6, are stricter than OVS). Ethernet padding
///   after the total length is ignored. Later fragments have no L4.
/// - IPv6: addresses, `ipv6_label`, `nw_tos` (traffic class), `nw_ttl` (hop limit), then the
///   extension headers hop-by-hop, routing, destination options, AH and fragment are skipped with
///   bounds checks, at most `IPv6Walk.maxExtensionHeaders` of them. A fragment header sets
///   `nw_frag`; a later fragment stops with `nw_proto` = 44 (as OVS). A version ≠ 6 or a payload
///   length beyond the frame records only L2; a truncated, overlong or too long chain of extension
///   headers records only L2 and the addresses (as OVS).
/// - L4 (not for later fragments), each only if its header fits in the IP payload: TCP (20 bytes:
///   ports, 12-bit `tcp_flags`), UDP (8: ports), SCTP (12: ports), ICMP over IPv4 and ICMPv6 over
///   IPv6 (8: type in `tp_src`, code in `tp_dst`).
///
/// Never reads outside `[frame, frame + length)`; whatever the bytes, extraction returns.
///
/// Tunnel metadata (w12 `tun_id`, w13 `tun_src`/`tun_dst`) is zeroed like everything else; a port
/// that has tunnel metadata (LISP decap) either uses the `tunnelID:tunnelSource:tunnelDestination:`
/// overload or sets w12/w13 after extraction.
public enum FlowExtractor {
    /// Extracts the flow key of the frame of `length` bytes at `frame`, received on `inPort`, into
    /// `key` (which is fully overwritten; tunnel words are zero).
    @inlinable @inline(__always)
    public static func extract(_ frame: UnsafeRawPointer, length: Int, inPort: UInt32,
                               into key: UnsafeMutablePointer<FlowKey>) {
        reset(key, inPort: inPort)
        parse(frame, length: length, into: key)
    }

    /// `key` with only the input port set. Word stores rather than `FlowKey()`, so that nothing
    /// here is a cross-module call.
    @inlinable @inline(__always)
    static func reset(_ key: UnsafeMutablePointer<FlowKey>, inPort: UInt32) {
        key.pointee.w0 = UInt64(inPort)
        key.pointee.w1 = 0; key.pointee.w2 = 0; key.pointee.w3 = 0; key.pointee.w4 = 0
        key.pointee.w5 = 0; key.pointee.w6 = 0; key.pointee.w7 = 0; key.pointee.w8 = 0
        key.pointee.w9 = 0; key.pointee.w10 = 0; key.pointee.w11 = 0; key.pointee.w12 = 0
        key.pointee.w13 = 0; key.pointee.w14 = 0; key.pointee.w15 = 0
    }

    /// As `extract(_:length:inPort:into:)`, also setting the tunnel metadata (w12, w13).
    @inlinable @inline(__always)
    public static func extract(_ frame: UnsafeRawPointer, length: Int, inPort: UInt32,
                               tunnelID: UInt64, tunnelSource: UInt32, tunnelDestination: UInt32,
                               into key: UnsafeMutablePointer<FlowKey>) {
        extract(frame, length: length, inPort: inPort, into: key)
        key.pointee.w12 = tunnelID
        key.pointee.w13 = UInt64(tunnelDestination) | UInt64(tunnelSource) << 32
    }

    /// As `extract(_:length:inPort:into:)`, but stops after the Ethernet header and its VLAN tags:
    /// every L3/L4 field stays zero. Enough for a table whose masks satisfy `!looksPastLinkLayer`
    /// (a port-to-port patch, a MAC or VLAN table), which then skips the IP and L4 parsing.
    @inlinable @inline(__always)
    public static func extractLinkLayer(_ frame: UnsafeRawPointer, length: Int, inPort: UInt32,
                                        into key: UnsafeMutablePointer<FlowKey>) {
        reset(key, inPort: inPort)
        parse(frame, length: length, into: key, linkLayerOnly: true)
    }

    /// Whether a rule with this mask needs fields `extractLinkLayer` leaves zero: anything but
    /// in_port, dl_type, the VLAN tags, the MAC addresses and the tunnel metadata.
    public static func looksPastLinkLayer(_ mask: FlowKey) -> Bool {
        var linkLayer = FlowKey()
        for field in [FlowField.inPort, .dlType, .vlanTCI, .dlSrc, .dlDst, .vlanOuterTCI, .tunId, .tunSrc, .tunDst] {
            linkLayer.set(field, field.layout.valueMask)
        }
        return (0..<FlowKey.wordCount).contains { mask[word: $0] & ~linkLayer[word: $0] != 0 }
    }

    /// Everything after in_port. `key` is zero apart from w0 (in_port).
    @inlinable
    static func parse(_ p: UnsafeRawPointer, length: Int, into key: UnsafeMutablePointer<FlowKey>, linkLayerOnly: Bool = false) {
        guard length >= 14 else { return }
        key.pointee.w1 = Wire.mac8(p, 6) // source (bytes 6..<14)
        key.pointee.w2 = Wire.mac8(p, 0) // destination

        let l2 = L2.parse(p, length: length)
        key.pointee.w0 |= UInt64(l2.tci) << 48
        key.pointee.w4 = UInt64(l2.outerTCI) << 48
        if l2.etherType < 0x600 {
            key.pointee.w0 |= UInt64(L2.dlTypeNone) << 32
            return
        }
        key.pointee.w0 |= UInt64(l2.etherType) << 32
        if linkLayerOnly { return }
        let l3 = l2.l3Offset
        switch l2.etherType {
        case EtherType.ipv4: parseIPv4(p, l3: l3, length: length, into: key)
        case EtherType.ipv6: parseIPv6(p, l3: l3, length: length, into: key)
        case EtherType.arp, EtherType.rarp: parseARP(p, l3: l3, length: length, into: key)
        default: return
        }
    }

    @inlinable @inline(__always)
    static func parseIPv4(_ p: UnsafeRawPointer, l3: Int, length: Int, into key: UnsafeMutablePointer<FlowKey>) {
        guard let ip = IPv4Location(p, l3: l3, length: length) else { return }
        let tos = Wire.u8(p, l3 &+ 1)
        let fragField = Wire.u16(p, l3 &+ 6)
        let ttl = Wire.u8(p, l3 &+ 8)
        let proto = Wire.u8(p, l3 &+ 9)
        // Source and destination in one load: bytes 12..<20 = src(32) dst(32).
        let addresses = Wire.u64(p, l3 &+ 12)
        var frag: UInt64 = 0
        if fragField & 0x3fff != 0 {
            frag = Frag.any
            if fragField & 0x1fff != 0 { frag |= Frag.later }
        }
        key.pointee.w1 |= UInt64(proto) << 48 | UInt64(tos) << 56
        key.pointee.w2 |= UInt64(ttl) << 48 | frag << 56
        key.pointee.w3 = addresses // nw_src in the high half, nw_dst in the low half: the key's layout
        if frag & Frag.later != 0 { return }
        parseL4(p, l4: ip.l4, size: ip.l4Length, proto: proto, icmp: IPProtocol.icmp, into: key)
    }

    @inlinable @inline(__always)
    static func parseIPv6(_ p: UnsafeRawPointer, l3: Int, length: Int, into key: UnsafeMutablePointer<FlowKey>) {
        guard length &- l3 >= IPv6Walk.headerLength else { return }
        let first = Wire.u32(p, l3)
        guard first >> 28 == 6 else { return }
        let end = l3 &+ IPv6Walk.headerLength &+ Int(Wire.u16(p, l3 &+ 4))
        guard end <= length else { return }
        key.pointee.w6 = Wire.u64(p, l3 &+ 8)
        key.pointee.w7 = Wire.u64(p, l3 &+ 16)
        key.pointee.w8 = Wire.u64(p, l3 &+ 24)
        key.pointee.w9 = Wire.u64(p, l3 &+ 32)
        let chain = IPv6Walk(p, start: l3 &+ IPv6Walk.headerLength, end: end, nextHeader: Wire.u8(p, l3 &+ 6))
        guard chain.isValid else { return }
        key.pointee.w5 = UInt64(first & 0xfffff)
        key.pointee.w1 |= UInt64(chain.proto) << 48 | UInt64((first >> 20) & 0xff) << 56
        key.pointee.w2 |= UInt64(Wire.u8(p, l3 &+ 7)) << 48 | UInt64(chain.frag) << 56
        if UInt64(chain.frag) & Frag.later != 0 { return }
        parseL4(p, l4: chain.l4, size: end &- chain.l4, proto: chain.proto, icmp: IPProtocol.icmpv6, into: key)
    }

    /// L4 at `l4` with `size` bytes of IP payload. `icmp` is the ICMP protocol number of this IP
    /// version (1 for IPv4, 58 for IPv6); the other one is not parsed.
    @inlinable @inline(__always)
    static func parseL4(_ p: UnsafeRawPointer, l4: Int, size: Int, proto: UInt8, icmp: UInt8,
                        into key: UnsafeMutablePointer<FlowKey>) {
        switch proto {
        case IPProtocol.tcp:
            guard size >= 20 else { return }
            let ports = UInt64(Wire.u32(p, l4))
            let flags = UInt64(Wire.u16(p, l4 &+ 12) & 0x0fff)
            key.pointee.w4 |= ports | flags << 32
        case IPProtocol.udp:
            guard size >= 8 else { return }
            key.pointee.w4 |= UInt64(Wire.u32(p, l4))
        case IPProtocol.sctp:
            guard size >= 12 else { return }
            key.pointee.w4 |= UInt64(Wire.u32(p, l4))
        case icmp:
            guard size >= 8 else { return }
            // type in tp_src (bits 16..<32), code in tp_dst (bits 0..<16).
            key.pointee.w4 |= UInt64(Wire.u8(p, l4)) << 16 | UInt64(Wire.u8(p, l4 &+ 1))
        default:
            return
        }
    }

    @inlinable @inline(__always)
    static func parseARP(_ p: UnsafeRawPointer, l3: Int, length: Int, into key: UnsafeMutablePointer<FlowKey>) {
        guard length &- l3 >= 28 else { return }
        // htype 1 (Ethernet), ptype 0x0800, hlen 6, plen 4: bytes 0..<6 = 0001 0800 06 04.
        let head = Wire.u64(p, l3)
        guard head >> 16 == 0x0001_0800_0604 else { return }
        let op = head & 0xffff
        let spa = UInt64(Wire.u32(p, l3 &+ 14))
        let tpa = UInt64(Wire.u32(p, l3 &+ 24))
        key.pointee.w3 = tpa | spa << 32
        if op <= 0xff { key.pointee.w1 |= op << 48 }
        key.pointee.w10 = Wire.mac8(p, l3 &+ 8)
        key.pointee.w11 = Wire.mac8(p, l3 &+ 18)
    }
}

// MARK: Shared header location (used by extraction and by HeaderRewrite)

public enum EtherType {
    @inlinable public static var ipv4: UInt16 { 0x0800 }
    @inlinable public static var arp: UInt16 { 0x0806 }
    @inlinable public static var rarp: UInt16 { 0x8035 }
    @inlinable public static var ipv6: UInt16 { 0x86dd }
    @inlinable public static var vlan: UInt16 { 0x8100 }
    @inlinable public static var qinq: UInt16 { 0x88a8 }

    /// 802.1Q or 802.1ad tag.
    @inlinable @inline(__always)
    public static func isVLAN(_ type: UInt16) -> Bool { type == vlan || type == qinq }
}

public enum IPProtocol {
    @inlinable public static var hopByHop: UInt8 { 0 }
    @inlinable public static var icmp: UInt8 { 1 }
    @inlinable public static var tcp: UInt8 { 6 }
    @inlinable public static var udp: UInt8 { 17 }
    @inlinable public static var routing: UInt8 { 43 }
    @inlinable public static var fragment: UInt8 { 44 }
    @inlinable public static var ah: UInt8 { 51 }
    @inlinable public static var icmpv6: UInt8 { 58 }
    @inlinable public static var destinationOptions: UInt8 { 60 }
    @inlinable public static var sctp: UInt8 { 132 }
}

/// `nw_frag` bits (the values of `FlowConstants.fragAny`/`fragLater`, as inlinable literals).
@usableFromInline
enum Frag {
    @inlinable static var any: UInt64 { 1 }
    @inlinable static var later: UInt64 { 2 }
}

/// The L2 header: up to two VLAN tags, the ethertype and where L3 starts. Requires 14 bytes.
@usableFromInline
struct L2 {
    @inlinable static var dlTypeNone: UInt16 { 0x05ff }

    /// The ethertype after the tags (a TPID when a third tag was not parsed; < 0x600 for 802.3).
    @usableFromInline var etherType: UInt16
    @usableFromInline var l3Offset: Int
    /// OVS convention: 0 when absent, else TCI | 0x1000.
    @usableFromInline var tci: UInt16 = 0
    @usableFromInline var outerTCI: UInt16 = 0

    @inlinable @inline(__always)
    init(etherType: UInt16, l3Offset: Int) {
        self.etherType = etherType
        self.l3Offset = l3Offset
    }

    /// A tag is parsed only if the tag and the ethertype after it fit (as OVS's parse_vlan).
    @inlinable @inline(__always)
    static func parse(_ p: UnsafeRawPointer, length: Int) -> L2 {
        var l2 = L2(etherType: Wire.u16(p, 12), l3Offset: 14)
        if EtherType.isVLAN(l2.etherType) && length >= 18 {
            l2.tci = Wire.u16(p, 14) | 0x1000
            l2.etherType = Wire.u16(p, 16)
            l2.l3Offset = 18
            if EtherType.isVLAN(l2.etherType) && length >= 22 {
                l2.outerTCI = l2.tci
                l2.tci = Wire.u16(p, 18) | 0x1000
                l2.etherType = Wire.u16(p, 20)
                l2.l3Offset = 22
            }
        }
        return l2
    }
}

/// A valid IPv4 header at `l3` (the same validity rule as extraction).
@usableFromInline
struct IPv4Location {
    @usableFromInline var l3: Int
    /// Start of L4 and the bytes of IP payload (by total length, within the frame).
    @usableFromInline var l4: Int
    @usableFromInline var l4Length: Int

    @inlinable @inline(__always)
    init?(_ p: UnsafeRawPointer, l3: Int, length: Int) {
        let available = length &- l3
        guard available >= 20 else { return nil }
        let versionIHL = Wire.u8(p, l3)
        guard versionIHL >> 4 == 4 else { return nil }
        let ihl = Int(versionIHL & 0x0f) &<< 2
        guard ihl >= 20 && ihl <= available else { return nil }
        let total = Int(Wire.u16(p, l3 &+ 2))
        guard total >= ihl && total <= available else { return nil }
        self.l3 = l3
        self.l4 = l3 &+ ihl
        self.l4Length = total &- ihl
    }
}

/// The IPv6 extension-header chain from `start` to `end` (the end of the IPv6 payload).
@usableFromInline
struct IPv6Walk {
    @inlinable static var headerLength: Int { 40 }
    /// Chains longer than this are treated as malformed.
    @inlinable static var maxExtensionHeaders: Int { 8 }

    /// Offset of the first header that is not a skipped extension header.
    @usableFromInline var l4: Int
    /// Its protocol number (44 for a later fragment, as OVS).
    @usableFromInline var proto: UInt8
    /// `nw_frag` bits.
    @usableFromInline var frag: UInt8 = 0
    /// A routing header with segments left > 0 (the transport pseudo-header then uses the final
    /// destination, not the one in the IPv6 header).
    @usableFromInline var routingActive = false
    /// false: truncated or overlong extension header, or too many of them.
    @usableFromInline var isValid = false

    @inlinable @inline(__always)
    init(_ p: UnsafeRawPointer, start: Int, end: Int, nextHeader: UInt8) {
        l4 = start
        proto = nextHeader
        var count = 0
        while true {
            let headerLength: Int
            switch proto {
            case IPProtocol.hopByHop, IPProtocol.routing, IPProtocol.destinationOptions, IPProtocol.ah,
                 IPProtocol.fragment:
                guard count < IPv6Walk.maxExtensionHeaders, end &- l4 >= 8 else { return }
                count &+= 1
                let next = Wire.u8(p, l4)
                let lengthField = Int(Wire.u8(p, l4 &+ 1))
                if proto == IPProtocol.fragment {
                    let offsetFlags = Wire.u16(p, l4 &+ 2)
                    l4 &+= 8
                    proto = next
                    if offsetFlags != 0 {
                        frag = UInt8(Frag.any)
                        if offsetFlags & 0xfff8 != 0 {
                            frag |= UInt8(Frag.later)
                            proto = IPProtocol.fragment
                            isValid = true
                            return
                        }
                    }
                    continue
                }
                if proto == IPProtocol.ah {
                    headerLength = (lengthField &+ 2) &<< 2
                } else {
                    headerLength = (lengthField &+ 1) &<< 3
                    if proto == IPProtocol.routing && Wire.u8(p, l4 &+ 3) != 0 { routingActive = true }
                }
                guard headerLength <= end &- l4 else { return }
                l4 &+= headerLength
                proto = next
            default:
                isValid = true
                return
            }
        }
    }
}
