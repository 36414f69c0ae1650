import VSwiftPacket

/// Prints matches, actions and flows the way `ovs-ofctl dump-flows` does (OVS's `match_format`,
/// `ofpacts_format`, `ofputil_flow_stats_format`); the output parses back with `FlowParser`.
public enum FlowFormatter {
    /// e.g. `priority=1,ip,in_port=1,vlan_tci=0x0000,nw_src=10.1.1.0/24`, `priority=0`,
    /// `priority=2,arp,in_port=1`. Priority is left out when it is the default (32768), so an
    /// empty match at the default priority prints as "".
    public static func match(_ m: Match, priority: UInt16) -> String {
        var out: [String] = []
        if priority != FlowRule.defaultPriority { out.append("priority=\(priority)") }

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
                let names: [UInt64: String] = [1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 132: "sctp"]
                if nwProtoMasked, let name = names[nwProto] {
                    out.append(name)
                    skipProto = true
                } else {
                    out.append("ip")
                }
            case 0x86dd:
                let names: [UInt64: String] = [58: "icmp6", 6: "tcp6", 17: "udp6", 132: "sctp6"]
                if nwProtoMasked, let name = names[nwProto] {
                    out.append(name)
                    skipProto = true
                } else {
                    out.append("ipv6")
                }
            case 0x0806: out.append("arp")
            case 0x8035: out.append("rarp")
            case 0x8847: out.append("mpls")
            case 0x8848: out.append("mplsm")
            default: skipType = false
            }
        }

        // Tunnel metadata comes before in_port in OVS's output.
        if !m.isWildcarded(.tunId) {
            let mask = m.mask(.tunId)
            out.append("tun_id=" + hexAlternate(m.value(.tunId)) + (mask == .max ? "" : "/" + hexAlternate(mask)))
        }
        ipv4(&out, "tun_src", m, .tunSrc)
        ipv4(&out, "tun_dst", m, .tunDst)

        if !m.isWildcarded(.inPort) { out.append("in_port=" + formatPort(UInt32(truncatingIfNeeded: m.value(.inPort)))) }

        if !m.isWildcarded(.vlanTCI) {
            let tci = m.value(.vlanTCI)
            let mask = m.mask(.vlanTCI)
            let vidMask = mask & 0x0fff
            let pcpMask = mask & 0xe000
            if mask & 0x1000 != 0 && tci & 0x1000 != 0 && (vidMask == 0 || vidMask == 0x0fff)
                && (pcpMask == 0 || pcpMask == 0xe000) && (vidMask != 0 || pcpMask != 0)
            {
                if vidMask != 0 { out.append("dl_vlan=\(tci & 0x0fff)") }
                if pcpMask != 0 { out.append("dl_vlan_pcp=\(tci >> 13)") }
            } else if mask == 0xffff {
                out.append("vlan_tci=" + hexPadded(tci, width: 4))
            } else {
                out.append("vlan_tci=" + hexPadded(tci, width: 4) + "/" + hexPadded(mask, width: 4))
            }
        }

        mac(&out, "dl_src", m, .dlSrc)
        mac(&out, "dl_dst", m, .dlDst)
        if !skipType && dlTypeMasked { out.append("dl_type=" + hexPadded(dlType, width: 4)) }

        if dlType == 0x86dd {
            ipv6(&out, "ipv6_src", m, .ipv6SrcHigh, .ipv6SrcLow)
            ipv6(&out, "ipv6_dst", m, .ipv6DstHigh, .ipv6DstLow)
            if !m.isWildcarded(.ipv6Label) {
                let mask = m.mask(.ipv6Label)
                out.append("ipv6_label=" + hexPadded(m.value(.ipv6Label), width: 5)
                    + (m.isExact(.ipv6Label) ? "" : "/" + hexPadded(mask, width: 5)))
            }
        } else if isARP {
            ipv4(&out, "arp_spa", m, .nwSrc)
            ipv4(&out, "arp_tpa", m, .nwDst)
        } else {
            ipv4(&out, "nw_src", m, .nwSrc)
            ipv4(&out, "nw_dst", m, .nwDst)
        }
        if !skipProto && nwProtoMasked { out.append((isARP ? "arp_op=" : "nw_proto=") + String(nwProto)) }
        if isARP {
            mac(&out, "arp_sha", m, .arpSha)
            mac(&out, "arp_tha", m, .arpTha)
        }

        let tosMask = m.mask(.nwTos)
        if tosMask & 0xfc != 0 { out.append("nw_tos=\(m.value(.nwTos) & 0xfc)") }
        if tosMask & 0x03 != 0 { out.append("nw_ecn=\(m.value(.nwTos) & 0x03)") }
        if !m.isWildcarded(.nwTTL) { out.append("nw_ttl=\(m.value(.nwTTL))") }

        let frag = m.value(.nwFrag)
        switch m.mask(.nwFrag) {
        case 3: out.append("nw_frag=" + (frag & 1 != 0 ? (frag & 2 != 0 ? "later" : "first") : (frag & 2 != 0 ? "<error>" : "no")))
        case 1: out.append("nw_frag=" + (frag & 1 != 0 ? "yes" : "no"))
        case 2: out.append("nw_frag=" + (frag & 2 != 0 ? "later" : "not_later"))
        default: break
        }

        if (dlType == 0x0800 && nwProto == 1) || (dlType == 0x86dd && nwProto == 58) {
            be16(&out, "icmp_type", m, .tpSrc)
            be16(&out, "icmp_code", m, .tpDst)
        } else if dlType == 0x0800 && nwProto == 2 {
            be16(&out, "igmp_type", m, .tpSrc)
            be16(&out, "igmp_code", m, .tpDst)
        } else {
            be16(&out, "tp_src", m, .tpSrc)
            be16(&out, "tp_dst", m, .tpDst)
        }
        if (dlType == 0x0800 || dlType == 0x86dd) && nwProto == 6 && !m.isWildcarded(.tcpFlags) {
            out.append("tcp_flags=" + formatTCPFlags(m.value(.tcpFlags), m.mask(.tcpFlags)))
        }
        return out.joined(separator: ",")
    }

    /// e.g. `output:2`, `mod_dl_dst:52:54:00:b8:27:75,output:1`, `NORMAL`; `drop` when empty.
    public static func actions(_ a: [FlowAction]) -> String {
        a.isEmpty ? "drop" : a.map(action).joined(separator: ",")
    }

    /// The whole rule, re-parseable by `FlowParser.parseFlow`, like `ovs-ofctl dump-flows
    /// --no-stats`: `cookie=0x5, idle_timeout=10, priority=3,dl_dst=02:00:00:00:00:00 actions=…`
    /// (cookie, table and timeouts only when not the default).
    public static func flow(_ r: FlowRule) -> String {
        var s = ""
        if r.cookie != 0 { s += "cookie=0x" + String(r.cookie, radix: 16) + ", " }
        if r.table != 0 { s += "table=\(r.table), " }
        if r.idleTimeout != 0 { s += "idle_timeout=\(r.idleTimeout), " }
        if r.hardTimeout != 0 { s += "hard_timeout=\(r.hardTimeout), " }
        let m = match(r.match, priority: r.priority)
        if !m.isEmpty { s += m + " " }
        return s + "actions=" + actions(r.actions)
    }

    // MARK: helpers (OVS's format_*_masked)

    private static func mac(_ out: inout [String], _ name: String, _ m: Match, _ f: FlowField) {
        if !m.isWildcarded(f) { out.append(name + "=" + formatMACMasked(m.value(f), m.mask(f))) }
    }

    private static func ipv4(_ out: inout [String], _ name: String, _ m: Match, _ f: FlowField) {
        if !m.isWildcarded(f) { out.append(name + "=" + formatIPv4Masked(m.value(f), m.mask(f))) }
    }

    private static func ipv6(_ out: inout [String], _ name: String, _ m: Match, _ hi: FlowField, _ lo: FlowField) {
        let mask = IPv6Address(high: m.mask(hi), low: m.mask(lo))
        if mask.high != 0 || mask.low != 0 {
            out.append(name + "=" + formatIPv6Masked(IPv6Address(high: m.value(hi), low: m.value(lo)), mask))
        }
    }

    private static func be16(_ out: inout [String], _ name: String, _ m: Match, _ f: FlowField) {
        guard !m.isWildcarded(f) else { return }
        let mask = m.mask(f)
        if mask == 0xffff {
            out.append("\(name)=\(m.value(f))")
        } else {
            out.append("\(name)=0x\(String(m.value(f), radix: 16))/0x\(String(mask, radix: 16))")
        }
    }
}
