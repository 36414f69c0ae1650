import VSwiftLISPAgent
import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket
import VSwiftProtocol

/// Checks the LISP control requests (and the file's `lisp` section, item by item as the requests
/// that made it) and turns them into the control plane's types. Every error is invalid params
/// with a sentence naming the value at fault; a key never appears in an error.
///
/// Bounds (so a client, or a damaged file, cannot make vswiftd hold or send unbounded state):
/// 16 map-servers, 16 map-resolvers, 4,096 local EID prefixes, 65,536 static map-cache entries,
/// 8 RLOCs per local EID and 64 per static entry (RFC 9301 §5.4's locator count is 8 bits;
/// 64 is `DecodeLimits`' per-record cap), keys of 1–256 bytes.
enum LISPConfigValidation {
    static let maxMapServers = 16
    static let maxMapResolvers = 16
    static let maxLocalEIDs = 4096
    static let maxStaticEntries = 65536
    static let maxLocalRLOCs = 8
    static let maxStaticRLOCs = 64
    static let maxKeyBytes = 256
    /// The map-cache's capacity: every static entry, and as many learnt ones again (LRU beyond).
    static let mapCacheCapacity = 2 * maxStaticEntries

    /// A unicast address: not unspecified, multicast or IPv4 broadcast.
    static func address(_ text: String, what: String) throws(RPCError) -> IPAddress {
        guard let address = IPAddress(text) else {
            throw .invalidParams("\(what) \"\(text)\" is not an IPv4 or IPv6 address")
        }
        let isMulticast = address.isIPv4 ? address.ipv4 >> 28 == 0xe : address.high >> 56 == 0xff
        let isUnspecified = address.isIPv4 ? address.ipv4 == 0 : (address.high == 0 && address.low == 0)
        guard !isMulticast, !isUnspecified, !(address.isIPv4 && address.ipv4 == 0xffff_ffff) else {
            throw .invalidParams("\(what) \(address) is not a unicast address")
        }
        return address
    }

    static func mapServer(_ params: AddMapServerParams) throws(RPCError) -> MapServerConfiguration {
        let address = try address(params.address, what: "map-server")
        let algorithm: AuthenticationAlgorithm, keyID: UInt8
        if let name = params.algorithm {
            guard let named = AuthenticationAlgorithm(name: name) else {
                throw .invalidParams("algorithm \"\(name)\" is not supported (hmac-sha-1-96 or hmac-sha-256-128)")
            }
            let id = params.keyID ?? 0
            guard (0...255).contains(id) else { throw .invalidParams("key id \(id) is not from 0 to 255 (RFC 9301 §5.6)") }
            algorithm = named
            keyID = UInt8(id)
        } else {
            // RFC 6830's 16-bit Key ID, as before RFC 9301 split it: the algorithm, Key ID 0.
            let id = params.keyID ?? Int(AuthenticationAlgorithm.hmacSHA256_128.keyID)
            guard let legacy = AuthenticationAlgorithm(rawValue: UInt16(clamping: id)), id >= 0 else {
                throw .invalidParams(
                    "key id \(id) is not supported (1: HMAC-SHA-1-96, 2: HMAC-SHA-256-128; with an algorithm, the key id is RFC 9301's, 0 to 255)")
            }
            algorithm = legacy
            keyID = 0
        }
        let secret = Array(params.key.utf8)
        guard !secret.isEmpty else { throw .invalidParams("the key of map-server \(address) is empty") }
        guard secret.count <= maxKeyBytes else {
            throw .invalidParams("the key of map-server \(address) is longer than \(maxKeyBytes) bytes")
        }
        return MapServerConfiguration(address: address, key: AuthenticationKey(algorithm: algorithm, keyID: keyID, secret: secret))
    }

    /// The canonical saved form of a map-server: always with `algorithm`, so `key_id` is RFC 9301's.
    static func saved(_ server: MapServerConfiguration, key: String) -> AddMapServerParams {
        AddMapServerParams(address: "\(server.address)", key: key, keyID: Int(server.key.keyID), algorithm: server.key.algorithm.name)
    }

    static func prefix(_ params: EIDParams) throws(RPCError) -> VSwiftMapCache.EIDPrefix {
        guard params.instanceID <= VSwiftMapCache.EIDPrefix.maxInstanceID else {
            throw .invalidParams("instance id \(params.instanceID) does not fit 24 bits (at most \(VSwiftMapCache.EIDPrefix.maxInstanceID))")
        }
        let parts = params.prefix.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPAddress(String(parts[0])) else {
            throw .invalidParams("EID prefix \"\(params.prefix)\" is not ADDRESS/LENGTH (e.g. 10.1.0.0/16 or fd00:1::/48)")
        }
        let maxLength = address.isIPv4 ? 32 : 128
        guard parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let length = Int(parts[1]), length <= maxLength,
            let prefix = VSwiftMapCache.EIDPrefix(instanceID: params.instanceID, address: address, length: length)
        else {
            throw .invalidParams("the length of EID prefix \"\(params.prefix)\" is not a number from 0 to \(maxLength)")
        }
        return prefix
    }

