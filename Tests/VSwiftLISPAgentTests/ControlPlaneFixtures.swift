import Testing
import VSwiftLISPAgent
import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket

typealias CacheEID = VSwiftMapCache.EIDPrefix
typealias WireEID = VSwiftLISPControl.EIDPrefix

/// Addresses and keys of the tests' small LISP world (documentation prefixes, RFC 5737/3849).
enum World {
    static let mapServer = IPAddress("192.0.2.1")!
    static let mapResolver = IPAddress("192.0.2.2")!
    static let secondResolver = IPAddress("192.0.2.3")!
    static let rlocA = IPAddress("198.51.100.1")!
    static let rlocB = IPAddress("198.51.100.2")!
    static let rlocA6 = IPAddress("2001:db8::a")!
    static let key = AuthenticationKey(algorithm: .hmacSHA256_128, password: "site-secret")
    static let iid: UInt32 = 1000

    static func prefix(_ text: String, iid: UInt32 = World.iid) -> CacheEID { CacheEID(instanceID: iid, text)! }
    static func ip(_ text: String) -> IPAddress { IPAddress(text)! }

    /// A site: `eid` registered with the map-server, RLOC `rloc`, asking `resolvers`.
    static func site(eid: String, rloc: IPAddress, resolvers: [IPAddress] = [World.mapResolver],
                     key: AuthenticationKey = World.key) -> LISPControlConfiguration {
        LISPControlConfiguration(
            mapServers: [MapServerConfiguration(address: World.mapServer, key: key)],
            mapResolvers: resolvers,
            localEIDs: [LocalEIDConfiguration(prefix: prefix(eid), rlocs: [LocalRLOCConfiguration(address: rloc, priority: 1, weight: 100)])])
    }

    static func decode(_ datagram: OutgoingDatagram) throws -> ControlMessage {
        try ControlMessage.decode(datagram.bytes)
    }

    static func register(_ datagram: OutgoingDatagram) throws -> MapRegister {
        guard case .mapRegister(let register) = try decode(datagram) else { throw TestFailure("not a Map-Register") }
        return register
    }

    static func reply(_ datagram: OutgoingDatagram) throws -> MapReply {
        guard case .mapReply(let reply) = try decode(datagram) else { throw TestFailure("not a Map-Reply") }
        return reply
    }

    /// The ECM and the Map-Request inside it.
    static func encapsulatedRequest(_ datagram: OutgoingDatagram) throws -> (EncapsulatedControlMessage, MapRequest) {
        guard case .encapsulated(let ecm) = try decode(datagram), let request = ecm.mapRequest else {
            throw TestFailure("not an ECM Map-Request")
        }
        return (ecm, request)
    }

    /// The Map-Notify a map-server acknowledging `register` sends (RFC 9301 §5.7).
    static func notify(acknowledging register: MapRegister, key: AuthenticationKey = World.key) throws -> [UInt8] {
        try MapNotify(nonce: register.nonce, records: register.records).encoded(authenticatingWith: key)
    }

    static func positiveRecord(_ eid: CacheEID, rloc: IPAddress, ttl: UInt32 = 10) -> MappingRecord {
        MappingRecord(eid: wire(eid), ttl: ttl, locators: [LocatorRecord(address: LISPAddress(rloc), priority: 1, weight: 100)])
    }

    static func wire(_ eid: CacheEID) -> WireEID {
        WireEID(instanceID: eid.instanceID == 0 ? nil : eid.instanceID, eid.address, maskLength: eid.length)
    }

    static func encoded(_ message: ControlMessage) throws -> [UInt8] { try message.encoded() }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
