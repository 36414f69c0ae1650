// Values in flow syntax: numbers, Ethernet/IPv4/IPv6 addresses with masks, ports, nw_frag and
// tcp_flags keywords — parsing and OVS-style printing.

/// Why a value did not parse; the caller adds the token, the field and the position.
struct ValueError: Error {
    var detail: String
    init(_ detail: String) { self.detail = detail }
}

/// An IPv6 address as two host-order words (first 8 octets in `high`).
struct IPv6Address: Equatable {
    var high: UInt64
    var low: UInt64
    static let allOnes = IPv6Address(high: .max, low: .max)

    static func prefix(_ n: Int) -> IPv6Address {
        let hi: UInt64 = n >= 64 ? .max : (n == 0 ? 0 : ~(UInt64.max >> UInt64(n)))
        let lo: UInt64 = n <= 64 ? 0 : (n == 128 ? .max : ~(UInt64.max >> UInt64(n - 64)))
        return IPv6Address(high: hi, low: lo)
    }

    /// The prefix length if the mask is a run of leading ones.
    var prefixLength: Int? {
        if high == .max {
            return low.leadingNonzeroBitCount(contiguous: true).map { 64 + $0 }
        }
        guard low == 0 else { return nil }
        return high.leadingNonzeroBitCount(contiguous: true)
    }
}

extension FixedWidthInteger {
    /// Number of leading one bits when the value is ones followed by zeros, else nil.
    func leadingNonzeroBitCount(contiguous: Bool) -> Int? {
        let n = (~self).leadingZeroBitCount
        return self << n == 0 || n == Self.bitWidth ? n : nil
    }
}

// MARK: - Numbers

func isDigit(_ c: Character) -> Bool { c >= "0" && c <= "9" }

func hexDigitValue(_ c: Character) -> UInt64? {
    guard let a = c.asciiValue else { return nil }
    switch a {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt64(a - UInt8(ascii: "0"))
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt64(a - UInt8(ascii: "a") + 10)
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt64(a - UInt8(ascii: "A") + 10)
    default: return nil
    }
}

/// A decimal or `0x` hexadecimal number no greater than `max`. `hex` picks how the range is shown.
func parseNumber(_ text: String, max: UInt64, hex: Bool) throws(ValueError) -> UInt64 {
    var digits = Substring(text)
    var radix: UInt64 = 10
    if digits.hasPrefix("0x") || digits.hasPrefix("0X") {
        digits = digits.dropFirst(2)
        radix = 16
    }
    guard !digits.isEmpty else { throw ValueError(text.isEmpty ? "missing number" : "not a number") }
    var value: UInt64 = 0
    var overflow = false
    for c in digits {
        guard let d = hexDigitValue(c), d < radix else {
            throw ValueError(radix == 16 ? "not a hexadecimal number" : "not a number (use decimal or 0x-prefixed hexadecimal)")
        }
        let (m, o1) = value.multipliedReportingOverflow(by: radix)
        let (s, o2) = m.addingReportingOverflow(d)
        overflow = overflow || o1 || o2
        value = s
    }
    if overflow || value > max { throw ValueError(rangeDescription(max: max, hex: hex)) }
    return value
}

func rangeDescription(max: UInt64, hex: Bool) -> String {
    if max == .max { return "must fit in 64 bits" }
    return hex ? "must be 0..0x\(String(max, radix: 16))" : "must be 0..\(max)"
}

/// Splits `text` at the first `/`.
func splitMask(_ text: String) -> (String, String?) {
    guard let slash = text.firstIndex(of: "/") else { return (text, nil) }
    return (String(text[..<slash]), String(text[text.index(after: slash)...]))
}

