import Glibc
import VSwiftPacket

/// Netlink carries addresses as 4 or 16 network-order bytes with a family byte; vswift holds them
/// as `IPAddress` (IPv4-mapped for IPv4).
typealias NetlinkAddress = IPAddress

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
