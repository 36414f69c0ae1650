import Glibc

/// An IPv4 or IPv6 address as the netlink queries take and return it: 128 bits, first octet most
/// significant in `high`, IPv4 held IPv4-mapped (::ffff:a.b.c.d).
///
/// A stand-in until VSwiftPacket's `IPAddress(high:low:)` replaces it, so its surface stays tiny.
struct NetlinkAddress: Hashable, Sendable, CustomStringConvertible {
    var high: UInt64
    var low: UInt64

    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    init(ipv4: UInt32) {
        self.init(high: 0, low: 0xffff_0000_0000 | UInt64(ipv4))
    }

    /// Parses dotted-quad IPv4 or textual IPv6 (tests, diagnostics).
    init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self.init(ipv4: UInt32(bigEndian: v4.s_addr))
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        self.init(networkBytes: withUnsafeBytes(of: v6) { Array($0)[...] })
    }

    var isIPv4: Bool { high == 0 && low >> 32 == 0xffff }

    /// The IPv4 address (host order); meaningful only when `isIPv4`.
    var ipv4: UInt32 { UInt32(truncatingIfNeeded: low) }

    var description: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let bytes = networkBytes
        let family = isIPv4 ? AF_INET : AF_INET6
        _ = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &text, socklen_t(text.count)) }
        return String(cString: text)
    }
}

extension NetlinkAddress {
    /// From the 4 or 16 network-order bytes netlink carries; nil for any other length.
    init?(networkBytes bytes: ArraySlice<UInt8>) {
        func bigEndian(_ range: ArraySlice<UInt8>) -> UInt64 { range.reduce(0) { $0 << 8 | UInt64($1) } }
        let start = bytes.startIndex
        switch bytes.count {
        case 4: self.init(ipv4: UInt32(truncatingIfNeeded: bigEndian(bytes)))
        case 16: self.init(high: bigEndian(bytes[start..<start + 8]), low: bigEndian(bytes[(start + 8)...]))
        default: return nil
        }
    }

    /// The bytes netlink wants: 4 for IPv4, 16 for IPv6, network order.
    var networkBytes: [UInt8] {
        func bytes(_ value: UInt64, count: Int) -> [UInt8] {
            (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * (count - 1 - $0))) }
        }
        return isIPv4 ? bytes(UInt64(ipv4), count: 4) : bytes(high, count: 8) + bytes(low, count: 8)
    }

    /// AF_INET or AF_INET6, as the family byte of rtnetlink headers.
    var family: UInt8 { UInt8(isIPv4 ? AF_INET : AF_INET6) }
}
