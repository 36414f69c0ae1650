import VSwiftClassifier
import VSwiftPacket

// The match half of flow syntax: field names, prerequisites and values, as ovs-ofctl reads them.

/// dl_type / nw_proto of a match, for prerequisite checks.
struct MatchContext {
    var dlType: UInt64?
    var nwProto: UInt64?

    init(_ m: Match) {
        dlType = m.isWildcarded(.dlType) ? nil : m.value(.dlType)
        nwProto = m.isWildcarded(.nwProto) ? nil : m.value(.nwProto)
    }

    var isIP: Bool { dlType == 0x0800 }
    var isIPv6: Bool { dlType == 0x86dd }
    var isIPAny: Bool { isIP || isIPv6 }
    var isARP: Bool { dlType == 0x0806 || dlType == 0x8035 }
    func isIPAny(proto: UInt64) -> Bool { isIPAny && nwProto == proto }
}

/// Conditions OVS puts on fields ("prerequisites", `man ovs-fields`).
enum Prerequisite {
    case none, ip, ipOrARP, arp, ipv6, ipAny, ipAnyOrARP, l4, tcp, udp, sctp, icmpAny, icmpv6

    func isMet(by c: MatchContext) -> Bool {
        switch self {
        case .none: return true
        case .ip: return c.isIP
        case .ipOrARP: return c.isIP || c.isARP
        case .arp: return c.isARP
        case .ipv6: return c.isIPv6
        case .ipAny: return c.isIPAny
        case .ipAnyOrARP: return c.isIPAny || c.isARP
        case .l4: return c.isIPAny(proto: 6) || c.isIPAny(proto: 17) || c.isIPAny(proto: 132)
        case .tcp: return c.isIPAny(proto: 6)
        case .udp: return c.isIPAny(proto: 17)
        case .sctp: return c.isIPAny(proto: 132)
        case .icmpAny: return (c.isIP && c.nwProto == 1) || (c.isIPv6 && c.nwProto == 58)
        case .icmpv6: return c.isIPv6 && c.nwProto == 58
        }
    }

    var requirement: String {
        switch self {
        case .none: return ""
        case .ip: return "requires ip (dl_type=0x0800)"
        case .ipOrARP: return "requires ip or arp (dl_type=0x0800 or dl_type=0x0806)"
        case .arp: return "requires arp or rarp (dl_type=0x0806 or dl_type=0x8035)"
        case .ipv6: return "requires ipv6 (dl_type=0x86dd)"
        case .ipAny: return "requires ip or ipv6 (dl_type=0x0800 or dl_type=0x86dd)"
        case .ipAnyOrARP: return "requires ip, ipv6 or arp (dl_type=0x0800, 0x86dd or 0x0806)"
        case .l4: return "requires tcp, udp or sctp (ip or ipv6 with nw_proto=6, 17 or 132)"
        case .tcp: return "requires tcp or tcp6 (nw_proto=6)"
        case .udp: return "requires udp or udp6 (nw_proto=17)"
        case .sctp: return "requires sctp or sctp6 (nw_proto=132)"
        case .icmpAny: return "requires icmp (ip, nw_proto=1) or icmp6 (ipv6, nw_proto=58)"
        case .icmpv6: return "requires icmp6 (ipv6, nw_proto=58)"
        }
    }
}

/// Every field name the syntax knows, with OVS's aliases.
enum SyntaxField {
    case inPort, dlSrc, dlDst, dlType, vlanTCI, dlVlan, dlVlanPcp
    case nwSrc, nwDst, arpSpa, arpTpa, arpSha, arpTha, arpOp, nwProto
    case nwTos, ipDscp, nwEcn, nwTTL, nwFrag
    case ipv6Src, ipv6Dst, ipv6Label
    case tpSrc, tpDst, tcpSrc, tcpDst, udpSrc, udpDst, sctpSrc, sctpDst, tcpFlags
    case icmpType, icmpCode, icmpv6Type, icmpv6Code
    case tunId, tunSrc, tunDst