/// A field value as `man ovs-fields` describes it for the given kind, with an optional `/mask`.
func parseValue(kind: SyntaxField.Kind, maskable: Bool, _ text: String) throws(ValueError) -> FieldValue {
    switch kind {
    case .frag:
        switch text {
        case "no": return .scalar(0, mask: 3)
        case "yes": return .scalar(1, mask: 1)
        case "first": return .scalar(1, mask: 3)
        case "later": return .scalar(3, mask: 3)
        case "not_later": return .scalar(0, mask: 2)
        default: throw ValueError("expected no, yes, first, later or not_later")
        }
    case .tcpFlags:
        let (v, m) = try parseTCPFlags(text)
        return .scalar(v, mask: m)
    case .ipv6:
        let (a, m) = try parseIPv6Masked(text, maskable: maskable)
        return .ipv6(a, mask: m)
    default:
        break
    }
    let (valueText, maskText) = splitMask(text)
    if maskText != nil && !maskable { throw ValueError("this field cannot be masked") }
    switch kind {
    case .mac:
        let v = try parseMAC(valueText)
        let m = try maskText.map { (t) throws(ValueError) -> UInt64 in try parseMAC(t) } ?? 0xffff_ffff_ffff
        return .scalar(v & m, mask: m)
    case .ipv4:
        let v = try parseIPv4(valueText)
        guard let maskText else { return .scalar(v, mask: 0xffff_ffff) }
        let m: UInt64
        if maskText.contains(".") {
            do { m = try parseIPv4(maskText) } catch { throw ValueError("bad netmask \"\(maskText)\"") }
        } else {
            guard !maskText.isEmpty, maskText.allSatisfy(isDigit), let n = Int(maskText), n <= 32 else {
                throw ValueError("prefix length must be 0..32")
            }
            m = n == 0 ? 0 : (0xffff_ffff << UInt64(32 - n)) & 0xffff_ffff
        }
        return .scalar(v & m, mask: m)
    case .integer(let bits, let hex):
        let max: UInt64 = bits == 64 ? .max : (1 << UInt64(bits)) - 1
        let v = try parseNumber(valueText, max: max, hex: hex)
        guard let maskText else { return .scalar(v, mask: max) }
        let m: UInt64
        do { m = try parseNumber(maskText, max: max, hex: hex) } catch { throw ValueError("mask \(error.detail)") }
        return .scalar(v & m, mask: m)
    default:
        throw ValueError("unexpected value")
    }
}

// MARK: - Ethernet

func parseMAC(_ text: String) throws(ValueError) -> UInt64 {
    let parts = text.split(separator: ":", omittingEmptySubsequences: false)
    guard parts.count == 6 else { throw ValueError("not an Ethernet address (expected xx:xx:xx:xx:xx:xx)") }
    var v: UInt64 = 0
    for p in parts {
        guard (1...2).contains(p.count) else { throw ValueError("not an Ethernet address (expected xx:xx:xx:xx:xx:xx)") }
        var octet: UInt64 = 0
        for c in p {
            guard let d = hexDigitValue(c) else { throw ValueError("not an Ethernet address (expected xx:xx:xx:xx:xx:xx)") }
            octet = octet << 4 | d
        }
        v = v << 8 | octet
    }
    return v
}

/// `52:54:00:b8:27:75`, lower case, as OVS prints.
func formatMAC(_ v: UInt64) -> String {
    var s = ""
    s.reserveCapacity(17)
    for i in stride(from: 40, through: 0, by: -8) {
        if i != 40 { s.append(":") }
        s.append(hex2(UInt8(truncatingIfNeeded: v >> UInt64(i))))
    }
    return s
}

func formatMACMasked(_ v: UInt64, _ m: UInt64) -> String {
    m & 0xffff_ffff_ffff == 0xffff_ffff_ffff ? formatMAC(v) : formatMAC(v) + "/" + formatMAC(m)
}

func hex2(_ b: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[Int(b >> 4)], digits[Int(b & 15)]])
}

/// `0x` + at least `width` hex digits (C's `0x%0*x`).
func hexPadded(_ v: UInt64, width: Int) -> String {
    let h = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: Swift.max(0, width - h.count)) + h
}

