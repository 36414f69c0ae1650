import VSwiftClassifier
import VSwiftPacket

/// A megaflow (mask, masked key) written as Open vSwitch writes datapath flows
/// (`ovs-appctl dpctl/dump-flows`, lib/odp-util.c's key format):
///
///     in_port(2),eth(src=52:54:00:00:00:01,dst=52:54:00:00:00:02),eth_type(0x0800),ipv4(src=10.1.1.0/255.255.255.0,proto=6,frag=no),tcp(dst=80)
///
/// Only what the mask keeps is written: a group (`eth`, `ipv4`, ...) appears when one of its
/// fields is masked, a field when its mask is not zero, and a partly masked field as value/mask
/// (addresses as addresses, integers with a hexadecimal mask, as OVS does). A tag is
/// `vlan(vid=…,pcp=…),encap(…)` around what follows it; FlowKey does not keep the tag's TPID, so
/// the `eth_type(0x8100)` OVS writes before a tag is left out. L3 and L4 groups are written only
/// when `eth_type` (and for L4 the protocol) is matched exactly, as the key means nothing else.
/// Checked against ovs-vswitchd 3.1's userspace datapath (netdev bridge): same groups, order and
/// value/mask forms (`eth(dst=01:00:5e:00:00:01/01:00:00:00:00:00)`, `tcp(dst=81/0xfff0)`,
/// `tos=0/0xfc`, `ipv6(src=2001:db8::1/ffff:ffff::,frag=no)`, `tcp_flags(+syn-ack)`), except that OVS
/// writes the first packet's value under the mask where we write the masked value (all an entry
/// keeps), and OVS's own `recirc_id(0)` and `packet_type(...)`, which we do not have.
enum DatapathFlowText {
    /// One group: `in_port(2)` (a value) or `ipv4(src=…,dst=…)` (fields); `depth` is the number of
    /// `encap(` it is inside.
    struct Group {
        var name: String
        var value: String?
        var items: [(String, String)] = []
        var depth = 0
        /// A VLAN tag: what follows goes inside `encap(…)`.
        var opensEncap = false

        /// `ipv4.src`-style names, with one `encap.` per level.
        var flat: [(name: String, value: String)] {
            let prefix = String(repeating: "encap.", count: depth) + name
            if let value { return [(prefix, value)] }
            return items.map { (prefix + "." + $0.0, $0.1) }
        }
    }

    static func match(_ groups: [Group]) -> String {
        var out = ""
        var open = 0
        for (i, group) in groups.enumerated() {
            if i != 0 && !out.hasSuffix("(") { out += "," }
            out += group.name + "(" + (group.value ?? group.items.map { "\($0.0)=\($0.1)" }.joined(separator: ",")) + ")"
            if group.opensEncap && i != groups.count - 1 {
                out += ",encap("
                open += 1
            }
        }
        return out + String(repeating: ")", count: open)
    }

