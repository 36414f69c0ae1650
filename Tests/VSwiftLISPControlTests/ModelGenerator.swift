import VSwiftLISPControl
import VSwiftPacket
import VSwiftTesting

/// Random but valid control messages (within the encoder's limits), from a seeded generator.
struct ModelGenerator {
    var random: SplitMix64

    init(seed: UInt64) { random = SplitMix64(seed: seed) }

    mutating func below(_ n: Int) -> Int { Int(random.next() % UInt64(n)) }
    mutating func bool() -> Bool { random.next() & 1 == 1 }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: random.next()) }

    mutating func ip(v6: Bool) -> LISPAddress {
        v6 ? .ipv6(IPAddress(high: random.next(), low: random.next())) : .ipv4(UInt32(truncatingIfNeeded: random.next()))
    }

    /// A plain address, an instance-id one, or (as locators may be) an unknown LCAF.
    mutating func address(unknownLCAF: Bool = true) -> LISPAddress {
        switch below(unknownLCAF ? 6 : 5) {
        case 0: return ip(v6: false)
        case 1: return ip(v6: true)
        case 2: return .instanceID(UInt32(truncatingIfNeeded: random.next()), maskLength: below(4) == 0 ? byte() : 0,
                                   address: below(8) == 0 ? .none : ip(v6: bool()))
        case 3: return .none
        case 4: return .instanceID(UInt32(below(1 << 24)), maskLength: 0, address: ip(v6: bool()))
        default:
            var type = byte()
            if type == LCAFType.instanceID { type = 1 }
            return .unknownLCAF(type: type, flags: byte(), reserved2: byte(), body: random.bytes(below(20)))
        }
    }

    mutating func eid() -> EIDPrefix {
        let address = address(unknownLCAF: below(10) == 0)
        let max = Int(address.maxMaskLength ?? 255)
        return EIDPrefix(address, maskLength: UInt8(below(max + 1)))
    }

    mutating func locator() -> LocatorRecord {
        LocatorRecord(address: address(), priority: byte(), weight: byte(), multicastPriority: byte(),
                      multicastWeight: byte(), local: bool(), probed: bool(), reachable: bool())
    }

    mutating func record() -> MappingRecord {
        let count = below(4) == 0 ? 0 : below(5)
        var locators: [LocatorRecord] = []
        for _ in 0..<count { locators.append(locator()) }
        return MappingRecord(eid: eid(), ttl: UInt32(truncatingIfNeeded: random.next()),
                             action: MapReplyAction(rawValue: UInt8(below(8))), authoritative: bool(),
                             mapVersion: UInt16(below(4096)), locators: locators)
    }

    mutating func records(max: Int = 4) -> [MappingRecord] {
        var out: [MappingRecord] = []
        for _ in 0..<below(max + 1) { out.append(record()) }
        return out
    }

    mutating func identity() -> XTRIdentity? {
        bool() ? XTRIdentity(xtrIDHigh: random.next(), xtrIDLow: random.next(), siteID: random.next()) : nil
    }

    mutating func mapRequest() -> MapRequest {
        var rlocs: [LISPAddress] = []
        for _ in 0...below(3) { rlocs.append(ip(v6: bool())) }
        var eids: [EIDPrefix] = []
        for _ in 0...below(2) { eids.append(eid()) }
        return MapRequest(nonce: random.next(), sourceEID: address(unknownLCAF: false), itrRLOCs: rlocs, records: eids,
                          authoritative: bool(), probe: bool(), solicitMapRequest: bool(), pitr: bool(),
                          smrInvoked: bool(), localXTR: bool(), dontMapReply: bool(),
                          mapReplyRecord: bool() ? record() : nil)
    }

    mutating func message(encapsulate: Bool = true) -> ControlMessage {
        switch below(encapsulate ? 6 : 5) {
        case 0: return .mapRequest(mapRequest())
        case 1: return .mapReply(MapReply(nonce: random.next(), records: records(), probe: bool(),
                                          echoNonceCapable: bool(), security: bool()))
        case 2:
            return .mapRegister(MapRegister(nonce: random.next(), records: records(), keyID: UInt16(below(3)),
                                            authenticationData: random.bytes(below(33)), proxyMapReply: bool(),
                                            securityCapable: bool(), rBit: bool(), wantMapNotify: bool(),
                                            xtrIdentity: identity()))
        case 3, 4:
            let notify = MapNotify(nonce: random.next(), records: records(), keyID: UInt16(below(3)),
                                   authenticationData: random.bytes(below(33)), xtrIdentity: identity())
            return bool() ? .mapNotify(notify) : .mapNotifyAck(notify)
        default:
            let v6 = bool()
            return .encapsulated(EncapsulatedControlMessage(
                message: below(4) == 0 ? message(encapsulate: false) : .mapRequest(mapRequest()),
                innerSource: ip(v6: v6), innerDestination: ip(v6: v6), sourcePort: UInt16(truncatingIfNeeded: random.next()),
                hopLimit: byte(), security: bool(), ddt: bool(), toETR: bool(), toMapServer: bool()))
        }
    }
}