/// C's `%#x`: `0` for zero, else `0x…`.
func hexAlternate(_ v: UInt64) -> String { v == 0 ? "0" : "0x" + String(v, radix: 16) }

// MARK: - IPv4

func parseIPv4(_ text: String) throws(ValueError) -> UInt64 {
    let parts = text.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 4 else { throw ValueError("not an IPv4 address") }
    var v: UInt64 = 0
    for p in parts {
        guard (1...3).contains(p.count), p.allSatisfy(isDigit), let octet = UInt64(p), octet <= 255 else {
            throw ValueError("not an IPv4 address")
        }
        v = v << 8 | octet
    }
    return v
}

func formatIPv4(_ v: UInt64) -> String {
    "\(v >> 24 & 255).\(v >> 16 & 255).\(v >> 8 & 255).\(v & 255)"
}

/// OVS's `ip_format_masked`: plain when exact, `/N` for a prefix, `/a.b.c.d` otherwise.
func formatIPv4Masked(_ v: UInt64, _ m: UInt64) -> String {
    let mask = UInt32(truncatingIfNeeded: m)
    if mask == .max { return formatIPv4(v) }
    if let n = mask.leadingNonzeroBitCount(contiguous: true) { return formatIPv4(v) + "/\(n)" }
    return formatIPv4(v) + "/" + formatIPv4(UInt64(mask))
}

// MARK: - IPv6

func parseIPv6(_ text: String) throws(ValueError) -> IPv6Address {
    let bad = ValueError("not an IPv6 address")
    var words: [UInt16] = []
    var gap: Int? = nil  // index in `words` where "::" stands
    var rest = Substring(text)
    if rest.hasPrefix("::") {
        gap = 0
        rest = rest.dropFirst(2)
    } else if rest.hasPrefix(":") {
        throw bad
    }
    while !rest.isEmpty {
        let end = rest.firstIndex(of: ":") ?? rest.endIndex
        let part = rest[..<end]
        if part.contains(".") {
            guard end == rest.endIndex, words.count <= 6 else { throw bad }
            let v4: UInt64
            do { v4 = try parseIPv4(String(part)) } catch { throw bad }
            words.append(UInt16(v4 >> 16))
            words.append(UInt16(v4 & 0xffff))
            rest = rest[end...]
            break
        }
        guard (1...4).contains(part.count) else { throw bad }
        var w: UInt16 = 0
        for c in part {
            guard let d = hexDigitValue(c) else { throw bad }
            w = w << 4 | UInt16(d)
        }
        words.append(w)
        guard words.count <= 8 else { throw bad }
        rest = rest[end...]
        if rest.hasPrefix("::") {
            guard gap == nil else { throw bad }
            gap = words.count
            rest = rest.dropFirst(2)
        } else if rest.hasPrefix(":") {
            rest = rest.dropFirst()
            if rest.isEmpty { throw bad }
        }
    }
    if let gap {
        guard words.count <= 7 else { throw bad }
        words.insert(contentsOf: [UInt16](repeating: 0, count: 8 - words.count), at: gap)
    }
    guard words.count == 8 else { throw bad }
    var hi: UInt64 = 0, lo: UInt64 = 0
    for i in 0..<4 { hi = hi << 16 | UInt64(words[i]) }
    for i in 4..<8 { lo = lo << 16 | UInt64(words[i]) }
    return IPv6Address(high: hi, low: lo)
}

