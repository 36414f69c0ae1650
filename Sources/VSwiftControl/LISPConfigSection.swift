import VSwiftProtocol

/// The LISP control configuration as the configuration file keeps it (the `lisp` section, absent
/// when empty, so files written before issue 16 load as "nothing configured"): each item as the
/// request that made it, with its text in canonical form (checked again at restore by
/// `LISPConfigValidation`, as a request would be). Map-server keys are stored here, in the
/// file that is mode 0600 in a directory only root can change (`ConfigStore`, `SafeDirectory`);
/// they are never sent back over the control socket, printed or logged.
public struct LISPSavedConfig: Codable, Sendable, Equatable {
    /// In order of addition; written with `algorithm` and `keyID` (RFC 9301's Key ID). Files
    /// written before Key IDs were configurable have `keyID` alone: RFC 6830's, the algorithm.
    public var mapServers: [AddMapServerParams]
    /// In order of preference (of addition).
    public var mapResolvers: [String]
    /// Local EID prefixes, in order of addition; no `rlocs`: the host's address toward the map-servers.
    public var localEIDs: [EIDParams]
    /// Static map-cache entries, in order of addition.
    public var mapCache: [EIDParams]

    public init(mapServers: [AddMapServerParams] = [], mapResolvers: [String] = [], localEIDs: [EIDParams] = [], mapCache: [EIDParams] = []) {
        self.mapServers = mapServers
        self.mapResolvers = mapResolvers
        self.localEIDs = localEIDs
        self.mapCache = mapCache
    }

    public var isEmpty: Bool { mapServers.isEmpty && mapResolvers.isEmpty && localEIDs.isEmpty && mapCache.isEmpty }

    /// A section whose lists are missing reads as empty lists.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        mapServers = try c.decodeIfPresent([AddMapServerParams].self, forKey: .mapServers) ?? []
        mapResolvers = try c.decodeIfPresent([String].self, forKey: .mapResolvers) ?? []
        localEIDs = try c.decodeIfPresent([EIDParams].self, forKey: .localEIDs) ?? []
        mapCache = try c.decodeIfPresent([EIDParams].self, forKey: .mapCache) ?? []
    }

    private enum CodingKeys: String, CodingKey { case mapServers, mapResolvers, localEIDs, mapCache }
}