    static let byName: [String: SyntaxField] = [
        "in_port": .inPort,
        "dl_src": .dlSrc, "eth_src": .dlSrc,
        "dl_dst": .dlDst, "eth_dst": .dlDst,
        "dl_type": .dlType, "eth_type": .dlType,
        "vlan_tci": .vlanTCI, "dl_vlan": .dlVlan, "dl_vlan_pcp": .dlVlanPcp,
        "nw_src": .nwSrc, "ip_src": .nwSrc, "nw_dst": .nwDst, "ip_dst": .nwDst,
        "arp_spa": .arpSpa, "arp_tpa": .arpTpa, "arp_sha": .arpSha, "arp_tha": .arpTha, "arp_op": .arpOp,
        "nw_proto": .nwProto, "ip_proto": .nwProto,
        "nw_tos": .nwTos, "ip_dscp": .ipDscp, "nw_ecn": .nwEcn, "ip_ecn": .nwEcn, "nw_ttl": .nwTTL,
        "nw_frag": .nwFrag, "ip_frag": .nwFrag,
        "ipv6_src": .ipv6Src, "ipv6_dst": .ipv6Dst, "ipv6_label": .ipv6Label,
        "tp_src": .tpSrc, "tp_dst": .tpDst, "tcp_src": .tcpSrc, "tcp_dst": .tcpDst,
        "udp_src": .udpSrc, "udp_dst": .udpDst, "sctp_src": .sctpSrc, "sctp_dst": .sctpDst,
        "tcp_flags": .tcpFlags,
        "icmp_type": .icmpType, "icmp_code": .icmpCode, "icmpv6_type": .icmpv6Type, "icmpv6_code": .icmpv6Code,
        "tun_id": .tunId, "tunnel_id": .tunId, "tun_src": .tunSrc, "tun_dst": .tunDst,
    ]

    enum Kind {
        case port
        case mac
        /// An integer of `bits` bits; `hex` only affects how the range is described in errors.
        case integer(bits: Int, hex: Bool)
        case ipv4
        case ipv6
        case frag
        case tcpFlags
    }

    var kind: Kind {
        switch self {
        case .inPort: return .port
        case .dlSrc, .dlDst, .arpSha, .arpTha: return .mac
        case .dlType: return .integer(bits: 16, hex: true)
        case .vlanTCI: return .integer(bits: 16, hex: true)
        case .dlVlan: return .integer(bits: 12, hex: false)
        case .dlVlanPcp: return .integer(bits: 3, hex: false)
        case .nwSrc, .nwDst, .arpSpa, .arpTpa, .tunSrc, .tunDst: return .ipv4
        case .arpOp, .nwProto, .nwTos, .nwTTL: return .integer(bits: 8, hex: false)
        case .ipDscp: return .integer(bits: 6, hex: false)
        case .nwEcn: return .integer(bits: 2, hex: false)
        case .nwFrag: return .frag
        case .ipv6Src, .ipv6Dst: return .ipv6
        case .ipv6Label: return .integer(bits: 20, hex: true)
        case .tpSrc, .tpDst, .tcpSrc, .tcpDst, .udpSrc, .udpDst, .sctpSrc, .sctpDst: return .integer(bits: 16, hex: false)
        case .tcpFlags: return .tcpFlags
        case .icmpType, .icmpCode, .icmpv6Type, .icmpv6Code: return .integer(bits: 8, hex: false)
        case .tunId: return .integer(bits: 64, hex: true)
        }
    }

    /// Whether a match may give a `/mask` (OVS's "maskable").
    var maskable: Bool {
        switch self {
        case .dlSrc, .dlDst, .arpSha, .arpTha, .vlanTCI, .nwSrc, .nwDst, .arpSpa, .arpTpa, .tunSrc, .tunDst,
            .ipv6Src, .ipv6Dst, .ipv6Label, .tpSrc, .tpDst, .tcpSrc, .tcpDst, .udpSrc, .udpDst, .sctpSrc, .sctpDst,
            .tcpFlags, .tunId, .nwFrag:
            return true
        default:
            return false
        }
    }

    var prerequisite: Prerequisite {
        switch self {
        case .inPort, .dlSrc, .dlDst, .dlType, .vlanTCI, .dlVlan, .dlVlanPcp, .tunId, .tunSrc, .tunDst: return .none
        case .nwSrc, .nwDst: return .ipOrARP
        case .arpSpa, .arpTpa, .arpSha, .arpTha, .arpOp: return .arp
        case .nwProto: return .ipAnyOrARP
        case .nwTos, .ipDscp, .nwEcn, .nwTTL, .nwFrag: return .ipAny
        case .ipv6Src, .ipv6Dst, .ipv6Label: return .ipv6
        case .tpSrc, .tpDst: return .l4
        case .tcpSrc, .tcpDst, .tcpFlags: return .tcp
        case .udpSrc, .udpDst: return .udp
        case .sctpSrc, .sctpDst: return .sctp
        case .icmpType, .icmpCode: return .icmpAny
        case .icmpv6Type, .icmpv6Code: return .icmpv6
        }
    }

