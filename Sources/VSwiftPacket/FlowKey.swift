/// The fields a flow can match, extracted from a frame (plus metadata: input port, tunnel).
///
/// Sixteen 64-bit words, so masking, hashing and comparing are word loops over raw memory and a
/// rule's mask can name just the words it needs (`FlowKey.wordCount` bits in a `WordSet`).
/// Values are in host order; MACs are 48-bit integers (first octet most significant), IPv4
/// addresses 32-bit integers, IPv6 addresses two words (high, low).
///
/// As in OVS, some fields share storage: `arp_op` is kept in `nw_proto`, `arp_spa`/`arp_tpa` in
/// `nw_src`/`nw_dst`, ICMP/ICMPv6 type and code in `tp_src`/`tp_dst`.
///
/// Word layout (bit 0 = least significant):
/// ```
///  w0: in_port[0..32) dl_type[32..48) vlan_tci[48..64)
///  w1: dl_src[0..48) nw_proto[48..56) nw_tos[56..64)     nw_tos = DSCP<<2 | ECN (the whole byte)
///  w2: dl_dst[0..48) nw_ttl[48..56) nw_frag[56..64)       nw_frag: bit0 = fragment, bit1 = later fragment
///  w3: nw_dst[0..32) nw_src[32..64)
///  w4: tp_dst[0..16) tp_src[16..32) tcp_flags[32..48) vlan_outer_tci[48..64)
///  w5: ipv6_label[0..20)
///  w6, w7: ipv6_src (high, low)     w8, w9: ipv6_dst (high, low)
///  w10: arp_sha[0..48)              w11: arp_tha[0..48)
///  w12: tun_id                      w13: tun_dst[0..32) tun_src[32..64)
///  w14, w15: reserved (zero)
/// ```
/// `vlan_tci` follows OVS: 0 when the frame is untagged; for a tagged frame the TCI with the
/// CFI/"present" bit 0x1000 set. With QinQ the outer tag is in `vlan_outer_tci` (same convention)
/// and the inner tag in `vlan_tci`.
public struct FlowKey: Hashable, Sendable {
    public static let wordCount = 16
    public var w0: UInt64 = 0, w1: UInt64 = 0, w2: UInt64 = 0, w3: UInt64 = 0
    public var w4: UInt64 = 0, w5: UInt64 = 0, w6: UInt64 = 0, w7: UInt64 = 0
    public var w8: UInt64 = 0, w9: UInt64 = 0, w10: UInt64 = 0, w11: UInt64 = 0
    public var w12: UInt64 = 0, w13: UInt64 = 0, w14: UInt64 = 0, w15: UInt64 = 0

    public init() {}

    /// Word `i` (0..<16).
    @inline(__always)
    public subscript(word i: Int) -> UInt64 {
        get { withUnsafeBytes(of: self) { $0.load(fromByteOffset: i &* 8, as: UInt64.self) } }
        set { withUnsafeMutableBytes(of: &self) { $0.storeBytes(of: newValue, toByteOffset: i &* 8, as: UInt64.self) } }
    }

    /// A field's value (fields of up to 64 bits; IPv6 addresses use `ipv6Src`/`ipv6Dst`).
    @inline(__always)
    public func get(_ field: FlowField) -> UInt64 {
        let l = field.layout
        return (self[word: l.word] >> UInt64(l.shift)) & l.valueMask
    }

    @inline(__always)
    public mutating func set(_ field: FlowField, _ value: UInt64) {
        let l = field.layout
        let m = l.valueMask << UInt64(l.shift)
        self[word: l.word] = (self[word: l.word] & ~m) | ((value << UInt64(l.shift)) & m)
    }
}

/// Every matchable field, with where it lives in a `FlowKey` and its OVS name.
public enum FlowField: String, CaseIterable, Sendable {
    case inPort = "in_port"
    case dlType = "dl_type"
    case vlanTCI = "vlan_tci"
    case dlSrc = "dl_src"
    case nwProto = "nw_proto"
    case nwTos = "nw_tos"
    case dlDst = "dl_dst"
    case nwTTL = "nw_ttl"
    case nwFrag = "nw_frag"
    case nwDst = "nw_dst"
    case nwSrc = "nw_src"
    case tpDst = "tp_dst"
    case tpSrc = "tp_src"
    case tcpFlags = "tcp_flags"
    case vlanOuterTCI = "vlan_outer_tci"
    case ipv6Label = "ipv6_label"
    case ipv6SrcHigh = "ipv6_src_hi"
    case ipv6SrcLow = "ipv6_src_lo"
    case ipv6DstHigh = "ipv6_dst_hi"
    case ipv6DstLow = "ipv6_dst_lo"
    case arpSha = "arp_sha"
    case arpTha = "arp_tha"
    case tunId = "tun_id"
    case tunDst = "tun_dst"
    case tunSrc = "tun_src"

    public struct Layout: Sendable {
        public let word: Int
        public let shift: Int
        public let bits: Int
        public var valueMask: UInt64 { bits == 64 ? .max : (1 << UInt64(bits)) - 1 }
    }

    public var layout: Layout {
        switch self {
        case .inPort: return Layout(word: 0, shift: 0, bits: 32)
        case .dlType: return Layout(word: 0, shift: 32, bits: 16)
        case .vlanTCI: return Layout(word: 0, shift: 48, bits: 16)
        case .dlSrc: return Layout(word: 1, shift: 0, bits: 48)
        case .nwProto: return Layout(word: 1, shift: 48, bits: 8)
        case .nwTos: return Layout(word: 1, shift: 56, bits: 8)
        case .dlDst: return Layout(word: 2, shift: 0, bits: 48)
        case .nwTTL: return Layout(word: 2, shift: 48, bits: 8)
        case .nwFrag: return Layout(word: 2, shift: 56, bits: 8)
        case .nwDst: return Layout(word: 3, shift: 0, bits: 32)
        case .nwSrc: return Layout(word: 3, shift: 32, bits: 32)
        case .tpDst: return Layout(word: 4, shift: 0, bits: 16)
        case .tpSrc: return Layout(word: 4, shift: 16, bits: 16)
        case .tcpFlags: return Layout(word: 4, shift: 32, bits: 16)
        case .vlanOuterTCI: return Layout(word: 4, shift: 48, bits: 16)
        case .ipv6Label: return Layout(word: 5, shift: 0, bits: 20)
        case .ipv6SrcHigh: return Layout(word: 6, shift: 0, bits: 64)
        case .ipv6SrcLow: return Layout(word: 7, shift: 0, bits: 64)
        case .ipv6DstHigh: return Layout(word: 8, shift: 0, bits: 64)
        case .ipv6DstLow: return Layout(word: 9, shift: 0, bits: 64)
        case .arpSha: return Layout(word: 10, shift: 0, bits: 48)
        case .arpTha: return Layout(word: 11, shift: 0, bits: 48)
        case .tunId: return Layout(word: 12, shift: 0, bits: 64)
        case .tunDst: return Layout(word: 13, shift: 0, bits: 32)
        case .tunSrc: return Layout(word: 13, shift: 32, bits: 32)
        }
    }
}

/// Values of `nw_frag` bits and `vlan_tci`'s present bit, as OVS defines them.
public enum FlowConstants {
    public static let vlanPresent: UInt64 = 0x1000
    public static let fragAny: UInt64 = 1
    public static let fragLater: UInt64 = 2
}
