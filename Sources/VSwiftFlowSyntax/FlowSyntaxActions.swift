import VSwiftClassifier
import VSwiftPacket

// Action lists (`man ovs-actions`): parsing (OVS's `ofpacts_parse__`) and printing (`ofpacts_format`).

/// Actions OVS knows that vswift does not implement: named in errors as unsupported, not unknown.
private let unsupportedActions: Set<String> = [
    "controller", "enqueue", "resubmit", "set_queue", "pop_queue", "note", "learn", "multipath", "bundle",
    "bundle_load", "autopath", "move", "load", "push_mpls", "pop_mpls", "set_mpls_label", "set_mpls_tc",
    "set_mpls_ttl", "dec_mpls_ttl", "fin_timeout", "exit", "sample", "clone", "ct", "ct_clear", "nat",
    "conjunction", "goto_table", "write_metadata", "write_actions", "clear_actions", "meter", "group",
    "check_pkt_larger", "encap", "decap", "dec_nsh_ttl", "debug_recirc", "debug_slow",
    "output_trunc", "obs", "delete_field", "stack_push", "stack_pop", "apply_actions", "table",
]

/// Every action keyword `parseOne` handles, by packed (lower-cased) name: the canonical String
/// comes from here instead of being built and lower-cased for every action.
private let actionKeywords: KeywordTable<String> = {
    let names = [
        "drop", "output", "mod_dl_src", "mod_dl_dst", "mod_nw_src", "mod_nw_dst", "mod_nw_tos", "mod_nw_ecn", "mod_tp_src",
        "mod_tp_dst", "mod_vlan_vid", "mod_vlan_pcp", "mod_nw_ttl", "set_nw_ttl", "strip_vlan", "pop_vlan",
        "push_vlan", "dec_ttl", "set_tunnel", "set_tunnel64", "set_field",
    ]
    return KeywordTable(names.map { (Keyword($0), $0) })
}()

struct ActionParser {
    let src: FlowText
    let ports: FlowParser
    /// The flow's match when parsing add-flow actions: set_field needs the field's prerequisites.
    let context: MatchContext?

