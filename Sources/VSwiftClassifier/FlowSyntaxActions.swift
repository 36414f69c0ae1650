import VSwiftPacket

// Action lists (`man ovs-actions`): parsing (OVS's `ofpacts_parse__`) and printing (`ofpacts_format`).

/// Actions OVS knows that vswift does not implement: named in errors as unsupported, not unknown.
private let unsupportedActions: Set<String> = [
    "controller", "enqueue", "resubmit", "set_queue", "pop_queue", "note", "learn", "multipath", "bundle",
    "bundle_load", "autopath", "move", "load", "push_mpls", "pop_mpls", "set_mpls_label", "set_mpls_tc",
    "set_mpls_ttl", "dec_mpls_ttl", "fin_timeout", "exit", "sample", "clone", "ct", "ct_clear", "nat",
    "conjunction", "goto_table", "write_metadata", "write_actions", "clear_actions", "meter", "group",
    "mod_nw_ecn", "check_pkt_larger", "encap", "decap", "dec_nsh_ttl", "debug_recirc", "debug_slow",
    "output_trunc", "obs", "delete_field", "stack_push", "stack_pop", "apply_actions", "table",
]

struct ActionParser {
    let src: FlowText
    let ports: FlowParser
    /// The flow's match when parsing add-flow actions: set_field needs the field's prerequisites.
    let context: MatchContext?

    /// Parses the action list in `range`. `listToken` is the `actions` keyword, for errors about
    /// the list as a whole.
    func parse(_ range: Range<Int>, listToken: Range<Int>?) throws(FlowSyntaxError) -> [FlowAction] {
        var actions: [FlowAction] = []
        var drop: Range<Int>? = nil
        var tok = Tokenizer(src.bytes, range)
        var sawAny = false
        while let kv = tok.next() {
            sawAny = true
            let key = src.text(kv.key).lowercased()
            if key == "drop" {
                if kv.hasValue { throw src.error("unexpected value for drop", kv.whole, "drop takes no argument") }
                if drop == nil { drop = kv.key }
                continue
            }
            if let a = try parseOne(key, kv) { actions.append(a) }
        }
        if let drop, !actions.isEmpty {
            throw src.error("\"drop\" must be the only action", drop, "drop cannot be combined with other actions")
        }
        if !sawAny {
            let r = listToken ?? (range.upperBound ..< range.upperBound)
            throw src.error("empty action list", r, "use actions=drop to drop packets")
        }
        return actions
    }

    private func value(_ kv: KeyValue, _ name: String) throws(FlowSyntaxError) -> String {
        guard kv.hasValue, !kv.value.isEmpty else { throw src.error("missing argument for \(name)", kv.key, "expected \(name):VALUE") }
        if kv.delimiter == UInt8(ascii: "(") {
            throw src.error("unsupported form of \(name)", kv.whole, "expected \(name):VALUE")
        }
        return src.text(kv.value)
    }

    private func noValue(_ kv: KeyValue, _ name: String) throws(FlowSyntaxError) {
        if kv.hasValue {
            if kv.delimiter == UInt8(ascii: "(") {
                throw src.error("unsupported form of \(name)", kv.whole, "\(name) takes no arguments in vswift")
            }
            throw src.error("unexpected value for \(name)", kv.whole, "\(name) takes no argument")
        }
    }

    private func number(_ kv: KeyValue, _ name: String, max: UInt64, hex: Bool = false) throws(FlowSyntaxError) -> UInt64 {
        let text = try value(kv, name)
        do { return try parseNumber(text, max: max, hex: hex) } catch { throw src.badValue(kv.value, for: name, error.detail) }
    }