    /// What a packet needs for set_field to write this field. As a match field nw_src/nw_dst also
    /// name ARP's addresses; as a destination they are IPv4's only (arp_spa/arp_tpa write ARP's).
    var setFieldPrerequisite: Prerequisite {
        switch self {
        case .nwSrc, .nwDst: return .ip
        default: return prerequisite
        }
    }

    /// Checks a parsed value's range beyond its bit width.
    func validate(_ v: FieldValue) -> String? {
        switch (self, v) {
        case (.nwTos, .scalar(let value, _)) where value & 3 != 0:
            return "nw_tos is the DSCP part of the TOS byte, so it must be a multiple of 4 (use nw_ecn for the low 2 bits)"
        default: return nil
        }
    }

    /// Applies `v` to `m` the way OVS's `mf_set` does (some fields update only part of a storage field).
    func apply(_ v: FieldValue, to m: inout Match) {
        switch v {
        case .ipv6(let a, let mask):
            let (hi, lo): (FlowField, FlowField) = self == .ipv6Src ? (.ipv6SrcHigh, .ipv6SrcLow) : (.ipv6DstHigh, .ipv6DstLow)
            m.set(hi, a.high, mask: mask.high)
            m.set(lo, a.low, mask: mask.low)
        case .scalar(let value, let mask):
            switch self {
            case .inPort: m.set(.inPort, value, mask: mask)
            case .dlSrc: m.set(.dlSrc, value, mask: mask)
            case .dlDst: m.set(.dlDst, value, mask: mask)
            case .dlType: m.set(.dlType, value, mask: mask)
            case .vlanTCI: m.set(.vlanTCI, value, mask: mask)
            case .dlVlan:  // match_set_dl_vlan: VID and the present bit, PCP untouched
                SyntaxField.setBits(&m, .vlanTCI, bits: 0x1fff, value: FlowConstants.vlanPresent | value)
            case .dlVlanPcp:  // match_set_dl_vlan_pcp: PCP and the present bit, VID untouched
                SyntaxField.setBits(&m, .vlanTCI, bits: 0xf000, value: FlowConstants.vlanPresent | value << 13)
            case .nwSrc, .arpSpa: m.set(.nwSrc, value, mask: mask)
            case .nwDst, .arpTpa: m.set(.nwDst, value, mask: mask)
            case .arpSha: m.set(.arpSha, value, mask: mask)
            case .arpTha: m.set(.arpTha, value, mask: mask)
            case .arpOp, .nwProto: m.set(.nwProto, value, mask: mask)
            case .nwTos: SyntaxField.setBits(&m, .nwTos, bits: 0xfc, value: value)
            case .ipDscp: SyntaxField.setBits(&m, .nwTos, bits: 0xfc, value: value << 2)
            case .nwEcn: SyntaxField.setBits(&m, .nwTos, bits: 0x03, value: value)
            case .nwTTL: m.set(.nwTTL, value, mask: mask)
            case .nwFrag: m.set(.nwFrag, value, mask: mask)
            case .ipv6Label: m.set(.ipv6Label, value, mask: mask)
            case .tpSrc, .tcpSrc, .udpSrc, .sctpSrc: m.set(.tpSrc, value, mask: mask)
            case .tpDst, .tcpDst, .udpDst, .sctpDst: m.set(.tpDst, value, mask: mask)
            // OVS's match_set_icmp_type/code: the 8-bit value in the 16-bit field, exact.
            case .icmpType, .icmpv6Type: m.set(.tpSrc, value)
            case .icmpCode, .icmpv6Code: m.set(.tpDst, value)
            case .tcpFlags: m.set(.tcpFlags, value, mask: mask)
            case .tunId: m.set(.tunId, value, mask: mask)
            case .tunSrc: m.set(.tunSrc, value, mask: mask)
            case .tunDst: m.set(.tunDst, value, mask: mask)
            case .ipv6Src, .ipv6Dst: break  // always .ipv6 values
            }
        }
    }