func parseIPv6Masked(_ text: String, maskable: Bool) throws(ValueError) -> (IPv6Address, IPv6Address) {
    let (valueText, maskText) = splitMask(text)
    if maskText != nil && !maskable { throw ValueError("this field cannot be masked") }
    let a = try parseIPv6(valueText)
    guard let maskText else { return (a, .allOnes) }
    let m: IPv6Address
    if maskText.contains(":") {
        do { m = try parseIPv6(maskText) } catch { throw ValueError("bad netmask \"\(maskText)\"") }
    } else {
        guard !maskText.isEmpty, maskText.allSatisfy(isDigit), let n = Int(maskText), n <= 128 else {
            throw ValueError("prefix length must be 0..128")
        }
        m = .prefix(n)
    }
    return (IPv6Address(high: a.high & m.high, low: a.low & m.low), m)
}

/// RFC 5952 text, as glibc's `inet_ntop` writes it (which is what OVS prints).
func formatIPv6(_ a: IPv6Address) -> String {
    var words = [Int](repeating: 0, count: 8)
    for i in 0..<4 {
        words[i] = Int(a.high >> UInt64(48 - 16 * i) & 0xffff)
        words[i + 4] = Int(a.low >> UInt64(48 - 16 * i) & 0xffff)
    }
    // Longest run of zero words (first one on ties), if at least 2 long.
    var best = (base: -1, len: 0), cur = (base: -1, len: 0)
    for i in 0..<8 {
        if words[i] == 0 {
            cur = cur.base == -1 ? (i, 1) : (cur.base, cur.len + 1)
            if cur.len > best.len { best = cur }
        } else {
            cur = (-1, 0)
        }
    }
    if best.len < 2 { best = (-1, 0) }
    var s = ""
    var i = 0
    while i < 8 {
        if best.base != -1 && i >= best.base && i < best.base + best.len {
            if i == best.base { s += ":" }
            i += 1
            continue
        }
        if i != 0 { s += ":" }
        if i == 6 && best.base == 0 && (best.len == 6 || (best.len == 5 && words[5] == 0xffff)) {
            s += formatIPv4(UInt64(words[6] << 16 | words[7]))
            return s
        }
        s += String(words[i], radix: 16)
        i += 1
    }
    if best.base != -1 && best.base + best.len == 8 { s += ":" }
    return s
}

func formatIPv6Masked(_ a: IPv6Address, _ m: IPv6Address) -> String {
    if m == .allOnes { return formatIPv6(a) }
    if let n = m.prefixLength { return formatIPv6(a) + "/\(n)" }
    return formatIPv6(a) + "/" + formatIPv6(m)
}

// MARK: - TCP flags

let tcpFlagNames: [(bit: UInt64, name: String)] = [
    (0x001, "fin"), (0x002, "syn"), (0x004, "rst"), (0x008, "psh"), (0x010, "ack"), (0x020, "urg"),
    (0x040, "ece"), (0x080, "cwr"), (0x100, "ns"),
]
let tcpFlagsAllowed: UInt64 = 0x0fff

/// OVS's `parse_flags` for tcp_flags: `0x12/0xfff`, `+syn-ack`, or `syn|ack` (a full mask).
func parseTCPFlags(_ text: String) throws(ValueError) -> (UInt64, UInt64) {
    if let slash = text.firstIndex(of: "/") {
        let v = try parseNumber(String(text[..<slash]), max: tcpFlagsAllowed, hex: true)
        let m = try parseNumber(String(text[text.index(after: slash)...]), max: tcpFlagsAllowed, hex: true)
        return (v & m, m)
    }
    if text.hasPrefix("+") || text.hasPrefix("-") {
        var flags: UInt64 = 0, mask: UInt64 = 0
        var rest = Substring(text)
        while let sign = rest.first {
            guard sign == "+" || sign == "-" else {
                throw ValueError("each flag must be preceded by '+' (set) or '-' (not set)")
            }
            rest = rest.dropFirst()
            let end = rest.firstIndex(where: { $0 == "+" || $0 == "-" }) ?? rest.endIndex
            let name = rest[..<end]
            guard let f = tcpFlagNames.first(where: { $0.name == name }) else {
                throw ValueError("unknown TCP flag \"\(name)\" (fin, syn, rst, psh, ack, urg, ece, cwr, ns)")
            }
            if mask & f.bit != 0 { throw ValueError("each TCP flag can only be specified once") }
            mask |= f.bit
            if sign == "+" { flags |= f.bit }
            rest = rest[end...]
        }
        return (flags, mask)
    }
    var flags: UInt64 = 0
    for part in text.split(separator: "|", omittingEmptySubsequences: false) {
        if let f = tcpFlagNames.first(where: { $0.name == part }) {
            flags |= f.bit
        } else if let first = part.first, isDigit(first) {
            flags |= try parseNumber(String(part), max: tcpFlagsAllowed, hex: true)
        } else {
            throw ValueError("unknown TCP flag \"\(part)\" (fin, syn, rst, psh, ack, urg, ece, cwr, ns)")
        }
    }
    return (flags, tcpFlagsAllowed)
}

