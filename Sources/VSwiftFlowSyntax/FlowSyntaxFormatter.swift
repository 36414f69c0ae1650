import VSwiftClassifier
import VSwiftPacket

/// Prints matches, actions and flows the way `ovs-ofctl dump-flows` does (OVS's `match_format`,
/// `ofpacts_format`, `ofputil_flow_stats_format`); the output parses back with `FlowParser`.
public enum FlowFormatter {
    /// e.g. `priority=1,ip,in_port=1,vlan_tci=0x0000,nw_src=10.1.1.0/24`, `priority=0`,
    /// `priority=2,arp,in_port=1`. Priority is left out when it is the default (32768), so an
    /// empty match at the default priority prints as "".
    public static func match(_ m: Match, priority: UInt16) -> String {
        var w = TextWriter(capacity: 128)
        writeMatch(m, priority: priority, into: &w)
        return w.string
    }

    /// `match` into `w`, as a comma-separated list.
    static func writeMatch(_ m: Match, priority: UInt16, into w: inout TextWriter) {
        w.beginList()
        if priority != FlowRule.defaultPriority {
            w.item("priority=")
            w.decimal(priority)
        }

        let dlTypeMasked = !m.isWildcarded(.dlType)
        let dlType = m.value(.dlType)
        let nwProtoMasked = !m.isWildcarded(.nwProto)
        let nwProto = m.value(.nwProto)
        let isARP = dlType == 0x0806 || dlType == 0x8035
        var skipType = false
        var skipProto = false
        if dlTypeMasked {
            skipType = true
            switch dlType {
            case 0x0800:
                skipProto = nwProtoMasked
                switch nwProtoMasked ? nwProto : 0 {
                case 1: w.item("icmp")
                case 2: w.item("igmp")
                case 6: w.item("tcp")
                case 17: w.item("udp")
                case 132: w.item("sctp")
                default:
                    w.item("ip")
                    skipProto = false
                }
            case 0x86dd:
                skipProto = nwProtoMasked
                switch nwProtoMasked ? nwProto : 0 {
                case 58: w.item("icmp6")
                case 6: w.item("tcp6")
                case 17: w.item("udp6")
                case 132: w.item("sctp6")
                default:
                    w.item("ipv6")
                    skipProto = false
                }
            case 0x0806: w.item("arp")
            case 0x8035: w.item("rarp")
            case 0x8847: w.item("mpls")
            case 0x8848: w.item("mplsm")
            default: skipType = false
            }
        }

        // Tunnel metadata comes before in_port in OVS's output.
        if !m.isWildcarded(.tunId) {
            let mask = m.mask(.tunId)
            w.item("tun_id=")
            w.hexAlternate(m.value(.tunId))
            if mask != .max {
                w.append("/")
                w.hexAlternate(mask)
            }
        }
        ipv4(&w, "tun_src=", m, .tunSrc)
        ipv4(&w, "tun_dst=", m, .tunDst)

        if !m.isWildcarded(.inPort) {
            w.item("in_port=")
            w.port(UInt32(truncatingIfNeeded: m.value(.inPort)))
        }

        if !m.isWildcarded(.vlanTCI) {
            let tci = m.value(.vlanTCI)
            let mask = m.mask(.vlanTCI)
            let vidMask = mask & 0x0fff
            let pcpMask = mask & 0xe000
            if mask & 0x1000 != 0 && tci & 0x1000 != 0 && (vidMask == 0 || vidMask == 0x0fff)
                && (pcpMask == 0 || pcpMask == 0xe000) && (vidMask != 0 || pcpMask != 0)
            {
                if vidMask != 0 {
                    w.item("dl_vlan=")
                    w.decimal(tci & 0x0fff)
                }
                if pcpMask != 0 {
                    w.item("dl_vlan_pcp=")
                    w.decimal(tci >> 13)
                }
            } else {
                w.item("vlan_tci=")
                w.hexPadded(tci, width: 4)
                if mask != 0xffff {
                    w.append("/")
                    w.hexPadded(mask, width: 4)
                }
            }
        }

        mac(&w, "dl_src=", m, .dlSrc)
        mac(&w, "dl_dst=", m, .dlDst)
        if !skipType && dlTypeMasked {
            w.item("dl_type=")
            w.hexPadded(dlType, width: 4)
        }

        if dlType == 0x86dd {
            ipv6(&w, "ipv6_src=", m, .ipv6SrcHigh, .ipv6SrcLow)
            ipv6(&w, "ipv6_dst=", m, .ipv6DstHigh, .ipv6DstLow)
            if !m.isWildcarded(.ipv6Label) {
                w.item("ipv6_label=")
                w.hexPadded(m.value(.ipv6Label), width: 5)
                if !m.isExact(.ipv6Label) {
                    w.append("/")
                    w.hexPadded(m.mask(.ipv6Label), width: 5)
                }
            }
        } else if isARP {
            ipv4(&w, "arp_spa=", m, .nwSrc)
            ipv4(&w, "arp_tpa=", m, .nwDst)
        } else {
            ipv4(&w, "nw_src=", m, .nwSrc)
            ipv4(&w, "nw_dst=", m, .nwDst)
        }
        if !skipProto && nwProtoMasked {
            w.item(isARP ? "arp_op=" : "nw_proto=")
            w.decimal(nwProto)
        }
        if isARP {
            mac(&w, "arp_sha=", m, .arpSha)
            mac(&w, "arp_tha=", m, .arpTha)
        }

        let tosMask = m.mask(.nwTos)
        if tosMask & 0xfc != 0 {
            w.item("nw_tos=")
            w.decimal(m.value(.nwTos) & 0xfc)
        }
        if tosMask & 0x03 != 0 {
            w.item("nw_ecn=")
            w.decimal(m.value(.nwTos) & 0x03)
        }
        if !m.isWildcarded(.nwTTL) {
            w.item("nw_ttl=")
            w.decimal(m.value(.nwTTL))
        }

        let frag = m.value(.nwFrag)
        switch m.mask(.nwFrag) {
        case 3:
            w.item("nw_frag=")
            w.append(frag & 1 != 0 ? (frag & 2 != 0 ? "later" : "first") : (frag & 2 != 0 ? "<error>" : "no"))
        case 1:
            w.item("nw_frag=")
            w.append(frag & 1 != 0 ? "yes" : "no")
        case 2:
            w.item("nw_frag=")
            w.append(frag & 2 != 0 ? "later" : "not_later")
        default: break
        }

        if (dlType == 0x0800 && nwProto == 1) || (dlType == 0x86dd && nwProto == 58) {
            be16(&w, "icmp_type=", m, .tpSrc)
            be16(&w, "icmp_code=", m, .tpDst)
        } else if dlType == 0x0800 && nwProto == 2 {
            be16(&w, "igmp_type=", m, .tpSrc)
            be16(&w, "igmp_code=", m, .tpDst)
        } else {
            be16(&w, "tp_src=", m, .tpSrc)
            be16(&w, "tp_dst=", m, .tpDst)
        }
        if (dlType == 0x0800 || dlType == 0x86dd) && nwProto == 6 && !m.isWildcarded(.tcpFlags) {
            w.item("tcp_flags=")
            w.append(formatTCPFlags(m.value(.tcpFlags), m.mask(.tcpFlags)))
        }
    }

