import Testing
import VSwiftLISPAgent
import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket

@Suite struct ITRResolutionTests {
    static let hostA = IPAddress("10.1.0.5")!
    static let remote = IPAddress("10.2.0.9")!

    func itr(resolvers: [IPAddress] = [World.mapResolver]) -> XTRControlPlane {
        var plane = XTRControlPlane(mapCacheCapacity: 64, now: 0)
        // An ITR only: no map-server, so no Map-Registers among what the timers send.
        var config = World.site(eid: "10.1.0.0/16", rloc: World.rlocA, resolvers: resolvers)
        config.mapServers = []
        _ = plane.apply(config, localRLOCs: [World.rlocA], now: 0)
        return plane
    }

    func miss(_ destination: IPAddress = ITRResolutionTests.remote) -> MapCacheMiss {
        MapCacheMiss(instanceID: World.iid, destination: destination, source: Self.hostA)
    }

    /// Sends a miss and returns the Map-Request it caused.
    func ask(_ plane: inout XTRControlPlane, _ destination: IPAddress = ITRResolutionTests.remote, now: Double = 1) throws -> MapRequest {
        let out = plane.handleMisses([miss(destination)], now: now)
        return try World.encapsulatedRequest(try #require(out.first)).1
    }

    func replyBytes(_ nonce: UInt64, _ records: [MappingRecord]) throws -> [UInt8] {
        try ControlMessage.mapReply(MapReply(nonce: nonce, records: records)).encoded()
    }

    @Test func rfc9301_5_8_aMissSendsAnEncapsulatedMapRequestToTheMapResolver() throws {
        var plane = itr()
        let out = plane.handleMisses([miss()], now: 1)
        #expect(out.count == 1)
        let datagram = try #require(out.first)
        #expect(datagram.destination == World.mapResolver)
        #expect(datagram.destinationPort == 4342)
        let (ecm, request) = try World.encapsulatedRequest(datagram)
        // Inner IP: from the host that missed to the EID asked; inner UDP to 4342.
        #expect(ecm.innerSource == LISPAddress(Self.hostA))
        #expect(ecm.innerDestination == LISPAddress(Self.remote))
        #expect(ecm.sourcePort == 4342)
        #expect(request.sourceEID == .instanceID(World.iid, maskLength: 0, address: LISPAddress(Self.hostA)))
        #expect(request.itrRLOCs == [LISPAddress(World.rlocA)])
        #expect(request.records == [WireEID(instanceID: World.iid, Self.remote, maskLength: 32)])
        #expect(!request.smrInvoked && !request.probe && !request.solicitMapRequest)
        #expect(plane.report(now: 1).sent["map-request"] == 1)
        // Nonces are fresh per request.
        let other = try ask(&plane, IPAddress("10.3.0.1")!)
        #expect(other.nonce != request.nonce)
    }

    @Test func rfc9301_5_8_anIPv6MissOverIPv4RLOCsAsksForThe128InAnIPv6InnerHeader() throws {
        var plane = itr()
        let source = IPAddress("2001:db8:1::5")!
        let destination = IPAddress("2001:db8:2::9")!
        let out = plane.handleMisses([MapCacheMiss(instanceID: World.iid, destination: destination, source: source)], now: 1)
        let (ecm, request) = try World.encapsulatedRequest(try #require(out.first))
        #expect(ecm.innerSource == LISPAddress(source))
        #expect(ecm.innerDestination == LISPAddress(destination))
        #expect(request.records == [WireEID(instanceID: World.iid, destination, maskLength: 128)])
        #expect(request.itrRLOCs == [LISPAddress(World.rlocA)])
        // The reply installs an IPv6 prefix with an IPv4 locator.
        let record = World.positiveRecord(World.prefix("2001:db8:2::/48"), rloc: World.rlocB)
        let result = plane.receive(try ControlMessage.mapReply(MapReply(nonce: request.nonce, records: [record])).encoded(),
                                   from: World.mapResolver, sourcePort: 4342, now: 1.1)
        #expect(result.isEmpty)
        let taken = plane.takeSnapshotIfChanged(now: 1.1)
        let snapshot = try #require(taken)
        #expect(snapshot.resolve(instanceID: World.iid, destination: destination, flowHash: 3).rloc == World.rlocB)
    }

    @Test func rfc9301_5_3_aSecondMissWithinASecondSendsNothing() throws {
        var plane = itr()
        _ = try ask(&plane)
        let result23 = plane.handleMisses([miss(), miss()], now: 1.5)
        #expect(result23.isEmpty)
        #expect(plane.report(now: 1.5).refused["rate_limited"] == 2)
    }

    @Test func rfc9301_5_4_aReplyWithTheRightNonceInstallsAndASnapshotResolvesTheEID() throws {
        var plane = itr()
        let request = try ask(&plane)
        let result24 = plane.takeSnapshotIfChanged(now: 1)
        #expect(result24 == nil)
        let record = World.positiveRecord(World.prefix("10.2.0.0/16"), rloc: World.rlocB, ttl: 5)
        let result25 = plane.receive(try replyBytes(request.nonce, [record]), from: World.mapResolver, sourcePort: 4342, now: 1.2)
        #expect(result25.isEmpty)
        let result26 = plane.takeSnapshotIfChanged(now: 1.2)
        let snapshot = try #require(result26)
        let resolution = snapshot.resolve(instanceID: World.iid, destination: Self.remote, flowHash: 1)
        #expect(resolution.action == .encapsulate)
        #expect(resolution.rloc == World.rlocB)
        let entry = try #require(plane.report(now: 2).mapCache.first)
        #expect(entry.eidPrefix == "10.2.0.0/16")
        #expect(entry.source == "map-reply")
        #expect(entry.ttlLeft == 299)
        #expect(plane.report(now: 2).received["map-reply"] == 1)
        // The same reply again: its nonce is spent.
        _ = plane.receive(try replyBytes(request.nonce, [record]), from: World.mapResolver, sourcePort: 4342, now: 1.3)
        #expect(plane.report(now: 2).refused["unsolicited"] == 1)
        // Answered: the next miss (after the entry is gone) is not held back by the limiter.
    }

    @Test func rfc9301_5_3_aReplyWithAnUnknownNonceChangesNothing() throws {
        var plane = itr()
        let request = try ask(&plane)
        let record = World.positiveRecord(World.prefix("10.2.0.0/16"), rloc: World.rlocB)
        _ = plane.receive(try replyBytes(request.nonce &+ 1, [record]), from: World.mapResolver, sourcePort: 4342, now: 1.1)
        _ = plane.receive(try replyBytes(42, [World.positiveRecord(World.prefix("0.0.0.0/0"), rloc: World.rlocB)]),
                          from: World.mapResolver, sourcePort: 4342, now: 1.1)
        #expect(plane.report(now: 2).mapCache.isEmpty)
        #expect(plane.report(now: 2).refused["unsolicited"] == 2)
        let result27 = plane.takeSnapshotIfChanged(now: 2)
        #expect(result27 == nil)
    }

    @Test func rfc9301_5_4_aNegativeReplyInstallsItsAction() throws {
        var plane = itr()
        let request = try ask(&plane)
        let negative = MappingRecord.negative(eid: World.wire(World.prefix("10.2.0.0/16")), ttl: 1, action: .nativelyForward)
        _ = plane.receive(try replyBytes(request.nonce, [negative]), from: World.mapResolver, sourcePort: 4342, now: 1.1)
        let result28 = plane.takeSnapshotIfChanged(now: 1.1)
        let snapshot = try #require(result28)
        #expect(snapshot.resolve(instanceID: World.iid, destination: Self.remote, flowHash: 0).action == .nativelyForward)
        #expect(plane.report(now: 2).mapCache.first?.action == "natively-forward")
    }

    @Test func rfc9301_5_5_recordsNeitherCoveringTheEIDAskedNorInsideACoveringOneAreRefused() throws {
        var plane = itr()
        let request = try ask(&plane)
        let records = [
            World.positiveRecord(World.prefix("10.9.0.0/16"), rloc: World.rlocB),              // elsewhere
            World.positiveRecord(World.prefix("10.2.0.0/16", iid: 5), rloc: World.rlocB),      // other instance
            World.positiveRecord(World.prefix("10.2.0.0/16"), rloc: World.rlocB),              // covers: installed
            World.positiveRecord(World.prefix("10.2.5.0/24"), rloc: World.rlocA),              // inside it: installed (§5.5)
        ]
        _ = plane.receive(try replyBytes(request.nonce, records), from: World.mapResolver, sourcePort: 4342, now: 1.1)
        #expect(plane.report(now: 2).mapCache.map(\.eidPrefix) == ["10.2.0.0/16", "10.2.5.0/24"])
        #expect(plane.report(now: 2).refused["eid_not_requested"] == 2)
    }

    @Test func rfc9301_5_4_entriesExpireAtTheirTTLAndUsedOnesAreRefreshedBeforeIt() throws {
        var plane = itr()
        let request = try ask(&plane)
        let used = World.positiveRecord(World.prefix("10.2.0.0/16"), rloc: World.rlocB, ttl: 2)
        _ = plane.receive(try replyBytes(request.nonce, [used]), from: World.mapResolver, sourcePort: 4342, now: 1)
        let other = try ask(&plane, IPAddress("10.3.0.1")!, now: 1)
        let unused = World.positiveRecord(World.prefix("10.3.0.0/16"), rloc: World.rlocB, ttl: 2)
        _ = plane.receive(try replyBytes(other.nonce, [unused]), from: World.mapResolver, sourcePort: 4342, now: 1)
        let result29 = plane.takeSnapshotIfChanged(now: 1)
        let snapshot = try #require(result29)
        // Both expire at 121 s; a worker keeps using 10.2/16.
        var refreshes: [MapRequest] = []
        var t = 1.0
        while t < 121 {
            t += 0.5
            _ = snapshot.resolve(instanceID: World.iid, destination: Self.remote, flowHash: 0)
            for d in plane.tick(now: t) { refreshes.append(try World.encapsulatedRequest(d).1) }
        }
        // Refreshed (asking the cached prefix, no source EID) within the last minute, not before.
        #expect(!refreshes.isEmpty)
        #expect(refreshes.allSatisfy { $0.records == [World.wire(World.prefix("10.2.0.0/16"))] && $0.sourceEID == .none })
        // Nobody answers: both are gone at the end of their TTL.
        _ = plane.tick(now: 121.5)
        #expect(plane.report(now: 121.5).mapCache.isEmpty)
        // A refresh answered in time keeps the entry with a new TTL.
        var plane2 = itr()
        let r2 = try ask(&plane2)
        _ = plane2.receive(try replyBytes(r2.nonce, [used]), from: World.mapResolver, sourcePort: 4342, now: 1)
        let result30 = plane2.takeSnapshotIfChanged(now: 1)
        let snap2 = try #require(result30)
        var answered = 0
        t = 1
        while t < 200 {
            t += 0.5
            _ = snap2.resolve(instanceID: World.iid, destination: Self.remote, flowHash: 0)
            for d in plane2.tick(now: t) {
                let refresh = try World.encapsulatedRequest(d).1
                _ = plane2.receive(try replyBytes(refresh.nonce, [used]), from: World.mapResolver, sourcePort: 4342, now: t)
                answered += 1
            }
        }
        #expect(answered >= 2)
        #expect(plane2.report(now: 200).mapCache.map(\.eidPrefix) == ["10.2.0.0/16"])
    }

    @Test func rfc9301_5_3_unansweredRequestsAreRetriedThenFailOverToTheNextMapResolverThenGiveUp() throws {
        var plane = itr(resolvers: [World.mapResolver, World.secondResolver])
        let first = plane.handleMisses([miss()], now: 1)
        var sends: [(Double, IPAddress, UInt64)] = try first.map { (1, $0.destination, try World.encapsulatedRequest($0).1.nonce) }
        var t = 1.0
        while t < 10 {
            t += 0.25
            for d in plane.tick(now: t) { sends.append((t, d.destination, try World.encapsulatedRequest(d).1.nonce)) }
        }
        #expect(sends.map(\.0) == [1, 2, 3, 4])
        #expect(sends.map(\.1) == [World.mapResolver, World.mapResolver, World.secondResolver, World.secondResolver])
        // One nonce throughout, so a late reply to the first attempt still counts.
        #expect(Set(sends.map(\.2)).count == 1)
        #expect(plane.report(now: 10).refused["timeout"] == 1)
        let result31 = plane.tick(now: 20)
        #expect(result31.isEmpty)
        // A late reply after giving up is unsolicited.
        _ = plane.receive(try replyBytes(sends[0].2, [World.positiveRecord(World.prefix("10.2.0.0/16"), rloc: World.rlocB)]),
                          from: World.secondResolver, sourcePort: 4342, now: 10)
        #expect(plane.report(now: 10).mapCache.isEmpty)
    }

    @Test func rfc9301_5_3_afterTenRequestsThePrefixWaitsAndNoRetryStaysDue() throws {
        var plane = itr()
        var sent = 0
        var t = 1.0
        while t <= 40 {
            sent += plane.handleMisses([miss()], now: t).count
            sent += plane.tick(now: t).count
            // Nothing is left due in the past (the I/O loop would spin).
            #expect(plane.nextDeadline > t)
            t += 0.5
        }
        // Ten (three requests of three attempts, and one more), then 30 s of nothing after the
        // tenth (sent at 11.5): its retry is dropped, new misses are held back.
        #expect(sent == 10)
        #expect(plane.report(now: t).refused["rate_limited"]! > 0)
    }

    @Test func rfc9301_6_1_smrForACachedEIDSendsAnSMRInvokedMapRequest() throws {
        var plane = itr()
        let request = try ask(&plane)
        _ = plane.receive(try replyBytes(request.nonce, [World.positiveRecord(World.prefix("10.2.0.0/16"), rloc: World.rlocB)]),
                          from: World.mapResolver, sourcePort: 4342, now: 1)
        _ = plane.takeSnapshotIfChanged(now: 1)
        // The remote ETR solicits: its EID (as source EID), our EID as the record.
        let smr = MapRequest(nonce: 99, sourceEID: .instanceID(World.iid, maskLength: 0, address: LISPAddress(Self.remote)),
                             itrRLOCs: [LISPAddress(World.rlocB)],
                             records: [WireEID(instanceID: World.iid, Self.hostA, maskLength: 32)], solicitMapRequest: true)
        let out = plane.receive(try ControlMessage.mapRequest(smr).encoded(), from: World.rlocB, sourcePort: 4342, now: 5)
        #expect(out.count == 1)
        let datagram = try #require(out.first)
        #expect(datagram.destination == World.mapResolver)
        let invoked = try World.encapsulatedRequest(datagram).1
        #expect(invoked.smrInvoked)
        #expect(invoked.records == [World.wire(World.prefix("10.2.0.0/16"))])
        #expect(plane.report(now: 5).received["smr"] == 1)
        // An SMR for an EID we have not cached asks nothing.
        var unknown = smr
        unknown.sourceEID = .instanceID(World.iid, maskLength: 0, address: LISPAddress(IPAddress("10.77.0.1")!))
        let result32 = plane.receive(try ControlMessage.mapRequest(unknown).encoded(), from: World.rlocB, sourcePort: 4342, now: 6)
        #expect(result32.isEmpty)
    }

    /// Asks about `destination` and answers with its /24 at site B.
    private func resolve(_ plane: inout XTRControlPlane, _ destination: IPAddress, now t: Double) throws {
        let request = try ask(&plane, destination, now: t)
        let prefix = CacheEID(instanceID: World.iid, address: destination, length: 24)!
        _ = plane.receive(try replyBytes(request.nonce, [World.positiveRecord(prefix, rloc: World.rlocB)]),
                          from: World.mapResolver, sourcePort: 4342, now: t)
    }

    @Test func snapshotsAreCoalescedToOnePer50Milliseconds() throws {
        var plane = itr()
        // Times on a binary grid (1/64 s apart), so the arithmetic is exact.
        var t = 1.0
        var snapshots = 0
        for i in 0..<20 {
            try resolve(&plane, IPAddress(ipv4: 0x0a02_0000 | UInt32(i) << 8 | 1), now: t)
            if plane.takeSnapshotIfChanged(now: t) != nil { snapshots += 1 }
            t += 1.0 / 64
        }
        // At 1, 1 + 4/64, 1 + 8/64, 1 + 12/64, 1 + 16/64: 20 replies, 5 rebuilds.
        #expect(snapshots == 5)
        #expect(plane.nextDeadline <= t + 0.05)
        let result33 = plane.takeSnapshotIfChanged(now: t + 0.05)
        let last = try #require(result33)
        #expect(last.count == 20)
        let result34 = plane.takeSnapshotIfChanged(now: t + 1)
        #expect(result34 == nil)
    }

    /// A cheap rebuild (a small map-cache) lowers the spacing: a reply 1/64 s after the last
    /// snapshot is published at once, not 50 ms after it; an expensive one keeps at most one
    /// rebuild per 50 ms.
    @Test func snapshotSpacingFollowsTheRebuildCost() throws {
        var plane = itr()
        plane.adaptSnapshotSpacing(buildSeconds: 0.0001)
        #expect(plane.snapshotSpacing == 0.002)
        var t = 1.0
        var snapshots = 0
        for i in 0..<4 {
            try resolve(&plane, IPAddress(ipv4: 0x0a03_0000 | UInt32(i) << 8 | 1), now: t)
            if plane.takeSnapshotIfChanged(now: t) != nil { snapshots += 1 }
            t += 1.0 / 64
        }
        #expect(snapshots == 4)
        plane.adaptSnapshotSpacing(buildSeconds: 0.14)
        #expect(plane.snapshotSpacing == XTRControlPlane.snapshotInterval)
        plane.adaptSnapshotSpacing(buildSeconds: 0.005)
        #expect(plane.snapshotSpacing == 0.02)
    }

    @Test func staticEntriesAreInstalledAndNotReplacedByReplies() throws {
        var plane = itr()
        plane.installStatic(World.prefix("10.2.0.0/16"), locators: [Locator(address: World.rlocA6, priority: 1, weight: 1)], now: 0)
        let request = try ask(&plane)
        _ = plane.receive(try replyBytes(request.nonce, [World.positiveRecord(World.prefix("10.2.0.0/16"), rloc: World.rlocB)]),
                          from: World.mapResolver, sourcePort: 4342, now: 1)
        #expect(plane.report(now: 1).mapCache.map(\.source) == ["static"])
        let result35 = plane.removeStatic(World.prefix("10.2.0.0/16"), now: 2)
        #expect(result35)
        let result36 = plane.removeStatic(World.prefix("10.2.0.0/16"), now: 2)
        #expect(!result36)
    }
}