    private func parseOne(_ key: String, _ kv: KeyValue) throws(FlowSyntaxError) -> FlowAction? {
        switch key {
        case "output":
            let text = try value(kv, key)
            let port: UInt32
            do { port = try ports.resolvePort(text) } catch { throw src.badValue(kv.value, for: key, error.detail) }
            return try output(port, kv.value, key)
        case "mod_dl_src", "mod_dl_dst":
            let text = try value(kv, key)
            let mac: UInt64
            do { mac = try parseMAC(text) } catch { throw src.badValue(kv.value, for: key, error.detail) }
            return key == "mod_dl_src" ? .modDlSrc(mac) : .modDlDst(mac)
        case "mod_nw_src", "mod_nw_dst":
            let text = try value(kv, key)
            let ip: UInt64
            do { ip = try parseIPv4(text) } catch { throw src.badValue(kv.value, for: key, error.detail) }
            return key == "mod_nw_src" ? .modNwSrc(UInt32(ip)) : .modNwDst(UInt32(ip))
        case "mod_nw_tos":
            let tos = try number(kv, key, max: 255)
            if tos & 3 != 0 { throw src.badValue(kv.value, for: key, "not a valid TOS: the low 2 bits (ECN) must be 0") }
            return .modNwTos(UInt8(tos))
        case "mod_tp_src":
            return .modTpSrc(UInt16(try number(kv, key, max: 0xffff)))
        case "mod_tp_dst":
            return .modTpDst(UInt16(try number(kv, key, max: 0xffff)))
        case "mod_vlan_vid":
            return .modVlanVid(UInt16(try number(kv, key, max: 0xfff)))
        case "mod_vlan_pcp":
            return .modVlanPcp(UInt8(try number(kv, key, max: 7)))
        case "mod_nw_ttl", "set_nw_ttl":
            return .setField(.nwTTL, try number(kv, key, max: 255))
        case "strip_vlan", "pop_vlan":
            try noValue(kv, key)
            return .stripVlan
        case "push_vlan":
            let t = try number(kv, key, max: 0xffff, hex: true)
            guard t == 0x8100 || t == 0x88a8 else {
                throw src.badValue(kv.value, for: key, "not a valid VLAN ethertype (0x8100 or 0x88a8)")
            }
            return .pushVlan(UInt16(t))
        case "dec_ttl":
            try noValue(kv, key)
            return .decTTL
        case "set_tunnel", "set_tunnel64":
            return .setTunnel(try number(kv, key, max: .max, hex: true))
        case "set_field":
            return try setField(kv)
        default:
            break
        }
        if unsupportedActions.contains(key) {
            throw src.error("unsupported action \"\(src.text(kv.key))\"", kv.key, "vswift does not implement it")
        }
        // A bare port: "2", "NORMAL", "LOCAL", a port name.
        let name = src.text(kv.key)
        guard let port = try? ports.resolvePort(name) else {
            throw src.error("unknown action \"\(name)\"", kv.key)
        }
        try noValue(kv, name)
        return try output(port, kv.key, name)
    }

    private func output(_ port: UInt32, _ r: Range<Int>, _ name: String) throws(FlowSyntaxError) -> FlowAction {
        switch port {
        case OpenFlowPort.normal: return .normal
        case OpenFlowPort.flood: return .flood
        case OpenFlowPort.all: return .all
        case OpenFlowPort.local: return .local
        case OpenFlowPort.inPort: return .inPort
        case OpenFlowPort.controller, OpenFlowPort.table:
            throw src.error("unsupported action \"\(src.text(r))\"", r, "vswift does not implement output to \(formatPort(port))")
        default:
            guard port < OpenFlowPort.max else {
                throw src.badValue(r, for: name, "port \(formatPort(port)) is not a valid output port")
            }
            return .output(port)
        }
    }

    /// `set_field:VALUE->FIELD`.
    private func setField(_ kv: KeyValue) throws(FlowSyntaxError) -> FlowAction {
        _ = try value(kv, "set_field")
        let bytes = src.bytes
        var arrow: Int? = nil
        var i = kv.value.lowerBound
        while i + 1 < kv.value.upperBound {
            if bytes[i] == UInt8(ascii: "-") && bytes[i + 1] == UInt8(ascii: ">") { arrow = i; break }
            i += 1
        }
        guard let arrow else { throw src.badValue(kv.value, for: "set_field", "expected VALUE->FIELD") }
        let valueRange = kv.value.lowerBound ..< arrow
        let fieldRange = arrow + 2 ..< kv.value.upperBound
        let fieldName = src.text(fieldRange)
        guard let field = SyntaxField.byName[fieldName] else {
            if fieldRange.isEmpty { throw src.badValue(kv.value, for: "set_field", "expected VALUE->FIELD") }
            throw src.error("unknown field \"\(fieldName)\" in set_field", fieldRange)
        }
        guard !valueRange.isEmpty else { throw src.badValue(kv.value, for: "set_field", "expected VALUE->FIELD") }
        switch field {
        case .dlType, .nwProto, .nwFrag, .tcpFlags:
            throw src.error("\(fieldName) is read-only", fieldRange, "set_field cannot write it")
        case .nwEcn:
            throw src.error("unsupported set_field destination \"\(fieldName)\"", fieldRange, "vswift cannot rewrite the ECN bits")
        default:
            break
        }
        let parsed: FieldValue
        do {
            parsed = try ports.parseFieldValue(field, src, valueRange)
        } catch {
            throw src.error("bad value \"\(src.text(valueRange))\" for \(fieldName) in set_field", valueRange, error.detail)
        }
        let problem = src.text(valueRange).contains("/") ? "set_field takes a value without a mask" : field.validate(parsed)
        if let problem {
            throw src.error("bad value \"\(src.text(valueRange))\" for \(fieldName) in set_field", valueRange, problem)
        }
        if let context, !field.prerequisite.isMet(by: context) {
            throw src.error("set_field to \(fieldName) is inconsistent with the match", kv.key.lowerBound ..< kv.value.upperBound,
                            "\(fieldName) \(field.prerequisite.requirement)")
        }
        switch parsed {
        case .ipv6(let a, _):
            return field == .ipv6Src ? .setIPv6Src(a.high, a.low) : .setIPv6Dst(a.high, a.low)
        case .scalar(let v, _):
            switch field {
            case .inPort: return .setField(.inPort, v)
            case .dlSrc: return .setField(.dlSrc, v)
            case .dlDst: return .setField(.dlDst, v)
            case .vlanTCI: return .setField(.vlanTCI, v)
            case .dlVlan: return .modVlanVid(UInt16(v))
            case .dlVlanPcp: return .modVlanPcp(UInt8(v))
            case .nwSrc, .arpSpa: return .setField(.nwSrc, v)
            case .nwDst, .arpTpa: return .setField(.nwDst, v)
            case .arpSha: return .setField(.arpSha, v)
            case .arpTha: return .setField(.arpTha, v)
            case .arpOp: return .setField(.nwProto, v)
            case .nwTos: return .modNwTos(UInt8(v))
            case .ipDscp: return .modNwTos(UInt8(v << 2))
            case .nwTTL: return .setField(.nwTTL, v)
            case .ipv6Label: return .setField(.ipv6Label, v)
            case .tpSrc, .tcpSrc, .udpSrc, .sctpSrc, .icmpType, .icmpv6Type: return .setField(.tpSrc, v)
            case .tpDst, .tcpDst, .udpDst, .sctpDst, .icmpCode, .icmpv6Code: return .setField(.tpDst, v)
            case .tunId: return .setField(.tunId, v)
            case .tunSrc: return .setField(.tunSrc, v)
            case .tunDst: return .setField(.tunDst, v)
            case .dlType, .nwProto, .nwFrag, .tcpFlags, .nwEcn, .ipv6Src, .ipv6Dst:
                throw src.error("\(fieldName) is read-only", fieldRange)
            }
        }
    }
}

