import VSwiftClassifier

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

// MARK: - Ethernet

func parseMAC(_ text: String) throws(ValueError) -> UInt64 {
    try parseMAC(Bytes(text.utf8))
}

/// Six groups of 1–2 hex digits separated by `:`. Every failure has the same message, so bytes
/// suffice (non-ASCII text fails either way).
func parseMAC(_ text: Bytes) throws(ValueError) -> UInt64 {
    let bad = ValueError("not an Ethernet address (expected xx:xx:xx:xx:xx:xx)")
    var v: UInt64 = 0
    var octet: UInt64 = 0
    var digits = 0
    var groups = 0
    for b in text {
        if b == UInt8(ascii: ":") {
            guard digits > 0, groups < 5 else { throw bad }
            v = v << 8 | octet
            groups += 1
            octet = 0
            digits = 0
        } else {
            guard let d = hexDigitValue(b), digits < 2 else { throw bad }
            octet = octet << 4 | d
            digits += 1
        }
    }
    guard digits > 0, groups == 5 else { throw bad }
    return v << 8 | octet
}

// MARK: - IPv4

func parseIPv4(_ text: String) throws(ValueError) -> UInt64 {
    try parseIPv4(Bytes(text.utf8))
}

/// Four groups of 1–3 decimal digits, each at most 255. Every failure has the same message, so
/// bytes suffice (non-ASCII text fails either way).
func parseIPv4(_ text: Bytes) throws(ValueError) -> UInt64 {
    let bad = ValueError("not an IPv4 address")
    var v: UInt64 = 0
    var octet: UInt64 = 0
    var digits = 0
    var groups = 0
    for b in text {
        if b == UInt8(ascii: ".") {
            guard digits > 0, groups < 3, octet <= 255 else { throw bad }
            v = v << 8 | octet
            groups += 1
            octet = 0
            digits = 0
        } else {
            guard isDigit(b), digits < 3 else { throw bad }
            octet = octet * 10 + UInt64(b &- UInt8(ascii: "0"))
            digits += 1
        }
    }
    guard digits > 0, groups == 3, octet <= 255 else { throw bad }
    return v << 8 | octet
}

// MARK: - IPv6

func parseIPv6(_ text: String) throws(ValueError) -> IPv6Address {
    try parseIPv6(Bytes(text.utf8))
}

/// Colon-separated hex words with at most one `::` and an optional dotted IPv4 tail. Every failure
/// has the same message, so bytes suffice (non-ASCII text fails either way).
func parseIPv6(_ text: Bytes) throws(ValueError) -> IPv6Address {
    let bad = ValueError("not an IPv6 address")
    let colon = UInt8(ascii: ":")
    var words = SIMD8<UInt16>()  // no Array: the address has at most 8 words
    var n = 0
    var gap: Int? = nil  // index in `words` where "::" stands
    var i = text.startIndex
    let end = text.endIndex
    func isDoubleColon(_ i: Int) -> Bool { i + 1 < end && text[i] == colon && text[i + 1] == colon }
    if isDoubleColon(i) {
        gap = 0
        i += 2
    } else if i < end && text[i] == colon {
        throw bad
    }
    while i < end {
        let partEnd = text[i...].firstIndex(of: colon) ?? end
        let part = text[i ..< partEnd]
        if part.contains(UInt8(ascii: ".")) {
            guard partEnd == end, n <= 6 else { throw bad }
            let v4: UInt64
            do { v4 = try parseIPv4(part) } catch { throw bad }
            words[n] = UInt16(v4 >> 16)
            words[n + 1] = UInt16(v4 & 0xffff)
            n += 2
            break
        }
        guard (1...4).contains(part.count), n < 8 else { throw bad }
        var w: UInt16 = 0
        for c in part {
            guard let d = hexDigitValue(c) else { throw bad }
            w = w << 4 | UInt16(d)
        }
        words[n] = w
        n += 1
        i = partEnd
        if isDoubleColon(i) {
            guard gap == nil else { throw bad }
            gap = n
            i += 2
        } else if i < end {  // a single ":"
            i += 1
            if i == end { throw bad }
        }
    }
    if let gap {
        guard n <= 7 else { throw bad }
        // Move the words after "::" to the end; zeros fill the gap.
        let shift = 8 - n
        for k in stride(from: n - 1, through: gap, by: -1) { words[k + shift] = words[k] }
        for k in gap ..< gap + shift { words[k] = 0 }
        n = 8
    }
    guard n == 8 else { throw bad }
    var hi: UInt64 = 0, lo: UInt64 = 0
    for k in 0..<4 { hi = hi << 16 | UInt64(words[k]) }
    for k in 4..<8 { lo = lo << 16 | UInt64(words[k]) }
    return IPv6Address(high: hi, low: lo)
}