    /// Parses the action list in `range`. `listToken` is the `actions` keyword, for errors about
    /// the list as a whole.
    func parse(_ range: Range<Int>, listToken: Range<Int>?) throws(FlowSyntaxError) -> [FlowAction] {
        var actions: [FlowAction] = []
        actions.reserveCapacity(4)  // one allocation instead of regrowing
        var drop: Range<Int>? = nil
        var tok = Tokenizer(src.bytes, range)
        var sawAny = false
        while let kv = tok.next() {
            sawAny = true
            let key: String
            if let k = Keyword(src.bytes[kv.key], lowercase: true), let known = actionKeywords[k] {
                key = known
            } else {
                key = src.text(kv.key).lowercased()
            }
            if key == "drop" {
                if kv.hasValue { throw src.error("unexpected value for drop", kv.whole, "drop takes no argument") }
                if drop == nil { drop = kv.key }
                continue
            }
            if let a = try parseOne(key, kv) {
                if actions.count == FlowRule.maxActions {
                    throw src.error("too many actions", kv.whole,
                                    "a flow has at most \(FlowRule.maxActions) actions (OVS refuses long lists as \"input too big\")")
                }
                actions.append(a)
            }
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

    /// The argument's bytes, after checking that there is one in the `name:VALUE` form.
    private func value(_ kv: KeyValue, _ name: String) throws(FlowSyntaxError) -> Bytes {
        guard kv.hasValue, !kv.value.isEmpty else { throw src.error("missing argument for \(name)", kv.key, "expected \(name):VALUE") }
        if kv.delimiter == UInt8(ascii: "(") {
            throw src.error("unsupported form of \(name)", kv.whole, "expected \(name):VALUE")
        }
        return src.bytes[kv.value]
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
        case "mod_nw_ecn":
            let ecn = try number(kv, key, max: 255)
            if ecn > 3 { throw src.badValue(kv.value, for: key, "not a valid ECN: 0 to 3") }
            return .modNwEcn(UInt8(ecn))
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
        guard var field = SyntaxField.byName[fieldName] else {
            if fieldRange.isEmpty { throw src.badValue(kv.value, for: "set_field", "expected VALUE->FIELD") }
            throw src.error("unknown field \"\(fieldName)\" in set_field", fieldRange)
        }
        // Earlier vswift saved set_field to arp_spa/arp_tpa as nw_src/nw_dst (their storage's match
        // names): under an ARP match those are read as the ARP fields, so saved flows still load.
        if let context, context.isARP, field == .nwSrc || field == .nwDst {
            field = field == .nwSrc ? .arpSpa : .arpTpa
        }
        guard !valueRange.isEmpty else { throw src.badValue(kv.value, for: "set_field", "expected VALUE->FIELD") }
        switch field {
        case .dlType, .nwProto, .nwFrag, .tcpFlags:
            throw src.error("\(fieldName) is read-only", fieldRange, "set_field cannot write it")
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
        if let context, !field.setFieldPrerequisite.isMet(by: context) {
            throw src.error("set_field to \(fieldName) is inconsistent with the match", kv.key.lowerBound ..< kv.value.upperBound,
                            "\(fieldName) \(field.setFieldPrerequisite.requirement)")
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
            case .nwSrc: return .setField(.nwSrc, v)
            case .nwDst: return .setField(.nwDst, v)
            case .arpSpa: return .setSharedField(.arpSpa, v)
            case .arpTpa: return .setSharedField(.arpTpa, v)
            case .arpSha: return .setField(.arpSha, v)
            case .arpTha: return .setField(.arpTha, v)
            case .arpOp: return .setSharedField(.arpOp, v)
            case .nwTos: return .modNwTos(UInt8(v))
            case .ipDscp: return .setSharedField(.ipDscp, v)
            case .nwEcn: return .setSharedField(.nwEcn, v)
            case .nwTTL: return .setField(.nwTTL, v)
            case .ipv6Label: return .setField(.ipv6Label, v)
            case .tpSrc, .tcpSrc, .udpSrc, .sctpSrc, .icmpType, .icmpv6Type: return .setField(.tpSrc, v)
            case .tpDst, .tcpDst, .udpDst, .sctpDst, .icmpCode, .icmpv6Code: return .setField(.tpDst, v)
            case .tunId: return .setField(.tunId, v)
            case .tunSrc: return .setField(.tunSrc, v)
            case .tunDst: return .setField(.tunDst, v)
            case .dlType, .nwProto, .nwFrag, .tcpFlags, .ipv6Src, .ipv6Dst:
                throw src.error("\(fieldName) is read-only", fieldRange)
            }
        }
    }
}

// MARK: - Printing

extension FlowFormatter {
    /// With the rule's `match`, nw_ttl is written as `mod_nw_ttl:N` when the match lacks
    /// set_field's prerequisite (ip or ipv6): mod_nw_ttl is accepted there (as OVS accepts it, an
    /// OpenFlow 1.0 action), `set_field:N->nw_ttl` is not, so the set_field form would not parse
    /// again (a saved flow would not load). Found by fuzz/FuzzFlowSyntax.
    static func writeAction(_ a: FlowAction, into w: inout TextWriter, match: MatchContext? = nil) {
        switch a {
        case .setField(.nwTTL, let v) where match.map({ !SyntaxField.nwTTL.setFieldPrerequisite.isMet(by: $0) }) ?? false:
            w.append("mod_nw_ttl:")
            w.decimal(v)
        case .output(let p):
            if p < OpenFlowPort.max {
                w.append("output:")
                w.decimal(p)
            } else {
                w.port(p)
            }
        case .normal: w.append("NORMAL")
        case .flood: w.append("FLOOD")
        case .all: w.append("ALL")
        case .local: w.append("LOCAL")
        case .inPort: w.append("IN_PORT")
        case .modDlSrc(let m):
            w.append("mod_dl_src:")
            w.mac(m)
        case .modDlDst(let m):
            w.append("mod_dl_dst:")
            w.mac(m)
        case .modNwSrc(let ip):
            w.append("mod_nw_src:")
            w.ipv4(UInt64(ip))
        case .modNwDst(let ip):
            w.append("mod_nw_dst:")
            w.ipv4(UInt64(ip))
        case .modNwTos(let t):
            w.append("mod_nw_tos:")
            w.decimal(t)
        case .modNwEcn(let e):
            w.append("mod_nw_ecn:")
            w.decimal(e)
        case .modTpSrc(let p):
            w.append("mod_tp_src:")
            w.decimal(p)
        case .modTpDst(let p):
            w.append("mod_tp_dst:")
            w.decimal(p)
        case .modVlanVid(let v):
            w.append("mod_vlan_vid:")
            w.decimal(v)
        case .modVlanPcp(let p):
            w.append("mod_vlan_pcp:")
            w.decimal(p)
        case .stripVlan: w.append("strip_vlan")
        case .pushVlan(let t):
            w.append("push_vlan:")
            w.hexAlternate(t)
        case .decTTL: w.append("dec_ttl")
        case .setField(let f, let v):
            w.append("set_field:")
            writeSetFieldValue(f, v, into: &w)
            w.append("->")
            w.append(setFieldName(f))
        case .setIPv6Src(let h, let l):
            w.append("set_field:")
            w.ipv6(IPv6Address(high: h, low: l))
            w.append("->ipv6_src")
        case .setIPv6Dst(let h, let l):
            w.append("set_field:")
            w.ipv6(IPv6Address(high: h, low: l))
            w.append("->ipv6_dst")
        case .setTunnel(let id):
            w.append(id > UInt64(UInt32.max) ? "set_tunnel64:" : "set_tunnel:")
            w.hexAlternate(id)
        case .setSharedField(let f, let v):
            w.append("set_field:")
            switch f {
            case .arpSpa, .arpTpa: w.ipv4(v)
            case .ipDscp, .nwEcn, .arpOp: w.decimal(v)
            }
            w.append("->")
            w.append(f.rawValue)
        }
    }

    /// The name set_field prints for a storage field: the legacy names this syntax prints in
    /// matches (OVS itself prints OXM names such as eth_dst, ip_src, tcp_src).
    static func setFieldName(_ f: FlowField) -> String { f.rawValue }

    static func writeSetFieldValue(_ f: FlowField, _ v: UInt64, into w: inout TextWriter) {
        switch f {
        case .inPort: w.port(UInt32(truncatingIfNeeded: v))
        case .dlSrc, .dlDst, .arpSha, .arpTha: w.mac(v)
        case .nwSrc, .nwDst, .tunSrc, .tunDst: w.ipv4(v)
        case .nwTTL, .tpSrc, .tpDst: w.decimal(v)
        case .ipv6Label: w.hexAlternate(v)  // OVS's %#x
        default: w.hexPadded(v, width: 1)
        }
    }
}
