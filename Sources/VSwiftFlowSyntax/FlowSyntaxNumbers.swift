import VSwiftClassifier

// Numbers in flow syntax: decimal and hex values with optional masks, as ovs-ofctl reads them.

// Values are parsed straight from the input's UTF-8 bytes (`Bytes`, a slice whose indices are input
// offsets): no String or Character work on the hot path. Numbers and addresses are never non-ASCII;
// where the error message for such text could depend on grapheme clustering ("/" + a combining
// accent is one Character), it takes the String-based path so messages stay exactly as they were.

/// Part of the input as UTF-8 bytes; indices are offsets in the whole input.
typealias Bytes = ArraySlice<UInt8>

extension ArraySlice where Element == UInt8 {
    var isASCII: Bool {
        for b in self where b >= 0x80 { return false }
        return true
    }

    var string: String { String(decoding: self, as: UTF8.self) }
}

func isDigit(_ c: Character) -> Bool { c >= "0" && c <= "9" }

@inline(__always) func isDigit(_ b: UInt8) -> Bool { b &- UInt8(ascii: "0") < 10 }

func hexDigitValue(_ c: Character) -> UInt64? {
    guard let a = c.asciiValue else { return nil }
    return hexDigitValue(a)
}

@inline(__always) func hexDigitValue(_ a: UInt8) -> UInt64? {
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

/// `parseNumber` on bytes (same results and messages).
func parseNumber(_ text: Bytes, max: UInt64, hex: Bool) throws(ValueError) -> UInt64 {
    // "0x" followed by a combining mark is not a hex prefix to the Character-based version.
    guard text.isASCII else { return try parseNumber(text.string, max: max, hex: hex) }
    var i = text.startIndex
    var radix: UInt64 = 10
    if text.count >= 2 && text[i] == UInt8(ascii: "0") && (text[i + 1] | 0x20) == UInt8(ascii: "x") {
        i += 2
        radix = 16
    }
    guard i < text.endIndex else { throw ValueError(text.isEmpty ? "missing number" : "not a number") }
    var value: UInt64 = 0
    var overflow = false
    while i < text.endIndex {
        guard let d = hexDigitValue(text[i]), d < radix else {
            throw ValueError(radix == 16 ? "not a hexadecimal number" : "not a number (use decimal or 0x-prefixed hexadecimal)")
        }
        let (m, o1) = value.multipliedReportingOverflow(by: radix)
        let (s, o2) = m.addingReportingOverflow(d)
        overflow = overflow || o1 || o2
        value = s
        i += 1
    }
    if overflow || value > max { throw ValueError(rangeDescription(max: max, hex: hex)) }
    return value
}

/// A run of ASCII decimal digits (at least one) no greater than `max`, or nil.
func parseDecimal(_ text: Bytes, max: UInt64) -> UInt64? {
    guard !text.isEmpty else { return nil }
    var v: UInt64 = 0
    for b in text {
        guard isDigit(b) else { return nil }
        let (m, o1) = v.multipliedReportingOverflow(by: 10)
        let (s, o2) = m.addingReportingOverflow(UInt64(b &- UInt8(ascii: "0")))
        if o1 || o2 { return nil }
        v = s
    }
    return v <= max ? v : nil
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

/// `parseValue` on bytes (same results and messages); the common kinds avoid Strings entirely.
func parseValue(kind: SyntaxField.Kind, maskable: Bool, _ text: Bytes) throws(ValueError) -> FieldValue {
    switch kind {
    case .mac, .ipv4, .integer: break
    case .ipv6:
        let (a, m) = try parseIPv6Masked(text, maskable: maskable)
        return .ipv6(a, mask: m)
    default: return try parseValue(kind: kind, maskable: maskable, text.string)
    }
    // A "/" followed by a combining mark is not a "/" to the String-based version.
    guard text.isASCII else { return try parseValue(kind: kind, maskable: maskable, text.string) }
    let slash = text.firstIndex(of: UInt8(ascii: "/"))
    let valueText = text[..<(slash ?? text.endIndex)]
    let maskText = slash.map { text[($0 + 1)...] }
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
        if maskText.contains(UInt8(ascii: ".")) {
            do { m = try parseIPv4(maskText) } catch { throw ValueError("bad netmask \"\(maskText.string)\"") }
        } else {
            guard let n = parseDecimal(maskText, max: 32) else { throw ValueError("prefix length must be 0..32") }
            m = n == 0 ? 0 : (0xffff_ffff << (32 - n)) & 0xffff_ffff
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
