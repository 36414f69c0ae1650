// The LISP mapping system's methods (issue 16): their params (vswiftctl's RLOC argument: LISPArguments.swift).
// Plain text and numbers: vswiftd checks them (VSwiftControl's LISPConfigValidation.swift).

/// Params of add-map-server: a map-server we register our EIDs with, and its shared key.
/// `key` is a secret: vswiftd keeps it in its configuration file and never sends it back.
public struct AddMapServerParams: Codable, Sendable, Equatable {
    public var address: String
    public var key: String
    /// With `algorithm`: RFC 9301 §5.6's Key ID, 0–255, which pre-shared secret (nil means 0).
    /// Without it, RFC 6830's meaning, as before RFC 9301 split the field: 1 = HMAC-SHA-1-96,
    /// 2 = HMAC-SHA-256-128 (nil means 2), with Key ID 0. Saved files always carry `algorithm`.
    public var keyID: Int?
    /// The MAC algorithm (RFC 9301 §12.5) by name or number: "hmac-sha-1-96", "hmac-sha-256-128"
    /// (also "sha1", "sha256", "HMAC-SHA-256-128-None", "1", "2"; `AuthenticationAlgorithm(name:)`).
    public var algorithm: String?

    public init(address: String, key: String, keyID: Int? = nil, algorithm: String? = nil) {
        self.address = address
        self.key = key
        self.keyID = keyID
        self.algorithm = algorithm
    }

    private enum CodingKeys: String, CodingKey { case address, key, keyID = "key_id", algorithm }
}

/// Params of del-map-server, add-map-resolver and del-map-resolver.
public struct LISPAddressParams: Codable, Sendable, Equatable {
    public var address: String

    public init(address: String) {
        self.address = address
    }
}

/// One RLOC of a local EID or a static map-cache entry (RFC 9301 §5.4 locator record).
public struct RLOCParams: Codable, Sendable, Equatable {
    public var address: String
    /// 0–255, lower preferred (255: never for unicast); nil means 1.
    public var priority: Int?
    /// 0–255, the share among RLOCs of the same priority; nil means 100.
    public var weight: Int?

    public init(address: String, priority: Int? = nil, weight: Int? = nil) {
        self.address = address
        self.priority = priority
        self.weight = weight
    }

    public static let defaultPriority = 1
    public static let defaultWeight = 100
}

/// Params of add-eid (a local EID prefix; no `rlocs`: the host's address toward the map-server)
/// and add-map-cache (a static entry: `rlocs` required). Also what the configuration file keeps.
public struct EIDParams: Codable, Sendable, Equatable {
    /// The instance id (24 bits, RFC 8060 §4.1).
    public var instanceID: UInt32
    /// "a.b.c.d/len" or "x::/len".
    public var prefix: String
    public var rlocs: [RLOCParams]?

    public init(instanceID: UInt32, prefix: String, rlocs: [RLOCParams]? = nil) {
        self.instanceID = instanceID
        self.prefix = prefix
        self.rlocs = rlocs
    }

    private enum CodingKeys: String, CodingKey { case instanceID = "instance_id", prefix, rlocs }
}
