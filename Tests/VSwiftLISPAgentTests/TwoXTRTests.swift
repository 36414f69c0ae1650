import Testing
import VSwiftLISPAgent
import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket

/// A tiny map-server and map-resolver in one, built from the codec (RFC 9301 §5.6–5.8, §8): it
/// verifies Map-Registers, acknowledges them with Map-Notify, and forwards Encapsulated
/// Map-Requests to the registered ETR's first RLOC (no proxy replies), which answers the ITR.
struct TinyMappingSystem {
    let address: IPAddress
    let key: AuthenticationKey
    var registrations: [(prefix: CacheEID, record: MappingRecord)] = []
    var refusedRegisters = 0

    mutating func receive(_ bytes: [UInt8], from source: IPAddress) throws -> [(IPAddress, UInt16, [UInt8])] {
        switch try ControlMessage.decode(bytes) {
        case .mapRegister(let register):
            guard (try? ControlAuthentication.verify(bytes, key: key)) != nil else {
                refusedRegisters += 1
                return []
            }
            for record in register.records {
                let prefix = CacheEID(instanceID: record.eid.address.instanceID ?? 0,
                                      address: record.eid.address.plain.ipAddress!, length: Int(record.eid.maskLength))!
                registrations.removeAll { $0.prefix == prefix }
                registrations.append((prefix, record))
            }
            let notify = try MapNotify(nonce: register.nonce, records: register.records).encoded(authenticatingWith: key)
            return [(source, 4342, notify)]
        case .encapsulated(let ecm):
            guard let request = ecm.mapRequest, let asked = request.records.first,
                  let eid = asked.address.plain.ipAddress else { return [] }
            let iid = asked.address.instanceID ?? 0
            let match = registrations.filter { $0.prefix.instanceID == iid && $0.prefix.contains(eid) }
                .max { $0.prefix.length < $1.prefix.length }
            guard let etr = match?.record.locators.first?.address.ipAddress else { return [] }
            // Forwarded to the ETR as it came (RFC 9301 §8.3: the Map-Server forwards the ECM).
            return [(etr, 4342, bytes)]
        default:
            return []
        }
    }
}

@Suite struct TwoXTRTests {
    @Test func twoSitesRegisterResolveEachOtherAndBothEIDsResolveInTheirSnapshots() throws {
        let ms = IPAddress("192.0.2.1")!
        var system = TinyMappingSystem(address: ms, key: World.key)
        let rloc = [IPAddress("198.51.100.1")!, IPAddress("198.51.100.2")!]
        let eids = ["10.1.0.0/16", "10.2.0.0/16"]
        let hosts = [IPAddress("10.1.0.5")!, IPAddress("10.2.0.9")!]
        var xtrs = [XTRControlPlane(mapCacheCapacity: 32, now: 0), XTRControlPlane(mapCacheCapacity: 32, now: 0)]
        var snapshots: [MapCacheSnapshot?] = [nil, nil]
        // In flight: (from, source port, to, bytes).
        var wire: [(IPAddress, UInt16, IPAddress, UInt16, [UInt8])] = []
        func send(_ from: IPAddress, _ datagrams: [OutgoingDatagram]) {
            for d in datagrams { wire.append((from, 4342, d.destination, d.destinationPort, d.bytes)) }
        }
        for i in 0..<2 {
            let config = LISPControlConfiguration(
                mapServers: [MapServerConfiguration(address: ms, key: World.key)], mapResolvers: [ms],
                localEIDs: [LocalEIDConfiguration(prefix: World.prefix(eids[i]), rlocs: [LocalRLOCConfiguration(address: rloc[i])])])
            send(rloc[i], xtrs[i].apply(config, localRLOCs: [rloc[i]], now: 0))
        }
        var now = 0.0
        var resolved = [false, false]
        for _ in 0..<200 where !(resolved[0] && resolved[1]) {
            now += 0.01
            // Deliver everything in flight.
            while !wire.isEmpty {
                let (from, sourcePort, to, _, bytes) = wire.removeFirst()
                if to == ms {
                    for (destination, port, answer) in try system.receive(bytes, from: from) {
                        wire.append((ms, 4342, destination, port, answer))
                    }
                } else if let i = rloc.firstIndex(of: to) {
                    send(rloc[i], xtrs[i].receive(bytes, from: from, sourcePort: sourcePort, now: now))
                }
            }
            for i in 0..<2 {
                send(rloc[i], xtrs[i].tick(now: now))
                if let snapshot = xtrs[i].takeSnapshotIfChanged(now: now) { snapshots[i] = snapshot }
                let other = hosts[1 - i]
                let resolution = snapshots[i]?.resolve(instanceID: World.iid, destination: other, flowHash: 7)
                if resolution?.action == .encapsulate {
                    #expect(resolution?.rloc == rloc[1 - i])
                    resolved[i] = true
                } else {
                    // What a worker does on a miss.
                    send(rloc[i], xtrs[i].handleMisses([MapCacheMiss(instanceID: World.iid, destination: other, source: hosts[i])], now: now))
                }
            }
        }
        #expect(resolved == [true, true])
        #expect(system.refusedRegisters == 0)
        for i in 0..<2 {
            let report = xtrs[i].report(now: now)
            #expect(report.registrations.map(\.state) == [.registered])
            #expect(report.mapCache.map(\.eidPrefix) == [eids[1 - i]])
            #expect(report.received["map-request"] == 1)
            #expect(report.received["map-reply"] == 1)
            #expect(report.refused.values.reduce(0, +) == report.refused["rate_limited"])
        }
    }
}
