/// An IPv4 or IPv6 address as 128 bits, so tunnel endpoints of either family fit one field and
/// compare or hash as two integers.
///
/// `high` and `low` are host-order words with the first octet most significant in `high` (as the
/// IPv6 words of a `FlowKey`). IPv4 addresses are stored IPv4-mapped (`::ffff:a.b.c.d`, RFC 4291
/// §2.5.5.2), so `init(ipv4:)` and parsing "a.b.c.d" or "::ffff:a.b.c.d" give the same value, which
/// prints as "a.b.c.d".
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    /// The top 32 bits of `low` for an IPv4-mapped address.
    @inlinable public static var mappedMarker: UInt64 { 0x0000_ffff_0000_0000 }

    @inlinable @inline(__always)
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The IPv4-mapped form of `ipv4` (host order, first octet most significant).
    @inlinable @inline(__always)
    public init(ipv4: UInt32) {
        high = 0
        low = IPAddress.mappedMarker | UInt64(ipv4)
    }

    /// 16 bytes in network order at `p` (e.g. an IPv6 header's address field).
    @inlinable @inline(__always)
    public init(loadingFrom p: UnsafeRawPointer) {
        high = Wire.u64(p, 0)
        low = Wire.u64(p, 8)
    }

    /// An IPv4-mapped address (`::ffff:0:0/96`).
    @inlinable @inline(__always)
    public var isIPv4: Bool { high == 0 && low >> 32 == 0xffff }

    /// The IPv4 address; meaningful only when `isIPv4`.
    @inlinable @inline(__always)
    public var ipv4: UInt32 { UInt32(truncatingIfNeeded: low) }

    /// Stores the 16 bytes in network order at `p`.
    @inlinable @inline(__always)
    public func store(to p: UnsafeMutableRawPointer) {
        Wire.put64(p, 0, high)
        Wire.put64(p, 8, low)
    }

    /// The 16 bytes in network order.
    public var bytes: [UInt8] {
        (0..<16).map { i in UInt8(truncatingIfNeeded: (i < 8 ? high : low) >> UInt64(56 - (i & 7) * 8)) }
    }

    /// 16-bit group `i` (0..<8) in host order.
    @inline(__always)
    func group(_ i: Int) -> UInt16 {
        UInt16(truncatingIfNeeded: (i < 4 ? high : low) >> UInt64(48 - (i & 3) * 16))
    }

    // MARK: Text

    /// Parses dotted IPv4 ("192.0.2.1": four decimal octets, no leading zeros, as inet_pton) or IPv6
    /// text (RFC 4291 §2.2: one to four hex digits per group, at most one "::" standing for one or
    /// more zero groups, optionally a dotted IPv4 address as the last 32 bits). No zone index, no
    /// brackets, no surrounding blanks.
    public init?(_ text: String) {
        let utf8 = Array(text.utf8)
        if !utf8.contains(UInt8(ascii: ":")) {
            guard let v4 = IPAddress.parseIPv4(utf8[...]) else { return nil }
            self.init(ipv4: v4)
            return
        }
        guard let (high, low) = IPAddress.parseIPv6(utf8) else { return nil }
        self.init(high: high, low: low)
    }

    static func parseIPv4(_ s: ArraySlice<UInt8>) -> UInt32? {
        var value: UInt32 = 0
        var parts = 0
        var i = s.startIndex
        while true {
            var octet: UInt32 = 0
            var digits = 0
            while i < s.endIndex, s[i] >= UInt8(ascii: "0"), s[i] <= UInt8(ascii: "9") {
                if digits == 1 && octet == 0 { return nil } // leading zero
                octet = octet * 10 + UInt32(s[i] - UInt8(ascii: "0"))
                digits += 1
                guard digits <= 3, octet <= 255 else { return nil }
                i += 1
            }
            guard digits > 0 else { return nil }
            value = value << 8 | octet
            parts += 1
            if parts == 4 { return i == s.endIndex ? value : nil }
            guard i < s.endIndex, s[i] == UInt8(ascii: ".") else { return nil }
            i += 1
        }
    }

    static func parseIPv6(_ s: [UInt8]) -> (UInt64, UInt64)? {
        let colon = UInt8(ascii: ":")
        var head: [UInt16] = [] // groups before "::" (all groups when there is none)
        var tail: [UInt16] = [] // groups after "::"
        var compressed = false
        var i = 0
        if s.count >= 2 && s[0] == colon && s[1] == colon {
            compressed = true
            i = 2
        } else if s.first == colon {
            return nil
        }
        while i < s.count {
            var j = i
            while j < s.count && s[j] != colon { j += 1 }
            let token = s[i..<j]
            var groups: [UInt16] = []
            if token.contains(UInt8(ascii: ".")) {
                // A dotted quad only as the last 32 bits.
                guard j == s.count, let v4 = IPAddress.parseIPv4(token) else { return nil }
                groups = [UInt16(v4 >> 16), UInt16(v4 & 0xffff)]
            } else {
                guard (1...4).contains(token.count) else { return nil }
                var value: UInt16 = 0
                for c in token {
                    guard let d = IPAddress.hexDigit(c) else { return nil }
                    value = value << 4 | UInt16(d)
                }
                groups = [value]
            }
            if compressed { tail += groups } else { head += groups }
            if j == s.count { break }
            i = j + 1
            if i < s.count && s[i] == colon {
                guard !compressed else { return nil } // a second "::"
                compressed = true
                i += 1
            } else if i == s.count {
                return nil // a single trailing colon
            }
        }
        let count = head.count + tail.count
        if compressed {
            guard count <= 7 else { return nil } // "::" stands for at least one group
        } else {
            guard count == 8 else { return nil }
        }
        let groups = head + [UInt16](repeating: 0, count: 8 - count) + tail
        var high: UInt64 = 0
        var low: UInt64 = 0
        for k in 0..<4 { high = high << 16 | UInt64(groups[k]) }
        for k in 4..<8 { low = low << 16 | UInt64(groups[k]) }
        return (high, low)
    }

    static func hexDigit(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// IPv4 (mapped) as dotted decimal; IPv6 in the RFC 5952 canonical form: lowercase hex without
    /// leading zeros, the longest run of two or more zero groups (the first of equal runs) as "::".
    public var description: String {
        if isIPv4 {
            let a = ipv4
            return "\(a >> 24).\((a >> 16) & 0xff).\((a >> 8) & 0xff).\(a & 0xff)"
        }
        var bestStart = -1
        var bestLength = 1 // a run must be longer than this (RFC 5952 §4.2.2)
        var k = 0
        while k < 8 {
            if group(k) == 0 {
                var e = k
                while e < 8 && group(e) == 0 { e += 1 }
                if e - k > bestLength {
                    bestStart = k
                    bestLength = e - k
                }
                k = e
            } else {
                k += 1
            }
        }
        var out = ""
        k = 0
        while k < 8 {
            if k == bestStart {
                out += "::"
                k += bestLength
                continue
            }
            if !out.isEmpty && !out.hasSuffix(":") { out += ":" }
            out += String(group(k), radix: 16)
            k += 1
        }
        return out
    }
}