    /// e.g. `output:2`, `mod_dl_dst:52:54:00:b8:27:75,output:1`, `NORMAL`; `drop` when empty.
    public static func actions(_ a: [FlowAction]) -> String {
        var w = TextWriter(capacity: 64)
        writeActions(a, into: &w)
        return w.string
    }

    /// `match`: the rule's match, when known; see `writeAction`.
    static func writeActions(_ a: [FlowAction], into w: inout TextWriter, match: MatchContext? = nil) {
        if a.isEmpty { return w.append("drop") }
        for (i, action) in a.enumerated() {
            if i != 0 { w.append(",") }
            writeAction(action, into: &w, match: match)
        }
    }

    /// The whole rule, re-parseable by `FlowParser.parseFlow`, like `ovs-ofctl dump-flows
    /// --no-stats`: `cookie=0x5, idle_timeout=10, priority=3,dl_dst=02:00:00:00:00:00 actions=…`
    /// (cookie, table and timeouts only when not the default).
    public static func flow(_ r: FlowRule) -> String {
        var w = TextWriter(capacity: 192)
        if r.cookie != 0 {
            w.append("cookie=")
            w.hexPadded(r.cookie, width: 1)
            w.append(", ")
        }
        if r.table != 0 {
            w.append("table=")
            w.decimal(r.table)
            w.append(", ")
        }
        if r.idleTimeout != 0 {
            w.append("idle_timeout=")
            w.decimal(r.idleTimeout)
            w.append(", ")
        }
        if r.hardTimeout != 0 {
            w.append("hard_timeout=")
            w.decimal(r.hardTimeout)
            w.append(", ")
        }
        let matchStart = w.count
        writeMatch(r.match, priority: r.priority, into: &w)
        if w.count > matchStart { w.append(" ") }
        w.append("actions=")
        writeActions(r.actions, into: &w, match: MatchContext(r.match))
        return w.string
    }

    // MARK: helpers (OVS's format_*_masked)

    // Each helper reads the mask once: it says both whether the field is matched and how.

    private static func mac(_ w: inout TextWriter, _ name: StaticString, _ m: Match, _ f: FlowField) {
        let mask = m.mask(f)
        guard mask != 0 else { return }
        w.item(name)
        w.macMasked(m.value(f), mask)
    }

    private static func ipv4(_ w: inout TextWriter, _ name: StaticString, _ m: Match, _ f: FlowField) {
        let mask = m.mask(f)
        guard mask != 0 else { return }
        w.item(name)
        w.ipv4Masked(m.value(f), mask)
    }

    private static func ipv6(_ w: inout TextWriter, _ name: StaticString, _ m: Match, _ hi: FlowField, _ lo: FlowField) {
        let mask = IPv6Address(high: m.mask(hi), low: m.mask(lo))
        if mask.high != 0 || mask.low != 0 {
            w.item(name)
            w.ipv6Masked(IPv6Address(high: m.value(hi), low: m.value(lo)), mask)
        }
    }

    private static func be16(_ w: inout TextWriter, _ name: StaticString, _ m: Match, _ f: FlowField) {
        let mask = m.mask(f)
        guard mask != 0 else { return }
        w.item(name)
        if mask == 0xffff {
            w.decimal(m.value(f))
        } else {
            w.hexPadded(m.value(f), width: 1)
            w.append("/")
            w.hexPadded(mask, width: 1)
        }
    }
}
