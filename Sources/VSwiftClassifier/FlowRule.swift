import VSwiftPacket

/// A match: which bits of a flow key must equal which values. `key` is always pre-masked
/// (key & mask == key), so two matches are equal exactly when they match the same packets.
public struct Match: Equatable, Sendable {
    public var key = FlowKey()
    public var mask = FlowKey()

    public init() {}

    /// Matches `field` = `value` under `mask` (all bits of the field by default).
    public mutating func set(_ field: FlowField, _ value: UInt64, mask fieldMask: UInt64? = nil) {
        let m = (fieldMask ?? field.layout.valueMask) & field.layout.valueMask
        key.set(field, value & m)
        mask.set(field, m)
    }

    /// Stops matching on `field`.
    public mutating func clear(_ field: FlowField) {
        key.set(field, 0)
        mask.set(field, 0)
    }

    public func value(_ field: FlowField) -> UInt64 { key.get(field) }
    public func mask(_ field: FlowField) -> UInt64 { mask.get(field) }
    public func isWildcarded(_ field: FlowField) -> Bool { mask.get(field) == 0 }
    public func isExact(_ field: FlowField) -> Bool { mask.get(field) == field.layout.valueMask }

    /// Does a packet with key `packet` match?
    @inline(__always)
    public func matches(_ packet: FlowKey) -> Bool {
        for i in 0..<FlowKey.wordCount where packet[word: i] & mask[word: i] != key[word: i] { return false }
        return true
    }
}

/// One OpenFlow action, in the user's terms (port numbers are OpenFlow port numbers).
public enum FlowAction: Equatable, Sendable {
    case output(UInt32)
    case normal
    case flood
    case all
    case local
    case inPort
    case modDlSrc(UInt64)
    case modDlDst(UInt64)
    case modNwSrc(UInt32)
    case modNwDst(UInt32)
    /// The DSCP bits of nw_tos (value with the low two bits zero), as OVS's mod_nw_tos.
    case modNwTos(UInt8)
    /// mod_nw_ecn:ECN — the ECN bits (0...3) of the IPv4 TOS / IPv6 traffic class.
    case modNwEcn(UInt8)
    case modTpSrc(UInt16)
    case modTpDst(UInt16)
    case modVlanVid(UInt16)
    case modVlanPcp(UInt8)
    case stripVlan
    /// push_vlan:ETHERTYPE (0x8100 or 0x88a8) — pushes a tag with VID 0, PCP 0.
    case pushVlan(UInt16)
    case decTTL
    /// set_field:VALUE->FIELD for a field of up to 64 bits (incl. tun_id, tun_src, tun_dst).
    case setField(FlowField, UInt64)
    /// set_field:ADDR->ipv6_src / ipv6_dst (high, low words).
    case setIPv6Src(UInt64, UInt64)
    case setIPv6Dst(UInt64, UInt64)
    /// set_tunnel:ID (OVS's shorthand for set_field:ID->tun_id).
    case setTunnel(UInt64)
    /// set_field:VALUE->FIELD for a field that shares a `FlowKey` field's storage (so `FlowField`
    /// cannot name it): written to the packet and printed under its own name.
    case setSharedField(SharedStorageField, UInt64)
}

/// Fields set_field writes that have no storage of their own in a `FlowKey`: DSCP and ECN are parts
/// of nw_tos; an ARP packet's opcode and protocol addresses live in nw_proto, nw_src and nw_dst.
public enum SharedStorageField: String, Sendable {
    /// The six DSCP bits (value 0...63, not shifted).
    case ipDscp = "ip_dscp"
    /// The two ECN bits (0...3).
    case nwEcn = "nw_ecn"
    case arpOp = "arp_op"
    case arpSpa = "arp_spa"
    case arpTpa = "arp_tpa"
}

extension FlowAction {
    /// The OpenFlow port this action outputs to (the reserved numbers for NORMAL, FLOOD, ALL, LOCAL
    /// and IN_PORT), nil for an action that does not output: what OVS's `out_port` filter compares.
    public var outputPort: UInt32? {
        switch self {
        case .output(let port): return port
        case .normal: return OpenFlowPort.normal
        case .flood: return OpenFlowPort.flood
        case .all: return OpenFlowPort.all
        case .local: return OpenFlowPort.local
        case .inPort: return OpenFlowPort.inPort
        default: return nil
        }
    }
}

/// OpenFlow's reserved port numbers (OpenFlow 1.0 numbering, as OVS uses internally; `local`
/// equals VSwiftControl's `ofportLocal`). Ordinary ports are 1 ..< `max`. Their names in flow
/// text are VSwiftFlowSyntax's (`OpenFlowPort.name`, `number(named:)`).
public enum OpenFlowPort {
    public static let max: UInt32 = 0xff00
    public static let inPort: UInt32 = 0xfff8
    public static let table: UInt32 = 0xfff9
    public static let normal: UInt32 = 0xfffa
    public static let flood: UInt32 = 0xfffb
    public static let all: UInt32 = 0xfffc
    public static let controller: UInt32 = 0xfffd
    public static let local: UInt32 = 0xfffe
    /// OFPP_NONE / OFPP_ANY.
    public static let none: UInt32 = 0xffff
}

/// A flow-table entry as users write it (`ovs-ofctl add-flow` syntax).
public struct FlowRule: Equatable, Sendable {
    /// OpenFlow's default priority.
    public static let defaultPriority: UInt16 = 32768
    /// Most actions one flow may have. OVS refuses a flow whose actions outgrow 64 KiB ("input too
    /// big"): measured with ovs-ofctl 3.1, 4095 `output:N`, 2047 IPv4 `set_field`, 1365 IPv6
    /// `set_field`. 1024 stays under all of these, so any list vswift takes OVS takes too, and one
    /// frame can cause at most 1024 copies (see DESIGN.md, "Flow limits").
    public static let maxActions = 1024

    public var priority: UInt16 = FlowRule.defaultPriority
    public var cookie: UInt64 = 0
    /// Seconds without a matching packet before the rule expires; 0 = never.
    public var idleTimeout: UInt16 = 0
    /// Seconds after installation before the rule expires; 0 = never.
    public var hardTimeout: UInt16 = 0
    public var table: UInt8 = 0
    public var match = Match()
    /// Empty means drop.
    public var actions: [FlowAction] = []

    public init(priority: UInt16 = FlowRule.defaultPriority, match: Match = Match(), actions: [FlowAction] = []) {
        self.priority = priority
        self.match = match
        self.actions = actions
    }
}

/// An OpenFlow port number as users give it and flows match it (`in_port`, `output:N`): 1 ..<
/// `OpenFlowPort.max` for an ordinary port, or one of `OpenFlowPort`'s reserved numbers. Its own
/// type where it travels beside the datapath's port slots (which index arrays and are never seen
/// by users), so the compiler catches one used for the other. Flow actions and the saved and wire
/// formats keep the plain `UInt32` (`rawValue`).
@frozen
public struct OpenFlowPortNumber: Hashable, Sendable, CustomStringConvertible, ExpressibleByIntegerLiteral {
    public var rawValue: UInt32

    @inlinable @inline(__always)
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// A port not given a number yet (the datapath's value until the control plane sets one).
    @inlinable @inline(__always)
    public static var unassigned: OpenFlowPortNumber { OpenFlowPortNumber(rawValue: 0) }

    /// A number written in the source (a test's or benchmark's port map) is plainly a port number.
    @inlinable
    public init(integerLiteral value: UInt32) { rawValue = value }

    public var description: String { String(rawValue) }
}
