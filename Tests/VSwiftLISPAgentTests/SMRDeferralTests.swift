import Testing
import VSwiftLISPAgent
import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket

/// RFC 9301 §6.1: an SMR means the mapping changed, so the SMR-invoked Map-Request it calls for is
/// deferred while a rate limit holds it back — §5.3's one Map-Request per EID-prefix per second,
/// §6.1's RECOMMENDED one SMR-invoked Map-Request per EID-prefix every 3 seconds — never dropped.
@Suite struct SMRDeferralTests {
    static let host = IPAddress("10.1.0.5")!
    static let remote = IPAddress("10.2.0.9")!
    static let movedRLOC = IPAddress("198.51.100.77")!
    static let remoteHost = World.prefix("10.2.0.9/32")

    /// An ITR that asked about `remote` at t = 1 and was answered at 1.1 with its /32 at rlocB:
    /// the cached prefix is the one asked, so the limiter's last request for it was at 1.
    func itrThatJustResolved() throws -> XTRControlPlane {
        var plane = XTRControlPlane(mapCacheCapacity: 64, now: 0)
        var config = World.site(eid: "10.1.0.0/16", rloc: World.rlocA)
        config.mapServers = []
        _ = plane.apply(config, localRLOCs: [World.rlocA], now: 0)
        let out = plane.handleMisses([MapCacheMiss(instanceID: World.iid, destination: Self.remote, source: Self.host)], now: 1)
        let request = try World.encapsulatedRequest(try #require(out.first)).1
        _ = plane.receive(try reply(request.nonce, rloc: World.rlocB), from: World.mapResolver, sourcePort: 4342, now: 1.1)
        _ = plane.takeSnapshotIfChanged(now: 1.1)
        return plane
    }

    func reply(_ nonce: UInt64, rloc: IPAddress) throws -> [UInt8] {
        try ControlMessage.mapReply(MapReply(nonce: nonce, records: [World.positiveRecord(Self.remoteHost, rloc: rloc)])).encoded()
    }

    /// The remote ETR's SMR: its EID as source EID, our EID as the record (OpenOverlayRouter's layout).
    func smr() throws -> [UInt8] {
        try ControlMessage.mapRequest(MapRequest(
            nonce: 99, sourceEID: .instanceID(World.iid, maskLength: 0, address: LISPAddress(Self.remote)),
            itrRLOCs: [LISPAddress(Self.movedRLOC)], records: [WireEID(instanceID: World.iid, Self.host, maskLength: 32)],
            solicitMapRequest: true, dontMapReply: true)).encoded()
    }

    /// Ticks from `from` to `to` in steps of 10 ms, returning the SMR-invoked Map-Requests (first
    /// attempts: retries keep their nonce) and when.
    func run(_ plane: inout XTRControlPlane, from: Double, to: Double) throws -> [(Double, MapRequest)] {
        var sent: [(Double, MapRequest)] = []
        var t = from
        while t <= to {
            for datagram in plane.tick(now: t) {
                let request = try World.encapsulatedRequest(datagram).1
                if request.smrInvoked && !sent.contains(where: { $0.1.nonce == request.nonce }) { sent.append((t, request)) }
            }
            t += 0.01
        }
        return sent
    }

    @Test func rfc9301_6_1_anSMRWithinASecondOfTheAnswerIsSentWhenTheLimiterAllowsAndInstallsTheNewMapping() throws {
        var plane = try itrThatJustResolved()
        // 0.3 s after the answer: §5.3's limit (the Map-Request at t = 1) holds it back until t = 2.
        #expect(plane.receive(try smr(), from: Self.movedRLOC, sourcePort: 4342, now: 1.4).isEmpty)
        #expect(plane.report(now: 1.4).received["smr"] == 1)
        #expect(plane.report(now: 1.4).refused["rate_limited"] == 0)
        #expect(plane.nextDeadline <= 2.01)
        let sent = try run(&plane, from: 1.4, to: 2.5)
        #expect(sent.count == 1)
        let (at, invoked) = try #require(sent.first)
        #expect(at >= 2 && at < 2.02, "sent at \(at)")
        #expect(invoked.records == [World.wire(Self.remoteHost)])
        // The mapping system answers with the new RLOC: installed and published.
        _ = plane.receive(try reply(invoked.nonce, rloc: Self.movedRLOC), from: World.mapResolver, sourcePort: 4342, now: at + 0.05)
        let published = plane.takeSnapshotIfChanged(now: at + 0.05)
        let snapshot = try #require(published)
        #expect(snapshot.resolve(instanceID: World.iid, destination: Self.remote, flowHash: 1).rloc == Self.movedRLOC)
    }

    @Test func rfc9301_6_1_smrsForOnePrefixLeaveOneDeferredRequestAndItsThreeSecondSpacing() throws {
        var plane = try itrThatJustResolved()
        // The first SMR after the limiter's second: sent at once.
        let first = plane.receive(try smr(), from: Self.movedRLOC, sourcePort: 4342, now: 2.5)
        #expect(first.count == 1)
        let firstRequest = try World.encapsulatedRequest(try #require(first.first)).1
        #expect(firstRequest.smrInvoked)
        // Answered (with the old RLOC: the map-server had not heard of the move yet).
        _ = plane.receive(try reply(firstRequest.nonce, rloc: World.rlocB), from: World.mapResolver, sourcePort: 4342, now: 2.6)
        // Five more SMRs within the next second: one deferred Map-Request, 3 s after the first
        // (§6.1's RECOMMENDED spacing for the SMR responder).
        for t in [2.7, 2.9, 3.1, 3.3, 3.5] {
            #expect(plane.receive(try smr(), from: Self.movedRLOC, sourcePort: 4342, now: t).isEmpty)
        }
        let sent = try run(&plane, from: 3.5, to: 8)
        #expect(sent.count == 1)
        let at = try #require(sent.first?.0)
        #expect(at >= 5.5 && at < 5.52, "sent at \(at)")
        #expect(plane.report(now: 8).received["smr"] == 6)
        _ = plane.receive(try reply(try #require(sent.first?.1.nonce), rloc: Self.movedRLOC), from: World.mapResolver, sourcePort: 4342, now: 8)
        let published = plane.takeSnapshotIfChanged(now: 8)
        let snapshot = try #require(published)
        #expect(snapshot.resolve(instanceID: World.iid, destination: Self.remote, flowHash: 1).rloc == Self.movedRLOC)
    }

    /// A flood of SMRs naming many cached prefixes: the deferred set stays bounded.
    @Test func deferredSMRsAreBounded() throws {
        var plane = XTRControlPlane(mapCacheCapacity: 4096, now: 0)
        var config = World.site(eid: "10.1.0.0/16", rloc: World.rlocA)
        config.mapServers = []
        _ = plane.apply(config, localRLOCs: [World.rlocA], now: 0)
        // 2,000 cached /32s, each asked and answered at t = 1.
        var hosts: [IPAddress] = []
        for i in 0..<2000 {
            let host = IPAddress(ipv4: 0x0a02_0000 | UInt32(i))
            hosts.append(host)
            let out = plane.handleMisses([MapCacheMiss(instanceID: World.iid, destination: host, source: Self.host)], now: 1)
            guard let datagram = out.first else { continue }
            let request = try World.encapsulatedRequest(datagram).1
            let prefix = World.prefix("\(host)/32")
            _ = plane.receive(try ControlMessage.mapReply(MapReply(nonce: request.nonce, records: [World.positiveRecord(prefix, rloc: World.rlocB)])).encoded(),
                              from: World.mapResolver, sourcePort: 4342, now: 1)
        }
        _ = plane.takeSnapshotIfChanged(now: 1)
        for host in hosts {
            let smr = try ControlMessage.mapRequest(MapRequest(
                nonce: 1, sourceEID: .instanceID(World.iid, maskLength: 0, address: LISPAddress(host)),
                itrRLOCs: [LISPAddress(World.rlocB)], records: [WireEID(instanceID: World.iid, Self.host, maskLength: 32)],
                solicitMapRequest: true)).encoded()
            #expect(plane.receive(smr, from: World.rlocB, sourcePort: 4342, now: 1.5).isEmpty)
        }
        #expect(plane.report(now: 1.5).refused["table_full"] ?? 0 >= 2000 - 1024)
        // The deferred ones go out when due, within the pending table's bound.
        let sent = try run(&plane, from: 1.5, to: 2.1)
        #expect(sent.count <= 1024 && sent.count > 0)
    }
}
