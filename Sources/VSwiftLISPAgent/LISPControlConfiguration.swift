import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket

/// What an operator configures for the xTR's control plane (RFC 9301): where to register, whom to
/// ask, and which EID prefixes are ours. Persisted by the switch's configuration store and shown
/// by `vswiftctl show-lisp`; the control plane (`XTRControlPlane`) takes it whole on every change.
public struct LISPControlConfiguration: Equatable, Sendable {
    public var mapServers: [MapServerConfiguration]
    /// Map-resolvers, in order of preference (Map-Requests go to the first that answers).
    public var mapResolvers: [IPAddress]
    public var localEIDs: [LocalEIDConfiguration]

    public init(mapServers: [MapServerConfiguration] = [], mapResolvers: [IPAddress] = [], localEIDs: [LocalEIDConfiguration] = []) {
        self.mapServers = mapServers
        self.mapResolvers = mapResolvers
        self.localEIDs = localEIDs
    }

    public var isEmpty: Bool { mapServers.isEmpty && mapResolvers.isEmpty && localEIDs.isEmpty }
}

/// A map-server we register our EIDs with, and the shared key that authenticates Map-Register and
/// Map-Notify (RFC 9301 §5.6, §12.5: Algorithm ID 1 HMAC-SHA-1-96, 2 HMAC-SHA-256-128, which
/// RFC 6830 called key ids; Key ID 0).
public struct MapServerConfiguration: Equatable, Sendable {
    public var address: IPAddress
    public var key: AuthenticationKey

    public init(address: IPAddress, key: AuthenticationKey) {
        self.address = address
        self.key = key
    }
}

/// One local EID prefix in an instance id and the RLOCs that reach it. Empty `rlocs` means "the
/// host's address the underlay route to the map-server uses" (resolved by the control plane's
/// I/O side before it reaches `XTRControlPlane`, which always sees concrete RLOCs).
public struct LocalEIDConfiguration: Equatable, Sendable {
    public var prefix: VSwiftMapCache.EIDPrefix
    public var rlocs: [LocalRLOCConfiguration]

    public init(prefix: VSwiftMapCache.EIDPrefix, rlocs: [LocalRLOCConfiguration] = []) {
        self.prefix = prefix
        self.rlocs = rlocs
    }
}

/// A locator of a local EID prefix as it is registered (RFC 9301 §5.4 locator record).
public struct LocalRLOCConfiguration: Equatable, Sendable {
    public var address: IPAddress
    public var priority: UInt8
    public var weight: UInt8

    public init(address: IPAddress, priority: UInt8 = 1, weight: UInt8 = 100) {
        self.address = address
        self.priority = priority
        self.weight = weight
    }
}
