import VSwiftClassifier
import VSwiftPacket

// Parsing of `ovs-ofctl` flow syntax (add-flow, del-flows, dump-flows, mod-flows arguments).
//
// The grammar follows OVS's `parse_ofp_str__`: the text is a list of `key[=value]` items separated
// by commas and/or white space; `key:value` is accepted as well (OVS treats `:` and `=` alike), and
// a `key(value)` form exists for actions. In a flow, `actions=` (or `action=`) ends the match part;
// everything after it is the action list. Later items override earlier ones, as in OVS.
//
// Files: FlowSyntax.swift (API, tokenizer, match), FlowSyntaxActions.swift (actions),
// FlowSyntaxValues.swift (numbers, addresses, ports), FlowSyntaxFormatter.swift (printing).

/// A syntax error in flow text: what is wrong, the offending token and where it starts.
public struct FlowSyntaxError: Error, Equatable, CustomStringConvertible, Sendable {
    /// What is wrong, e.g. `bad value "10.1.1.0/33" for nw_src`.
    public var message: String
    /// The offending text as it appears in the input (empty when something is missing at the end).
    public var token: String
    /// 0-based character offset of `token` in the parsed text.
    public var position: Int
    /// Why, when there is more to say, e.g. `prefix length must be 0..32`.
    public var detail: String?

    public init(message: String, token: String, position: Int, detail: String? = nil) {
        self.message = message
        self.token = token
        self.position = position
        self.detail = detail
    }

    /// e.g. `bad value "10.1.1.0/33" for nw_src at position 42: prefix length must be 0..32`.
    public var description: String {
        var s = "\(message) at position \(position)"
        if let detail { s += ": " + detail }
        return s
    }
}

/// The reserved ports' names in flow text (the numbers are the classifier's).
extension OpenFlowPort {
    /// The reserved name of `port` ("LOCAL", "IN_PORT", …), or nil for an ordinary port number.
    public static func name(_ port: UInt32) -> String? {
        switch port {
        case inPort: return "IN_PORT"
        case table: return "TABLE"
        case normal: return "NORMAL"
        case flood: return "FLOOD"
        case all: return "ALL"
        case controller: return "CONTROLLER"
        case local: return "LOCAL"
        case none: return "ANY"
        default: return nil
        }
    }

    /// The reserved port named `name` (case-insensitive, as OVS), or nil.
    public static func number(named name: String) -> UInt32? {
        switch name.uppercased() {
        case "IN_PORT": return inPort
        case "TABLE": return table
        case "NORMAL": return normal
        case "FLOOD": return flood
        case "ALL": return all
        case "CONTROLLER": return controller
        case "LOCAL": return local
        case "ANY", "NONE": return none
        default: return nil
        }
    }
}

/// Parses `ovs-ofctl` flow syntax into `FlowRule`, `Match` and `FlowAction` values.
public struct FlowParser {
    let portNumber: (String) -> UInt32?

    /// `portNumber` resolves port names (as OVS lets `in_port=vnet0`, `output:vnet0`). Numbers and
    /// the reserved names (LOCAL, IN_PORT, NORMAL, …) are resolved before it is asked.
    public init(portNumber: @escaping (String) -> UInt32? = { _ in nil }) {
        self.portNumber = portNumber
    }

    /// Parses an add-flow argument: match fields, priority, cookie, timeouts and `actions=…`.
    public func parseFlow(_ text: String) throws(FlowSyntaxError) -> FlowRule {
        try parseRule(FlowText(text), mode: .add).rule
    }

    /// Parses a mod-flows argument: a flow as for add-flow, where (as in OVS) `cookie=VALUE/MASK`
    /// selects the flows to modify and `cookie=VALUE` gives them a new cookie; both may be there.
    public func parseModification(_ text: String) throws(FlowSyntaxError) -> FlowModification {
        let (rule, parsed) = try parseRule(FlowText(text), mode: .modify)
        return FlowModification(rule: rule, cookieMatch: parsed.cookieMatch, newCookie: parsed.cookie?.value)
    }

    private func parseRule(_ src: FlowText, mode: MatchMode) throws(FlowSyntaxError) -> (rule: FlowRule, parsed: ParsedMatch) {
        let parsed = try parseMatchPart(src, mode: mode)
        guard let actionsKey = parsed.actionsKey else {
            throw FlowSyntaxError(message: "must specify an action", token: "", position: src.position(src.bytes.count),
                                  detail: "add \"actions=...\" (actions=drop to drop packets)")
        }
        let context = MatchContext(parsed.match)
        let actions = try ActionParser(src: src, ports: self, context: context)
            .parse(parsed.actionsStart ..< src.bytes.count, listToken: actionsKey)
        var rule = FlowRule(priority: parsed.priority ?? FlowRule.defaultPriority, match: parsed.match, actions: actions)
        rule.cookie = parsed.cookie?.value ?? 0
        rule.idleTimeout = parsed.idleTimeout ?? 0
        rule.hardTimeout = parsed.hardTimeout ?? 0
        return (rule, parsed)
    }

