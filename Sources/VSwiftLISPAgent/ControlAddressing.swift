import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket

/// The map-cache's EID prefix (instance id, canonical address, length).
typealias CachePrefix = VSwiftMapCache.EIDPrefix
/// The wire's EID prefix (a `LISPAddress`, usually an Instance ID LCAF, and a mask length).
typealias WirePrefix = VSwiftLISPControl.EIDPrefix

/// Conversions between the wire's addresses (`LISPAddress`) and the map-cache's (`IPAddress`,
/// `CachePrefix`). Instance id 0 is sent as a plain address, any other in an Instance ID LCAF
/// (RFC 8060 §4.1), as OpenOverlayRouter and lispers.net do; both forms are read.
enum ControlAddressing {
    static func wireAddress(_ ip: IPAddress, instanceID: UInt32) -> LISPAddress {
        let plain = LISPAddress(ip)
        return instanceID == 0 ? plain : .instanceID(instanceID, maskLength: 0, address: plain)
    }

    static func wirePrefix(_ prefix: CachePrefix) -> WirePrefix {
        WirePrefix(wireAddress(prefix.address, instanceID: prefix.instanceID), maskLength: prefix.length)
    }

    /// The map-cache form of a wire prefix; nil when it is not an IPv4/IPv6 prefix (optionally in
    /// an instance id of 24 bits).
    static func cachePrefix(_ prefix: WirePrefix) -> CachePrefix? {
        guard let ip = prefix.address.plain.ipAddress else { return nil }
        return CachePrefix(instanceID: prefix.address.instanceID ?? 0, address: ip, length: Int(prefix.maskLength))
    }

    /// The IP address of a plain IPv4/IPv6 `LISPAddress` (not one inside an LCAF).
    static func ip(_ address: LISPAddress) -> IPAddress? {
        switch address {
        case .ipv4, .ipv6: address.ipAddress
        default: nil
        }
    }

    /// Whether `inner` lies inside `outer`: same instance and family, `outer` no longer, and
    /// `inner`'s address in `outer`.
    static func covers(_ outer: CachePrefix, _ inner: CachePrefix) -> Bool {
        outer.instanceID == inner.instanceID && outer.isIPv4 == inner.isIPv4 && outer.length <= inner.length
            && outer.contains(inner.address)
    }

    /// The host prefix (/32 or /128) of `ip` in `instanceID`.
    static func hostPrefix(_ ip: IPAddress, instanceID: UInt32) -> CachePrefix? {
        CachePrefix(instanceID: instanceID, address: ip, length: ip.isIPv4 ? 32 : 128)
    }

    /// 0.0.0.0 or ::, the unspecified address of a family.
    static func unspecified(ipv4: Bool) -> IPAddress { ipv4 ? IPAddress(ipv4: 0) : IPAddress(high: 0, low: 0) }
}

/// Nonces (RFC 9301 §5.3, §5.6): 64 bits from the system's CSPRNG, so an off-path attacker cannot
/// guess the nonce of a Map-Request (its only protection for Map-Replies, §9) or a Map-Register.
enum Nonce {
    static func fresh() -> UInt64 {
        var generator = SystemRandomNumberGenerator()
        return generator.next()
    }
}
