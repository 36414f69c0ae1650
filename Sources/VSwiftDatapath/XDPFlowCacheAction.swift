import VSwiftPacket

/// One action of an XDP flow cache entry, as bpf/vswift_flowcache.h executes it (`enum
/// vswift_fc_op_kind`). Each does what the workers' HeaderRewrite does for the same flow action,
/// byte for byte; whatever is not here (NORMAL, flooding, several outputs, output to a tap or
/// tunnel port, SCTP ports, IPv6 addresses, ARP fields, mod_vlan_vid/pcp, LISP decapsulation)
/// stays in user space
/// and is never installed (DESIGN.md, "XDP flow cache").
public enum XDPFlowCacheAction: Equatable, Sendable {
    /// Forward the frame unchanged otherwise through `vswift_fc_ports[slot]` (a DEVMAP); ends the list.
    case output(slot: UInt32)
    /// Ends the list. (A list that ends without an output drops too, as OpenFlow.)
    case drop
    case setEthernetSource(UInt64)
    case setEthernetDestination(UInt64)
    case setIPv4Source(UInt32)
    case setIPv4Destination(UInt32)
    /// mod_nw_tos: the DSCP bits (0xfc) of `tos`; ECN kept.
    case setNetworkTOS(UInt8)
    /// mod_nw_ecn: the ECN bits (0x03); DSCP kept.
    case setECN(UInt8)
    case setTTL(UInt8)
    /// dec_ttl. A packet whose TTL would run out is left to the workers (they drop and count it).
    case decrementTTL
    /// TCP or UDP (an SCTP packet is left to the workers: its CRC32c update is not done in XDP).
    case setTransportSource(UInt16)
    case setTransportDestination(UInt16)
    case popVLAN
    /// push_vlan: a new outermost tag with this TPID and TCI 0.
    case pushVLAN(tpid: UInt16)
    /// LISP encapsulation over IPv4 or IPv6 (the template's RLOCs say which) with the outer headers
    /// of template `template` (`XDPFlowCache.setLISPTemplate`), as `LISP.encapsulate` without
    /// checksum offload; only an output may follow. A frame the encapsulation would make larger
    /// than the template's egress MTU is left to the workers (fragmentation, ICMP too big).
    case lispEncapsulate(template: UInt32)

    /// `enum vswift_fc_op_kind`.
    var kind: UInt32 {
        switch self {
        case .output: return 1
        case .drop: return 2
        case .setEthernetSource: return 3
        case .setEthernetDestination: return 4
        case .setIPv4Source: return 5
        case .setIPv4Destination: return 6
        case .setNetworkTOS: return 7
        case .setECN: return 8
        case .setTTL: return 9
        case .decrementTTL: return 10
        case .setTransportSource: return 11
        case .setTransportDestination: return 12
        case .popVLAN: return 13
        case .pushVLAN: return 14
        case .lispEncapsulate: return 15
        }
    }

    /// (arg32, arg64) of `struct vswift_fc_op`.
    var arguments: (UInt32, UInt64) {
        switch self {
        case .output(let slot): return (slot, 0)
        case .drop, .decrementTTL, .popVLAN: return (0, 0)
        case .setEthernetSource(let mac), .setEthernetDestination(let mac): return (0, mac & 0xffff_ffff_ffff)
        case .setIPv4Source(let a), .setIPv4Destination(let a): return (a, 0)
        case .setNetworkTOS(let v), .setECN(let v), .setTTL(let v): return (UInt32(v), 0)
        case .setTransportSource(let p), .setTransportDestination(let p): return (UInt32(p), 0)
        case .pushVLAN(let tpid): return (UInt32(tpid), 0)
        case .lispEncapsulate(let template): return (template, 0)
        }
    }

    /// Whether the list ends here (nothing after it would run).
    var ends: Bool {
        switch self {
        case .output, .drop: return true
        default: return false
        }
    }
}

/// `struct vswift_fc_entry`: op_count, pad, then `maxActions` ops of (kind u32, arg32 u32, arg64 u64).
enum XDPFlowCacheEntryLayout {
    static let maxActions = 8
    static let opSize = 16
    static let size = 8 + maxActions * opSize

    /// The entry's bytes; nil when the list is longer than `maxActions` or continues after an output/drop.
    static func encode(_ actions: [XDPFlowCacheAction]) -> [UInt8]? {
        guard actions.count <= maxActions else { return nil }
        if let end = actions.firstIndex(where: \.ends), end != actions.count - 1 { return nil }
        // After an encapsulation the frame is the outer packet: only its output may follow.
        if let encap = actions.firstIndex(where: { if case .lispEncapsulate = $0 { return true } else { return false } }),
           !actions[(encap + 1)...].allSatisfy({ if case .output = $0 { return true } else { return false } }) {
            return nil
        }
        var bytes = [UInt8](repeating: 0, count: size)
        bytes.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt32(actions.count), toByteOffset: 0, as: UInt32.self)
            for (i, action) in actions.enumerated() {
                let at = 8 + i * opSize
                let (arg32, arg64) = action.arguments
                raw.storeBytes(of: action.kind, toByteOffset: at, as: UInt32.self)
                raw.storeBytes(of: arg32, toByteOffset: at + 4, as: UInt32.self)
                raw.storeBytes(of: arg64, toByteOffset: at + 8, as: UInt64.self)
            }
        }
        return bytes
    }
}