/// OVS's `format_flags_masked` for tcp_flags.
func formatTCPFlags(_ value: UInt64, _ mask: UInt64) -> String {
    let m = mask & tcpFlagsAllowed
    let v = value & tcpFlagsAllowed
    if m == tcpFlagsAllowed {
        if v == 0 { return "0" }
        var parts: [String] = []
        var unnamed: UInt64 = 0
        var bits = v
        while bits != 0 {
            let bit = bits & (~bits &+ 1)
            if let f = tcpFlagNames.first(where: { $0.bit == bit }) { parts.append(f.name) } else { unnamed |= bit }
            bits &= ~bit
        }
        if unnamed != 0 { parts.append("0x" + String(unnamed, radix: 16)) }
        return parts.joined(separator: "|")
    }
    // OVS would print "[Unknown]" for unnamed bits; a hex value/mask stays re-parseable.
    if m == 0 || m & ~0x1ff != 0 { return "0x\(String(v & m, radix: 16))/0x\(String(m, radix: 16))" }
    var s = ""
    var bits = m
    while bits != 0 {
        let bit = bits & (~bits &+ 1)
        s += (v & bit != 0 ? "+" : "-") + tcpFlagNames.first(where: { $0.bit == bit })!.name
        bits &= ~bit
    }
    return s
}

// MARK: - Ports

extension FlowParser {
    /// OVS's `ofputil_port_from_string`: a decimal number, a reserved name (case-insensitive), a
    /// port name (optionally in double quotes), or — beyond OVS — a 0x-hex number.
    func resolvePort(_ text: String) throws(ValueError) -> UInt32 {
        if let first = text.first, isDigit(first), text.allSatisfy(isDigit) {
            guard let n = UInt64(text) else { throw ValueError("port number out of range") }
            return try portFromNumber(n)
        }
        if text.hasPrefix("-") { throw ValueError("port numbers cannot be negative") }
        if let reserved = OpenFlowPort.number(named: text) { return reserved }
        var name = text
        if name.count >= 2 && name.hasPrefix("\"") && name.hasSuffix("\"") { name = String(name.dropFirst().dropLast()) }
        if let n = portNumber(name) { return n }
        if text.hasPrefix("0x") || text.hasPrefix("0X") {
            return try portFromNumber(try parseNumber(text, max: 0xffff_ffff, hex: true))
        }
        throw ValueError("no port named \"\(name)\"")
    }

    private func portFromNumber(_ n: UInt64) throws(ValueError) -> UInt32 {
        if n <= 0xffff { return UInt32(n) }
        if n >= 0xffff_ff00 && n <= 0xffff_ffff { return UInt32(n - 0xffff_0000) }  // OF1.1+ reserved ports
        throw ValueError("port number must be 0..65535 (or 0xffffff00..0xffffffff)")
    }
}

/// `LOCAL`, `IN_PORT`, … for reserved ports, else the number.
func formatPort(_ p: UInt32) -> String { OpenFlowPort.name(p) ?? String(p) }