/// `parseIPv6Masked` on bytes (same results and messages).
func parseIPv6Masked(_ text: Bytes, maskable: Bool) throws(ValueError) -> (IPv6Address, IPv6Address) {
    // A "/" followed by a combining mark is not a "/" to the String-based version.
    guard text.isASCII else { return try parseIPv6Masked(text.string, maskable: maskable) }
    let slash = text.firstIndex(of: UInt8(ascii: "/"))
    let valueText = text[..<(slash ?? text.endIndex)]
    if slash != nil && !maskable { throw ValueError("this field cannot be masked") }
    let a = try parseIPv6(valueText)
    guard let slash else { return (a, .allOnes) }
    let maskText = text[(slash + 1)...]
    let m: IPv6Address
    if maskText.contains(UInt8(ascii: ":")) {
        do { m = try parseIPv6(maskText) } catch { throw ValueError("bad netmask \"\(maskText.string)\"") }
    } else {
        guard let n = parseDecimal(maskText, max: 128) else { throw ValueError("prefix length must be 0..128") }
        m = .prefix(Int(n))
    }
    return (IPv6Address(high: a.high & m.high, low: a.low & m.low), m)
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

extension TextWriter {
    /// RFC 5952 text, as glibc's `inet_ntop` writes it (which is what OVS prints).
    mutating func ipv6(_ a: IPv6Address) {
        var words = SIMD8<UInt64>()  // no Array: fixed size
        for i in 0..<4 {
            words[i] = a.high >> UInt64(48 - 16 * i) & 0xffff
            words[i + 4] = a.low >> UInt64(48 - 16 * i) & 0xffff
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
        var i = 0
        while i < 8 {
            if best.base != -1 && i >= best.base && i < best.base + best.len {
                if i == best.base { append(":") }
                i += 1
                continue
            }
            if i != 0 { append(":") }
            if i == 6 && best.base == 0 && (best.len == 6 || (best.len == 5 && words[5] == 0xffff)) {
                ipv4(words[6] << 16 | words[7])
                return
            }
            hex(words[i])
            i += 1
        }
        if best.base != -1 && best.base + best.len == 8 { append(":") }
    }

    mutating func ipv6Masked(_ a: IPv6Address, _ m: IPv6Address) {
        ipv6(a)
        if m == .allOnes { return }
        append("/")
        if let n = m.prefixLength { decimal(n) } else { ipv6(m) }
    }
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
    /// port name (optionally in double quotes). Like OVS, no hex: `in_port=0xffffffff` is refused
    /// ("invalid or unknown port") instead of quietly becoming `in_port=ANY`.
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
        if text.hasPrefix("0x") || text.hasPrefix("0X") { throw ValueError("port numbers are decimal, as in OVS") }
        throw ValueError("no port named \"\(name)\"")
    }

    /// `resolvePort` on bytes; plain decimal numbers (the common case) skip the String.
    func resolvePort(_ text: Bytes) throws(ValueError) -> UInt32 {
        guard let first = text.first, isDigit(first), text.allSatisfy(isDigit) else { return try resolvePort(text.string) }
        guard let n = parseDecimal(text, max: .max) else { throw ValueError("port number out of range") }
        return try portFromNumber(n)
    }

    private func portFromNumber(_ n: UInt64) throws(ValueError) -> UInt32 {
        if n <= 0xffff { return UInt32(n) }
        if n >= 0xffff_ff00 && n <= 0xffff_ffff { return UInt32(n - 0xffff_0000) }  // OF1.1+ reserved ports
        throw ValueError("port number must be 0..65535 (or 0xffffff00..0xffffffff)")
    }
}

/// `LOCAL`, `IN_PORT`, … for reserved ports, else the number.
func formatPort(_ p: UInt32) -> String { OpenFlowPort.name(p) ?? String(p) }

// MARK: - Output

/// Text built as UTF-8 bytes in one buffer with reserved capacity: printing a flow appends numbers
/// and addresses in place instead of creating and joining many small Strings.
struct TextWriter {
    var bytes: [UInt8] = []
    /// Where the current comma-separated list started (see `item`).
    private var listStart = 0

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    var string: String { String(decoding: bytes, as: UTF8.self) }
    var count: Int { bytes.count }

    mutating func append(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ s: String) { bytes.append(contentsOf: s.utf8) }

    /// Starts a list whose items `item` separates with commas.
    mutating func beginList() { listStart = bytes.count }

    /// A list item beginning with `prefix` (e.g. `nw_src=`), after a comma unless it is the first.
    mutating func item(_ prefix: StaticString) {
        if bytes.count > listStart { bytes.append(UInt8(ascii: ",")) }
        append(prefix)
    }

    /// `String(v)`.
    mutating func decimal<T: BinaryInteger>(_ value: T) {
        let v = UInt64(value)
        var p: UInt64 = 1  // the power of 10 of the first digit
        while v / p >= 10 { p *= 10 }
        repeat {
            bytes.append(UInt8(ascii: "0") + UInt8(v / p % 10))
            p /= 10
        } while p != 0
    }

    /// `String(v, radix: 16)`, zero-padded to `minDigits`.
    mutating func hex<T: BinaryInteger>(_ value: T, minDigits: Int = 1) {
        let v = UInt64(value)
        let digits = Swift.max(minDigits, (64 - v.leadingZeroBitCount + 3) / 4, 1)
        for k in stride(from: digits - 1, through: 0, by: -1) {
            let d = k >= 16 ? 0 : UInt8(truncatingIfNeeded: v >> UInt64(4 * k)) & 15
            bytes.append(d < 10 ? UInt8(ascii: "0") + d : UInt8(ascii: "a") - 10 + d)
        }
    }

    /// C's `0x%0*x`.
    mutating func hexPadded<T: BinaryInteger>(_ v: T, width: Int) {
        append("0x")
        hex(v, minDigits: width)
    }

    /// C's `%#x`: `0` for zero, else `0x…`.
    mutating func hexAlternate<T: BinaryInteger>(_ v: T) {
        if v == 0 { bytes.append(UInt8(ascii: "0")) } else { hexPadded(v, width: 1) }
    }

    mutating func mac(_ v: UInt64) {
        for i in stride(from: 40, through: 0, by: -8) {
            if i != 40 { bytes.append(UInt8(ascii: ":")) }
            hex(v >> UInt64(i) & 0xff, minDigits: 2)
        }
    }

    mutating func macMasked(_ v: UInt64, _ m: UInt64) {
        mac(v)
        if m & 0xffff_ffff_ffff != 0xffff_ffff_ffff {
            bytes.append(UInt8(ascii: "/"))
            mac(m)
        }
    }

    mutating func ipv4(_ v: UInt64) {
        decimal(v >> 24 & 255)
        bytes.append(UInt8(ascii: "."))
        decimal(v >> 16 & 255)
        bytes.append(UInt8(ascii: "."))
        decimal(v >> 8 & 255)
        bytes.append(UInt8(ascii: "."))
        decimal(v & 255)
    }

    /// OVS's `ip_format_masked`: plain when exact, `/N` for a prefix, `/a.b.c.d` otherwise.
    mutating func ipv4Masked(_ v: UInt64, _ m: UInt64) {
        ipv4(v)
        let mask = UInt32(truncatingIfNeeded: m)
        if mask == .max { return }
        bytes.append(UInt8(ascii: "/"))
        if let n = mask.leadingNonzeroBitCount(contiguous: true) { decimal(n) } else { ipv4(UInt64(mask)) }
    }

    mutating func port(_ p: UInt32) {
        if let name = OpenFlowPort.name(p) { append(name) } else { decimal(p) }
    }
}