    /// Parses a del-flows / dump-flows filter: match fields, `priority` (for --strict),
    /// `cookie=VALUE/MASK`, `out_port=PORT`, `table=0`. No actions.
    public func parseMatch(_ text: String) throws(FlowSyntaxError)
        -> (match: Match, priority: UInt16?, cookie: (value: UInt64, mask: UInt64)?, outPort: UInt32?)
    {
        let parsed = try parseMatchPart(FlowText(text), mode: .filter)
        return (parsed.match, parsed.priority, parsed.cookieMatch, parsed.outPort)
    }

    /// Parses an action list such as `mod_dl_dst:52:54:00:b8:27:75,output:1` or `drop`.
    public func parseActions(_ text: String) throws(FlowSyntaxError) -> [FlowAction] {
        let src = FlowText(text)
        return try ActionParser(src: src, ports: self, context: nil).parse(0 ..< src.bytes.count, listToken: nil)
    }
}

/// A parsed mod-flows request.
public struct FlowModification: Sendable {
    /// The match, priority, actions and timeouts; `rule.cookie` is `newCookie ?? 0` (the cookie a
    /// flow added because none was selected gets).
    public var rule: FlowRule
    /// `cookie=VALUE/MASK`: only flows whose cookie equals VALUE in MASK's bits are modified, and
    /// (as in OVS) no flow is added when none is.
    public var cookieMatch: (value: UInt64, mask: UInt64)?
    /// `cookie=VALUE`: the modified flows' new cookie.
    public var newCookie: UInt64?
}

// MARK: - Text and tokens

/// The input as UTF-8 bytes; positions inside are byte offsets until an error converts them.
struct FlowText {
    let string: String
    let bytes: [UInt8]

    init(_ string: String) {
        self.string = string
        self.bytes = Array(string.utf8)
    }

    func text(_ r: Range<Int>) -> String { String(decoding: bytes[r], as: UTF8.self) }

    /// Character offset of byte offset `b`.
    func position(_ b: Int) -> Int { String(decoding: bytes[..<b], as: UTF8.self).count }

    func error(_ message: String, _ r: Range<Int>, _ detail: String? = nil) -> FlowSyntaxError {
        FlowSyntaxError(message: message, token: text(r), position: position(r.lowerBound), detail: detail)
    }

    func badValue(_ r: Range<Int>, for name: String, _ detail: String?) -> FlowSyntaxError {
        error("bad value \"\(text(r))\" for \(name)", r, detail)
    }
}

/// One `key`, `key=value`, `key:value` or `key(value)` item.
struct KeyValue {
    var key: Range<Int>
    /// `=`, `:` or `(`; 0 when the key stands alone.
    var delimiter: UInt8
    var value: Range<Int>
    var hasValue: Bool { delimiter != 0 }
    var whole: Range<Int> { key.lowerBound ..< Swift.max(key.upperBound, value.upperBound) }
}

/// OVS's `ofputil_parse_key_value`.
struct Tokenizer {
    let bytes: [UInt8]
    var pos: Int
    let end: Int

    init(_ bytes: [UInt8], _ range: Range<Int>) {
        self.bytes = bytes
        self.pos = range.lowerBound
        self.end = range.upperBound
    }

    static func isSeparator(_ c: UInt8) -> Bool {
        c == UInt8(ascii: ",") || c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == UInt8(ascii: "\r")
            || c == UInt8(ascii: "\n")
    }

    static func endsKey(_ c: UInt8) -> Bool {
        isSeparator(c) || c == UInt8(ascii: ":") || c == UInt8(ascii: "=") || c == UInt8(ascii: "(")
    }

    mutating func next() -> KeyValue? {
        while pos < end && Tokenizer.isSeparator(bytes[pos]) { pos += 1 }
        guard pos < end else { return nil }
        let keyStart = pos
        while pos < end && !Tokenizer.endsKey(bytes[pos]) { pos += 1 }
        let key = keyStart ..< pos
        guard pos < end else { return KeyValue(key: key, delimiter: 0, value: pos ..< pos) }
        let delim = bytes[pos]
        pos += 1
        let parens = delim == UInt8(ascii: "(")
        guard parens || delim == UInt8(ascii: ":") || delim == UInt8(ascii: "=") else {
            return KeyValue(key: key, delimiter: 0, value: key.upperBound ..< key.upperBound)
        }
        let valueStart = pos
        var n = valueEnd(from: pos, parens: parens)
        if parens && n + 2 < end && bytes[n] == UInt8(ascii: ")") && bytes[n + 1] == UInt8(ascii: "-")
            && bytes[n + 2] == UInt8(ascii: ">")
        {
            n = valueEnd(from: n, parens: false)
        }
        pos = n < end ? n + 1 : n
        return KeyValue(key: key, delimiter: delim, value: valueStart ..< n)
    }

    /// OVS's `parse_value`: up to a delimiter, skipping balanced parentheses.
    private func valueEnd(from start: Int, parens: Bool) -> Int {
        var n = start
        while n < end {
            let c = bytes[n]
            if parens ? c == UInt8(ascii: ")") : Tokenizer.isSeparator(c) { return n }
            if c == UInt8(ascii: "(") {
                var level = 0
                repeat {
                    if n >= end { return n }
                    if bytes[n] == UInt8(ascii: "(") { level += 1 } else if bytes[n] == UInt8(ascii: ")") { level -= 1 }
                    n += 1
                } while level > 0
            } else {
                n += 1
            }
        }
        return n
    }
}