// MARK: - Printing

extension FlowFormatter {
    static func action(_ a: FlowAction) -> String {
        switch a {
        case .output(let p): return p < OpenFlowPort.max ? "output:\(p)" : formatPort(p)
        case .normal: return "NORMAL"
        case .flood: return "FLOOD"
        case .all: return "ALL"
        case .local: return "LOCAL"
        case .inPort: return "IN_PORT"
        case .modDlSrc(let m): return "mod_dl_src:" + formatMAC(m)
        case .modDlDst(let m): return "mod_dl_dst:" + formatMAC(m)
        case .modNwSrc(let ip): return "mod_nw_src:" + formatIPv4(UInt64(ip))
        case .modNwDst(let ip): return "mod_nw_dst:" + formatIPv4(UInt64(ip))
        case .modNwTos(let t): return "mod_nw_tos:\(t)"
        case .modTpSrc(let p): return "mod_tp_src:\(p)"
        case .modTpDst(let p): return "mod_tp_dst:\(p)"
        case .modVlanVid(let v): return "mod_vlan_vid:\(v)"
        case .modVlanPcp(let p): return "mod_vlan_pcp:\(p)"
        case .stripVlan: return "strip_vlan"
        case .pushVlan(let t): return "push_vlan:" + hexAlternate(UInt64(t))
        case .decTTL: return "dec_ttl"
        case .setField(let f, let v): return "set_field:" + setFieldValue(f, v) + "->" + setFieldName(f)
        case .setIPv6Src(let h, let l): return "set_field:" + formatIPv6(IPv6Address(high: h, low: l)) + "->ipv6_src"
        case .setIPv6Dst(let h, let l): return "set_field:" + formatIPv6(IPv6Address(high: h, low: l)) + "->ipv6_dst"
        case .setTunnel(let id): return (id > UInt64(UInt32.max) ? "set_tunnel64:" : "set_tunnel:") + hexAlternate(id)
        }
    }

    /// The name set_field prints for a storage field: the legacy names this syntax prints in
    /// matches (OVS itself prints OXM names such as eth_dst, ip_src, tcp_src).
    static func setFieldName(_ f: FlowField) -> String {
        switch f {
        case .nwProto: return "arp_op"  // the only writable use of nw_proto storage
        default: return f.rawValue
        }
    }

    static func setFieldValue(_ f: FlowField, _ v: UInt64) -> String {
        switch f {
        case .inPort: return formatPort(UInt32(truncatingIfNeeded: v))
        case .dlSrc, .dlDst, .arpSha, .arpTha: return formatMAC(v)
        case .nwSrc, .nwDst, .tunSrc, .tunDst: return formatIPv4(v)
        case .nwTTL, .tpSrc, .tpDst, .nwProto: return String(v)
        default: return "0x" + String(v, radix: 16)
        }
    }
}