    static func fields(mask m: FlowKey, key k: FlowKey) -> [Group] {
        var groups: [Group] = []
        var depth = 0
        func masked(_ f: FlowField) -> Bool { m.get(f) != 0 }
        func exact(_ f: FlowField) -> Bool { m.get(f) == f.layout.valueMask }
        func number(_ f: FlowField) -> String {
            let (v, mk) = (k.get(f), m.get(f))
            return mk == f.layout.valueMask ? "\(v)" : "\(v)/0x\(String(mk, radix: 16))"
        }
        func hex(_ f: FlowField, width: Int = 1) -> String {
            let (v, mk) = (k.get(f), m.get(f))
            let value = "0x" + padded(String(v, radix: 16), width)
            return mk == f.layout.valueMask ? value : value + "/0x" + padded(String(mk, radix: 16), width)
        }
        func mac(_ f: FlowField) -> String {
            let (v, mk) = (k.get(f), m.get(f))
            return mk == f.layout.valueMask ? macText(v) : macText(v) + "/" + macText(mk)
        }
        func ipv4(_ f: FlowField) -> String {
            let (v, mk) = (k.get(f), m.get(f))
            return mk == f.layout.valueMask ? ipv4Text(v) : ipv4Text(v) + "/" + ipv4Text(mk)
        }
        func ipv6(_ high: FlowField, _ low: FlowField) -> String? {
            let (mh, ml) = (m.get(high), m.get(low))
            guard mh != 0 || ml != 0 else { return nil }
            let value = ipv6Text(k.get(high), k.get(low))
            return mh == .max && ml == .max ? value : value + "/" + ipv6Text(mh, ml)
        }
        func group(_ name: String, _ items: [(String, String)?]) {
            let present = items.compactMap { $0 }
            if !present.isEmpty { groups.append(Group(name: name, items: present, depth: depth)) }
        }
        func item(_ name: String, _ f: FlowField, _ format: (FlowField) -> String) -> (String, String)? {
            masked(f) ? (name, format(f)) : nil
        }

        group("tunnel", [item("tun_id", .tunId) { hex($0) }, item("src", .tunSrc, ipv4), item("dst", .tunDst, ipv4)])
        if masked(.inPort) {
            let port = k.get(.inPort)
            let value = exact(.inPort) && port == UInt64(OpenFlowPort.local) ? "LOCAL" : number(.inPort)
            groups.append(Group(name: "in_port", value: value))
        }
        group("eth", [item("src", .dlSrc, mac), item("dst", .dlDst, mac)])
        // Outer tag first (QinQ: vlan_outer_tci), then the inner (or only) one.
        for tag in [FlowField.vlanOuterTCI, .vlanTCI] {
            let (v, mk) = (k.get(tag), m.get(tag))
            guard mk & FlowConstants.vlanPresent != 0, v & FlowConstants.vlanPresent != 0 else { continue }
            var items: [(String, String)] = []
            if mk & 0x0fff != 0 { items.append(("vid", subfield(v & 0x0fff, mk & 0x0fff, full: 0x0fff))) }
            if mk & 0xe000 != 0 { items.append(("pcp", subfield(v >> 13, mk >> 13, full: 7))) }
            groups.append(Group(name: "vlan", items: items, depth: depth, opensEncap: true))
            depth += 1
        }
        if masked(.dlType) { groups.append(Group(name: "eth_type", value: hex(.dlType, width: 4), depth: depth)) }
        guard exact(.dlType) else { return groups }
        let dlType = k.get(.dlType)
        let frag = item("frag", .nwFrag) { _ in fragText(k.get(.nwFrag), m.get(.nwFrag)) }
        switch dlType {
        case 0x0800:
            group("ipv4", [item("src", .nwSrc, ipv4), item("dst", .nwDst, ipv4), item("proto", .nwProto, number),
                           item("tos", .nwTos, number), item("ttl", .nwTTL, number), frag])
        case 0x86dd:
            group("ipv6", [ipv6(.ipv6SrcHigh, .ipv6SrcLow).map { ("src", $0) }, ipv6(.ipv6DstHigh, .ipv6DstLow).map { ("dst", $0) },
                           item("label", .ipv6Label) { hex($0) }, item("proto", .nwProto, number),
                           item("tclass", .nwTos, number), item("hlimit", .nwTTL, number), frag])
        case 0x0806:
            group("arp", [item("sip", .nwSrc, ipv4), item("tip", .nwDst, ipv4), item("op", .nwProto, number),
                          item("sha", .arpSha, mac), item("tha", .arpTha, mac)])
            return groups
        default:
            return groups
        }
        guard exact(.nwProto) else { return groups }
        let ports = [item("src", .tpSrc, number), item("dst", .tpDst, number)]
        switch (dlType, k.get(.nwProto)) {
        case (_, 6):
            group("tcp", ports)
            if masked(.tcpFlags) {
                groups.append(Group(name: "tcp_flags", value: tcpFlagsText(k.get(.tcpFlags), m.get(.tcpFlags)), depth: depth))
            }
        case (_, 17): group("udp", ports)
        case (_, 132): group("sctp", ports)
        case (0x0800, 1): group("icmp", [item("type", .tpSrc, number), item("code", .tpDst, number)])
        case (0x86dd, 58): group("icmpv6", [item("type", .tpSrc, number), item("code", .tpDst, number)])
        default: break
        }
        return groups
    }

    static func padded(_ digits: String, _ width: Int) -> String {
        String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    static func subfield(_ value: UInt64, _ mask: UInt64, full: UInt64) -> String {
        mask == full ? "\(value)" : "\(value)/0x\(String(mask, radix: 16))"
    }

    static func macText(_ v: UInt64) -> String {
        (0..<6).map { padded(String((v >> UInt64(40 - 8 * $0)) & 0xff, radix: 16), 2) }.joined(separator: ":")
    }

    static func ipv4Text(_ v: UInt64) -> String {
        "\(v >> 24 & 0xff).\(v >> 16 & 0xff).\(v >> 8 & 0xff).\(v & 0xff)"
    }

    /// RFC 5952 text; an IPv4-mapped value keeps its `::ffff:` (IPAddress prints those as IPv4).
    static func ipv6Text(_ high: UInt64, _ low: UInt64) -> String {
        let address = IPAddress(high: high, low: low)
        return address.isIPv4 ? "::ffff:" + address.description : address.description
    }

    /// OVS's `frag=no|first|later` when both bits are matched (FlowKey: bit 0 a fragment, bit 1 a
    /// later one), else the bits.
    static func fragText(_ v: UInt64, _ mask: UInt64) -> String {
        let both = FlowConstants.fragAny | FlowConstants.fragLater
        if mask & both == both {
            switch v & both {
            case 0: return "no"
            case FlowConstants.fragAny: return "first"
            case both: return "later"
            default: break
            }
        }
        return "0x\(String(v, radix: 16))/0x\(String(mask, radix: 16))"
    }

    static let tcpFlagNames = ["fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns"]

    /// OVS's forms: `syn|ack` (all 12 bits matched; `0` for none), `+syn-ack` (some bits matched).
    static func tcpFlagsText(_ v: UInt64, _ mask: UInt64) -> String {
        if mask & 0x0fff == 0x0fff {
            let names = tcpFlagNames.indices.filter { v & (1 << UInt64($0)) != 0 }.map { tcpFlagNames[$0] }
            let unnamed = v & 0x0e00
            return names.isEmpty && unnamed == 0 ? "0" : (names + (unnamed == 0 ? [] : ["0x\(String(unnamed, radix: 16))"])).joined(separator: "|")
        }
        var out = ""
        for (bit, name) in tcpFlagNames.enumerated() where mask & (1 << UInt64(bit)) != 0 {
            out += (v & (1 << UInt64(bit)) != 0 ? "+" : "-") + name
        }
        return out.isEmpty ? "0x\(String(v, radix: 16))/0x\(String(mask, radix: 16))" : out
    }
}