    /// Sets exactly `bits` of `field` to `value`, keeping the rest of the field's value and mask.
    static func setBits(_ m: inout Match, _ field: FlowField, bits: UInt64, value: UInt64) {
        let mask = m.mask(field) | bits
        let key = (m.value(field) & ~bits) | (value & bits)
        m.set(field, key, mask: mask)
    }
}

/// A parsed field value with its mask (all ones unless the text gave one).
enum FieldValue: Equatable {
    case scalar(UInt64, mask: UInt64)
    case ipv6(IPv6Address, mask: IPv6Address)
}

/// Protocol shorthands (OVS's `ofp_parse_protocol`).
let protocolShorthands: [String: (dlType: UInt64, nwProto: UInt64?)] = [
    "ip": (0x0800, nil), "ipv4": (0x0800, nil), "ip4": (0x0800, nil),
    "icmp": (0x0800, 1), "igmp": (0x0800, 2), "tcp": (0x0800, 6), "udp": (0x0800, 17), "sctp": (0x0800, 132),
    "ipv6": (0x86dd, nil), "ip6": (0x86dd, nil),
    "icmp6": (0x86dd, 58), "tcp6": (0x86dd, 6), "udp6": (0x86dd, 17), "sctp6": (0x86dd, 132),
    "arp": (0x0806, nil), "rarp": (0x8035, nil), "mpls": (0x8847, nil), "mplsm": (0x8848, nil),
]

/// Statistics that `dump-flows` prints; OVS ignores them so its output can be fed back.
let ignoredStatistics: Set<String> = ["duration", "n_packets", "n_bytes", "idle_age", "hard_age"]

/// A keyword of at most 16 bytes packed into two words: a dictionary key made straight from input
/// bytes, so looking up a key costs no String (creation, validation, hashing).
struct Keyword: Hashable {
    fileprivate var a: UInt64 = 0
    fileprivate var b: UInt64 = 0

    /// nil when the text cannot be one of our (ASCII, ≤ 16 bytes) keywords. `lowercase` folds
    /// ASCII letters; non-ASCII text is rejected then, as Unicode case folding could turn it into ASCII.
    init?(_ bytes: some Sequence<UInt8>, lowercase: Bool = false) {
        var n = 0
        for var c in bytes {
            // NUL would pack like padding; non-ASCII never appears in a keyword.
            guard n < 16, c != 0, !(lowercase && c >= 0x80) else { return nil }
            if lowercase && c &- UInt8(ascii: "A") < 26 { c |= 0x20 }
            if n < 8 { a |= UInt64(c) << (8 * n) } else { b |= UInt64(c) << (8 * (n - 8)) }
            n += 1
        }
    }

    init(_ s: String) { self.init(s.utf8)! }
}

/// A read-only map from `Keyword`s, hashed by multiply-shift instead of SipHash: the keys are a
/// fixed set of our own keywords, so a cheap hash is enough and a lookup is a few instructions.
/// Open addressing with linear probing; the table is at most a quarter full.
struct KeywordTable<Value: Sendable>: Sendable {
    private var slots: [(key: Keyword, value: Value)?]
    private let shift: UInt64

    init(_ entries: [(Keyword, Value)]) {
        var bits: UInt64 = 4
        while 1 << bits < entries.count * 4 { bits += 1 }
        shift = 64 - bits
        slots = Array(repeating: nil, count: 1 << bits)
        for (k, v) in entries {
            var i = slot(k)
            while let existing = slots[i], existing.key != k { i = (i + 1) & (slots.count - 1) }
            slots[i] = (k, v)
        }
    }

    private func slot(_ k: Keyword) -> Int {
        let h = ((k.a &* 0x9e37_79b9_7f4a_7c15) ^ k.b) &* 0xbf58_476d_1ce4_e5b9
        return Int(truncatingIfNeeded: h >> shift)  // the top bits mix all input bits
    }

    subscript(_ k: Keyword) -> Value? {
        var i = slot(k)
        while let s = slots[i] {
            if s.key == k { return s.value }
            i = (i + 1) & (slots.count - 1)
        }
        return nil
    }
}

/// What a key in the match part is.
enum MatchKey: Sendable {
    case actions
    case shorthand(dlType: UInt64, nwProto: UInt64?)
    case field(SyntaxField)
    case ignored
    case priority, cookie, table, idleTimeout, hardTimeout, outPort
    case unsupported
}