    static func rloc(_ params: RLOCParams) throws(RPCError) -> LocalRLOCConfiguration {
        let address = try address(params.address, what: "RLOC")
        let priority = params.priority ?? RLOCParams.defaultPriority
        let weight = params.weight ?? RLOCParams.defaultWeight
        guard (0...255).contains(priority) else { throw .invalidParams("RLOC \(address): priority \(priority) is not from 0 to 255") }
        guard (0...255).contains(weight) else { throw .invalidParams("RLOC \(address): weight \(weight) is not from 0 to 255") }
        return LocalRLOCConfiguration(address: address, priority: UInt8(priority), weight: UInt8(weight))
    }

    static func rlocs(_ list: [RLOCParams], max: Int, of prefix: VSwiftMapCache.EIDPrefix) throws(RPCError) -> [LocalRLOCConfiguration] {
        guard list.count <= max else { throw .invalidParams("\(text(prefix)) has \(list.count) RLOCs; at most \(max)") }
        var rlocs: [LocalRLOCConfiguration] = []
        for params in list {
            let rloc = try rloc(params)
            guard !rlocs.contains(where: { $0.address == rloc.address }) else {
                throw .invalidParams("RLOC \(rloc.address) is given twice for \(text(prefix))")
            }
            rlocs.append(rloc)
        }
        return rlocs
    }

    /// The canonical saved form of a prefix and its RLOCs (what `show-lisp` prints back).
    static func saved(_ prefix: VSwiftMapCache.EIDPrefix, _ rlocs: [LocalRLOCConfiguration]?) -> EIDParams {
        EIDParams(
            instanceID: prefix.instanceID, prefix: "\(prefix.address)/\(prefix.length)",
            rlocs: rlocs.map { $0.map { RLOCParams(address: "\($0.address)", priority: Int($0.priority), weight: Int($0.weight)) } })
    }

    /// "EID prefix [iid] a.b.c.d/len", for errors.
    static func text(_ prefix: VSwiftMapCache.EIDPrefix) -> String {
        "EID prefix [\(prefix.instanceID)] \(prefix.address)/\(prefix.length)"
    }
}

/// The LISP control configuration, checked: what the I/O thread is given (`LISPControlSettings`).
struct ValidatedLISPConfig: Equatable, Sendable {
    var configuration = LISPControlConfiguration()
    var staticEntries: [StaticMapping] = []

    /// Checks a saved section whole, as the requests that made it would have been: form, bounds
    /// and duplicates.
    init(_ saved: LISPSavedConfig) throws(RPCError) {
        typealias V = LISPConfigValidation
        guard saved.mapServers.count <= V.maxMapServers else { throw .invalidParams("more than \(V.maxMapServers) map-servers") }
        guard saved.mapResolvers.count <= V.maxMapResolvers else { throw .invalidParams("more than \(V.maxMapResolvers) map-resolvers") }
        guard saved.localEIDs.count <= V.maxLocalEIDs else { throw .invalidParams("more than \(V.maxLocalEIDs) local EID prefixes") }
        guard saved.mapCache.count <= V.maxStaticEntries else { throw .invalidParams("more than \(V.maxStaticEntries) static map-cache entries") }
        for params in saved.mapServers {
            let server = try V.mapServer(params)
            guard !configuration.mapServers.contains(where: { $0.address == server.address }) else {
                throw .alreadyExists("map-server \(server.address) is already configured")
            }
            configuration.mapServers.append(server)
        }
        for text in saved.mapResolvers {
            let resolver = try V.address(text, what: "map-resolver")
            guard !configuration.mapResolvers.contains(resolver) else {
                throw .alreadyExists("map-resolver \(resolver) is already configured")
            }
            configuration.mapResolvers.append(resolver)
        }
        var seen = Set<VSwiftMapCache.EIDPrefix>()
        for params in saved.localEIDs {
            let prefix = try V.prefix(params)
            guard seen.insert(prefix).inserted else { throw .alreadyExists("\(V.text(prefix)) is already a local EID") }
            configuration.localEIDs.append(LocalEIDConfiguration(prefix: prefix, rlocs: try V.rlocs(params.rlocs ?? [], max: V.maxLocalRLOCs, of: prefix)))
        }
        seen.removeAll()
        for params in saved.mapCache {
            let prefix = try V.prefix(params)
            guard seen.insert(prefix).inserted else { throw .alreadyExists("\(V.text(prefix)) is already in the static map-cache") }
            let rlocs = try V.rlocs(params.rlocs ?? [], max: V.maxStaticRLOCs, of: prefix)
            guard !rlocs.isEmpty else { throw .invalidParams("a static map-cache entry needs at least one RLOC") }
            staticEntries.append(StaticMapping(prefix: prefix, locators: rlocs.map { Locator(address: $0.address, priority: $0.priority, weight: $0.weight) }))
        }
    }

    init() {}
}

/// A static map-cache entry (add-map-cache): never expires (RFC 9301 lets an ITR be configured so).
struct StaticMapping: Equatable, Sendable {
    var prefix: VSwiftMapCache.EIDPrefix
    var locators: [Locator]
}