/// Every key the match part knows, by packed name.
let matchKeys: KeywordTable<MatchKey> = {
    var d: [Keyword: MatchKey] = [Keyword("actions"): .actions, Keyword("action"): .actions]
    for (name, p) in protocolShorthands { d[Keyword(name)] = .shorthand(dlType: p.dlType, nwProto: p.nwProto) }
    for (name, f) in SyntaxField.byName { d[Keyword(name)] = .field(f) }
    for name in ignoredStatistics { d[Keyword(name)] = .ignored }
    d[Keyword("priority")] = .priority
    d[Keyword("cookie")] = .cookie
    d[Keyword("table")] = .table
    d[Keyword("idle_timeout")] = .idleTimeout
    d[Keyword("hard_timeout")] = .hardTimeout
    d[Keyword("out_port")] = .outPort
    for name in ["out_group", "importance", "send_flow_rem", "check_overlap", "reset_counts",
                 "no_packet_counts", "no_byte_counts"] { d[Keyword(name)] = .unsupported }
    return KeywordTable(d.map { ($0.key, $0.value) })
}()

struct ParsedMatch {
    var match = Match()
    var priority: UInt16?
    /// `cookie=VALUE`: the cookie a flow gets (add-flow, mod-flows).
    var cookie: (value: UInt64, mask: UInt64)?
    /// `cookie=VALUE/MASK`: which cookies a filter selects (del-flows, dump-flows, mod-flows).
    var cookieMatch: (value: UInt64, mask: UInt64)?
    /// `out_port=PORT`: only flows with an action that outputs to PORT (del-flows, dump-flows).
    var outPort: UInt32?
    var idleTimeout: UInt16?
    var hardTimeout: UInt16?
    /// The `actions` key, when the text has one (flows only), and where the action list starts.
    var actionsKey: Range<Int>?
    var actionsStart = 0
}

/// What the text is for, which decides the keywords it may have (OVS's `parse_ofp_str__`): a flow
/// to add, a mod-flows request (a flow that also selects), or a del-flows / dump-flows filter.
enum MatchMode {
    case add, modify, filter

    var hasActions: Bool { self != .filter }
}

extension FlowParser {
    func parseMatchPart(_ src: FlowText, mode: MatchMode) throws(FlowSyntaxError) -> ParsedMatch {
        var out = ParsedMatch()
        var fieldsSet: [(SyntaxField, Range<Int>)] = []
        var protocolShorthand: Range<Int>? = nil  // the last one that set nw_proto
        fieldsSet.reserveCapacity(8)  // one allocation instead of regrowing
        var tok = Tokenizer(src.bytes, 0 ..< src.bytes.count)
        loop: while let kv = tok.next() {
            // The key as a String only for messages: the lookup works on the bytes.
            var key: String { src.text(kv.key) }
            guard let kind = Keyword(src.bytes[kv.key]).flatMap({ matchKeys[$0] }) else {
                throw src.error("unknown field \"\(key)\"", kv.key)
            }
            switch kind {
            case .actions:
                guard mode.hasActions else {
                    throw src.error("actions are not allowed here", kv.key, "a filter has only match fields")
                }
                // OVS finds the "=" after "actions" even past white space ("actions = drop").
                var eq = kv.key.upperBound
                while eq < src.bytes.count && (src.bytes[eq] == UInt8(ascii: " ") || src.bytes[eq] == UInt8(ascii: "\t")) { eq += 1 }
                guard eq < src.bytes.count && src.bytes[eq] == UInt8(ascii: "=") else {
                    throw src.error("expected \"=\" after \(key)", kv.key)
                }
                out.actionsKey = kv.key
                out.actionsStart = eq + 1
                break loop
            case .shorthand(let dlType, let nwProto):
                if kv.hasValue { throw src.error("unexpected value for \(key)", kv.whole, "\(key) is a protocol shorthand and takes no value") }
                out.match.set(.dlType, dlType)
                if let proto = nwProto {
                    out.match.set(.nwProto, proto)
                    protocolShorthand = kv.key
                }
                continue
            case .field(let field):
                guard kv.hasValue, !kv.value.isEmpty else {
                    throw src.error("missing value for \(key)", kv.key)
                }
                if kv.delimiter == UInt8(ascii: "(") {
                    throw src.badValue(kv.value, for: key, "expected \(key)=VALUE")
                }
                let value: FieldValue
                do { value = try parseFieldValue(field, src, kv.value) } catch { throw src.badValue(kv.value, for: key, error.detail) }
                if let problem = field.validate(value) { throw src.badValue(kv.value, for: key, problem) }
                field.apply(value, to: &out.match)
                fieldsSet.append((field, kv.key))
                continue
            case .ignored:
                continue
            case .unsupported:
                throw src.error("unsupported keyword \"\(key)\"", kv.key, "vswift does not implement it")
            case .priority, .cookie, .table, .idleTimeout, .hardTimeout, .outPort:
                break
            }
            guard kv.hasValue, !kv.value.isEmpty else { throw src.error("missing value for \(key)", kv.key) }
            let text = src.bytes[kv.value]
            switch kind {
            case .priority:
                do { out.priority = UInt16(try parseNumber(text, max: 0xffff, hex: false)) } catch {
                    throw src.badValue(kv.value, for: key, error.detail)
                }
            case .table:
                let table: UInt64
                do { table = try parseNumber(text, max: 0xff, hex: false) } catch { throw src.badValue(kv.value, for: key, error.detail) }
                if table != 0 { throw src.badValue(kv.value, for: key, "vswift has one flow table, table 0") }
            case .outPort:
                guard mode == .filter else {
                    throw src.error("\(key) is not allowed here", kv.key, "only del-flows and dump-flows select flows by output port")
                }
                let port: UInt32
                do { port = try resolvePort(text) } catch { throw src.badValue(kv.value, for: key, error.detail) }
                // out_port=NONE (or ANY) is OpenFlow's "any port": no filter.
                out.outPort = port == OpenFlowPort.none ? nil : port
            case .idleTimeout, .hardTimeout:
                guard mode.hasActions else {
                    throw src.error("\(key) is not allowed here", kv.key, "timeouts are set when adding a flow")
                }
                let t: UInt16
                do { t = UInt16(try parseNumber(text, max: 0xffff, hex: false)) } catch { throw src.badValue(kv.value, for: key, error.detail) }
                if case .idleTimeout = kind { out.idleTimeout = t } else { out.hardTimeout = t }
            default:  // cookie
                let text = src.text(kv.value)
                if let slash = text.firstIndex(of: "/") {
                    guard mode != .add else {
                        throw src.badValue(kv.value, for: key, "flow additions cannot use a cookie mask")
                    }
                    do {
                        let v = try parseNumber(String(text[..<slash]), max: .max, hex: true)
                        let maskText = String(text[text.index(after: slash)...])
                        // ovs-ofctl(8): "A mask of -1 may be used to exactly match a cookie".
                        let m = maskText == "-1" ? UInt64.max : try parseNumber(maskText, max: .max, hex: true)
                        out.cookieMatch = (v & m, m)
                    } catch { throw src.badValue(kv.value, for: key, error.detail) }
                } else {
                    guard mode.hasActions else {
                        throw src.badValue(kv.value, for: key, "cannot set a cookie here; match one with cookie=VALUE/MASK")
                    }
                    do { out.cookie = (try parseNumber(text, max: .max, hex: true), .max) } catch {
                        throw src.badValue(kv.value, for: key, error.detail)
                    }
                }
            }
        }
        let context = MatchContext(out.match)
        // `udp,dl_type=0x88cc`: a later dl_type left the shorthand's nw_proto on a frame type that
        // has none, a flow that could never match. OVS silently drops the nw_proto (matching all
        // such frames); refused here like any field without its prerequisite.
        if let key = protocolShorthand, context.nwProto != nil, !(context.isIPAny || context.isARP) {
            throw src.error("missing prerequisite for \(src.text(key))", key,
                            "\(src.text(key)) sets nw_proto, which requires ip, ipv6 or arp, but dl_type was changed later")
        }
        for (field, key) in fieldsSet where !field.prerequisite.isMet(by: context) {
            throw src.error("missing prerequisite for \(src.text(key))", key, "\(src.text(key)) \(field.prerequisite.requirement)")
        }
        return out
    }

    func parseFieldValue(_ field: SyntaxField, _ src: FlowText, _ r: Range<Int>) throws(ValueError) -> FieldValue {
        let text = src.bytes[r]
        if case .port = field.kind {
            return .scalar(UInt64(try resolvePort(text)), mask: 0xffff_ffff)
        }
        return try parseValue(kind: field.kind, maskable: field.maskable, text)
    }
}
