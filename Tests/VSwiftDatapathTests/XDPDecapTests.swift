import CXDP
import Glibc
import Testing
import VSwiftDatapath
import VSwiftPacket
import VSwiftTesting

/// LISP decapsulation in XDP (bpf/vswift_decap.h through the real redirect program in underlay
/// mode, BPF_PROG_RUN) against the worker's own steps: LISP.parseOuter, the trust boundary's
/// checks for a fixed-remote port (source RLOC, instance id), LISP.decapsulate (RFC 6040 §4.2
/// ECN, RFC 9300 §5.3 TTL) and then the cached entry's actions as HeaderRewrite does them. Every
/// frame either comes out byte for byte as the workers would send it, or stays untouched for the
/// AF_XDP path (here XDP_PASS: no socket in the XSKMAP, underlay mode's fallback).
@Suite(.serialized) struct XDPDecapTests {
    static let underlayInPort: UInt32 = 9
    /// The LISP port's XDP id (XDPFlowCacheTranslation.inPortID of slot 5).
    static let lispInPort: UInt32 = 0x8000_0005
    static let local4 = IPAddress(ipv4: 0xc000_0201), remote4 = IPAddress(ipv4: 0xc633_6402)
    static let stranger4 = IPAddress(ipv4: 0xc633_6403)
    static let local6 = IPAddress(high: 0x2001_0db8_0000_0001, low: 1)
    static let remote6 = IPAddress(high: 0x2001_0db8_0000_0002, low: 0xfedc_ba98_7654_3210)
    static let stranger6 = IPAddress(high: 0x2001_0db8_0000_0002, low: 0xfedc_ba98_7654_3211)
    static let instanceID: UInt32 = 0x12_3456
    /// BPF_PROG_RUN runs the program as if the frame arrived on the loopback device.
    static var ifindex: UInt32 { if_nametoindex("lo") }

    struct Fixture {
        let cache: XDPFlowCache
        let program: XDPFlowCacheProgram

        static func make() -> Fixture? {
            guard let path = BPFObjects.locate(BPFObjects.redirect) else {
                Issue.record("\(BPFObjects.redirect) not found: run scripts/build-bpf.sh and set VSWIFT_BPF_DIR")
                return nil
            }
            do {
                let cache = try XDPFlowCache(capacity: 1024, portSlots: 16)
                let program = try XDPFlowCacheProgram(objectPath: path, cache: cache, inPort: XDPDecapTests.underlayInPort)
                try program.setUnderlay(address: XDPDecapTests.local4)
                try program.setUnderlay(address: XDPDecapTests.local6)
                try cache.setPort(slot: 1, ifindex: UInt32(if_nametoindex("lo")))
                try cache.setDecapEntry(XDPDecapKey(ifindex: XDPDecapTests.ifindex, localRLOC: XDPDecapTests.local4,
                                                    remoteRLOC: XDPDecapTests.remote4, instanceID: XDPDecapTests.instanceID),
                                        inPort: XDPDecapTests.lispInPort, slot: 3)
                try cache.setDecapEntry(XDPDecapKey(ifindex: XDPDecapTests.ifindex, localRLOC: XDPDecapTests.local6,
                                                    remoteRLOC: XDPDecapTests.remote6, instanceID: XDPDecapTests.instanceID),
                                        inPort: XDPDecapTests.lispInPort, slot: 4)
                try cache.setEnabled(true)
                return Fixture(cache: cache, program: program)
            } catch {
                Issue.record("cannot set up the XDP flow cache: \(error)")
                return nil
            }
        }

        func run(_ frame: [UInt8]) throws -> XDPTestRun.Result {
            try XDPTestRun.run(programFD: program.programFD, frame: frame)
        }
    }

    /// `inner` (an Ethernet frame) encapsulated by LISP.encapsulate from `source` to `destination`,
    /// or nil when it is not IP.
    static func encapsulate(_ inner: [UInt8], source: IPAddress, destination: IPAddress, instanceID: UInt32,
                            fields: LISP.OuterFields = LISP.OuterFields()) -> [UInt8]? {
        let headroom = 128
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: headroom + inner.count, alignment: 8)
        defer { buffer.deallocate() }
        inner.withUnsafeBytes { buffer.advanced(by: headroom).copyMemory(from: $0.baseAddress!, byteCount: inner.count) }
        var p = buffer.advanced(by: headroom)
        var length = inner.count
        let parameters = LISP.EncapsulationParameters(ethernetDestination: 0x0200_0000_00aa, ethernetSource: 0x0200_0000_00bb,
                                                      source: source, destination: destination)
        guard LISP.encapsulate(&p, length: &length, headroom: headroom, instanceID: instanceID, parameters: parameters,
                               fields: fields, ipIdentification: 0x4321) == .done else { return nil }
        return Array(UnsafeRawBufferPointer(start: p, count: length))
    }

    /// Sets the outer header's ECN field (and, for IPv4, fixes its header checksum): neither is in
    /// the UDP pseudo-header.
    static func setOuterECN(_ frame: inout [UInt8], _ ecn: UInt8) {
        if frame[12] == 0x08 {
            frame[15] = frame[15] & 0xfc | ecn
            Ref.put16(&frame, 24, 0)
            Ref.put16(&frame, 24, Ref.checksum(Array(frame[14..<34])))
        } else {
            frame[15] = frame[15] & 0xcf | ecn << 4
        }
    }

    /// What the worker does with `frame` arriving on the underlay (at a fixed-remote port for
    /// `remote` and `instanceID`): nil when it does not decapsulate it, else the inner frame and
    /// its flow key (in_port = the LISP port, tunnel metadata from the outer headers).
    static func worker(_ frame: [UInt8], remote: IPAddress, instanceID: UInt32) -> (frame: [UInt8], key: FlowKey)? {
        decapsulate(frame, check: { $0.source == remote && ($0.hasInstanceID ? $0.instanceID : 0) == instanceID })
    }

    static func decapsulate(_ frame: [UInt8], check: (LISP.OuterHeaders) -> Bool) -> (frame: [UInt8], key: FlowKey)? {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: frame.count, alignment: 8)
        defer { buffer.deallocate() }
        frame.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: frame.count) }
        var outer = LISP.OuterHeaders()
        guard LISP.parseOuter(buffer, length: frame.count, udpPort: 4341, into: &outer) == .lisp, check(outer) else { return nil }
        var start = buffer
        var length = frame.count
        guard LISP.decapsulate(&start, length: &length, outer: &outer) == .done else { return nil }
        var key = FlowKey()
        let instanceID = outer.hasInstanceID ? outer.instanceID : 0
        FlowExtractor.extract(start, length: length, inPort: lispInPort, tunnelID: UInt64(instanceID),
                              tunnelSource: outer.source.isIPv4 ? outer.source.ipv4 : 0,
                              tunnelDestination: outer.destination.isIPv4 ? outer.destination.ipv4 : 0, into: &key)
        return (Array(UnsafeRawBufferPointer(start: start, count: length)), key)
    }

    /// Random inner frames (valid and malformed, from RandomFrames) over IPv4 and IPv6 outer
    /// headers, from the remote RLOC or a stranger, with the port's instance id or another, outer
    /// ECN and TTL of every kind (CE over Not-ECT, TTL 0 and 1 included), under random action
    /// lists: the result is the workers' decapsulation then HeaderRewrite byte for byte, or the
    /// frame untouched, and never a decapsulation the worker would refuse.
    @Test func randomOuterAndInnerFramesMatchTheWorkerByteForByte() throws {
        guard let f = Fixture.make() else { return }
        let slot = try #require(try f.cache.addMask(XDPFlowCacheTests.exactMask))
        var rng = SplitMix64(seed: TestSeed.resolve(0x17d1))
        let replay = TestSeed.replay(rng.seed)
        var executed = 0, executed6 = 0, untouched = 0, refused = 0, i = 0
        while i < 1200 {
            let inner = RandomFrames.next(&rng, minimumLength: 14)
            let six = rng.next() % 2 == 0
            let (local, remote, stranger) = six ? (Self.local6, Self.remote6, Self.stranger6) : (Self.local4, Self.remote4, Self.stranger4)
            let fromStranger = rng.next() % 8 == 0
            let wrongIID = rng.next() % 8 == 0
            let ttl: UInt8? = [nil, nil, 0, 1, 2, 64, 255][Int(rng.next() % 7)]
            guard var frame = Self.encapsulate(inner, source: fromStranger ? stranger : remote, destination: local,
                                               instanceID: wrongIID ? Self.instanceID ^ 1 : Self.instanceID,
                                               fields: LISP.OuterFields(ttl: ttl, tos: nil)) else { continue }
            i += 1
            if rng.next() % 2 == 0 { Self.setOuterECN(&frame, UInt8(rng.next() % 4)) }
            let actions = rng.next() % 3 == 0 ? [] : XDPFlowCacheTests.randomActions(&rng)
            // The entry the inner frame would hit, installed even when the worker refuses the
            // packet, so only the decap entry can keep XDP from unwrapping it.
            let any = Self.decapsulate(frame, check: { _ in true })
            var id: UInt32?
            if let any { id = try? f.cache.install(maskSlot: slot, key: any.key, actions: actions + [.output(slot: 1)]) }
            defer { if let id { f.cache.remove(id: id) } }
            let expected = Self.worker(frame, remote: remote, instanceID: Self.instanceID)
            let before = f.program.statistics()
            let result = try f.run(frame)
            let after = f.program.statistics()
            if expected == nil || any == nil { refused += 1 }
            guard let expected, after.hits > before.hits else {
                untouched += 1
                #expect(result.action == XDPTestRun.pass && result.frame == frame,
                        "\(replay) frame \(i): expected untouched (worker decapsulates: \(expected != nil))")
                continue
            }
            executed += 1
            if six { executed6 += 1 }
            #expect(result.action == XDPTestRun.redirect, "\(replay) frame \(i)")
            let out = XDPFlowCacheTests.workers(expected.frame, actions)
            if result.frame != out {
                Issue.record("\(replay) frame \(i) actions \(actions)\n in  \(frame)\n xdp \(result.frame)\n swift \(out)")
            }
        }
        #expect(executed > 400 && executed6 > 150, "\(replay): \(executed) executed, \(untouched) untouched, \(refused) refused")
        #expect(refused > 200, "\(replay): the worker refuses some (stranger, instance id, ECN, TTL, malformed inner)")
    }

    static let innerUDP = Build.ethernet(type: 0x0800, Build.ipv4(proto: 17, tos: 0x02, ttl: 30, Build.udp()))
    static let innerUDP6 = Build.ethernet(type: 0x86dd, Build.ipv6(next: 17, tc: 0x01, hopLimit: 30, Build.udp()))

    /// Installs the exact entry for `inner` arriving on the LISP port with the outer headers of `outer`.
    static func install(_ f: Fixture, outer: [UInt8], actions: [XDPFlowCacheAction] = [.output(slot: 1)]) throws -> UInt32 {
        let slot = try #require(try f.cache.addMask(XDPFlowCacheTests.exactMask))
        let decapsulated = try #require(Self.decapsulate(outer, check: { _ in true }))
        return try f.cache.install(maskSlot: slot, key: decapsulated.key, actions: actions)
    }

    @Test func hitDecapsulatesAndCountsOnTheEntryAndThePort() throws {
        guard let f = Fixture.make() else { return }
        let outer = try #require(Self.encapsulate(Self.innerUDP, source: Self.remote4, destination: Self.local4, instanceID: Self.instanceID))
        let id = try Self.install(f, outer: outer)
        let result = try f.run(outer)
        #expect(result.action == XDPTestRun.redirect)
        let expected = try #require(Self.worker(outer, remote: Self.remote4, instanceID: Self.instanceID))
        #expect(result.frame == expected.frame)
        #expect(Array(result.frame[0..<14]) == Ref.mac(0x0200_0000_0000) + Ref.mac(0x0200_0000_0000) + [0x08, 0x00])
        #expect(f.cache.counters(id: id).packets == 1 && f.cache.counters(id: id).bytes == UInt64(expected.frame.count))
        let decap = f.cache.decapCounters(slot: 3)
        #expect(decap.packets == 1 && decap.bytes == UInt64(expected.frame.count))
        #expect(f.program.statistics().hits == 1)
        // Removing the decap entry sends the same packet to the workers, untouched.
        f.cache.removeDecapEntry(XDPDecapKey(ifindex: Self.ifindex, localRLOC: Self.local4, remoteRLOC: Self.remote4,
                                             instanceID: Self.instanceID))
        let after = try f.run(outer)
        #expect(after.action == XDPTestRun.pass && after.frame == outer)
        #expect(f.program.statistics().misses == 1)
    }

    @Test func ipv6OuterWithItsChecksumDecapsulates() throws {
        guard let f = Fixture.make() else { return }
        let outer = try #require(Self.encapsulate(Self.innerUDP6, source: Self.remote6, destination: Self.local6, instanceID: Self.instanceID))
        #expect(Ref.u16(outer, 60) != 0, "LISP.encapsulate computes the UDP checksum over IPv6")
        _ = try Self.install(f, outer: outer)
        let result = try f.run(outer)
        #expect(result.action == XDPTestRun.redirect)
        #expect(result.frame == Self.worker(outer, remote: Self.remote6, instanceID: Self.instanceID)?.frame)
        // A wrong UDP checksum (the worker's parseOuter calls it malformed): untouched.
        var bad = outer
        bad[60] ^= 0x40
        let refused = try f.run(bad)
        #expect(refused.action == XDPTestRun.pass && refused.frame == bad)
        #expect(f.cache.decapCounters(slot: 4).packets == 1)
    }

    /// What the worker refuses or does not take as a fixed-remote port's packet stays untouched
    /// here, even though the inner frame's entry exists: each case alone.
    @Test func refusedAndPuntedCasesReachTheWorkersUnchanged() throws {
        guard let f = Fixture.make() else { return }
        let good = try #require(Self.encapsulate(Self.innerUDP, source: Self.remote4, destination: Self.local4, instanceID: Self.instanceID))
        _ = try Self.install(f, outer: good)
        var cases: [(String, [UInt8])] = []
        // Trust boundary: another source RLOC, another instance id, another local address.
        cases.append(("stranger RLOC", try #require(Self.encapsulate(Self.innerUDP, source: Self.stranger4, destination: Self.local4, instanceID: Self.instanceID))))
        cases.append(("instance id", try #require(Self.encapsulate(Self.innerUDP, source: Self.remote4, destination: Self.local4, instanceID: Self.instanceID ^ 0x10))))
        // RFC 6040 §4.2: CE over an inner Not-ECT packet is dropped by the worker (counted).
        let notECT = Build.ethernet(type: 0x0800, Build.ipv4(proto: 17, tos: 0x00, ttl: 30, Build.udp()))
        var ce = try #require(Self.encapsulate(notECT, source: Self.remote4, destination: Self.local4, instanceID: Self.instanceID))
        Self.setOuterECN(&ce, 3)
        _ = try Self.install(f, outer: { var c = ce; Self.setOuterECN(&c, 0); return c }())
        cases.append(("CE over Not-ECT", ce))
        // RFC 9300 §5.3: an outer TTL of 0 takes the inner one to 0.
        cases.append(("outer TTL 0", try #require(Self.encapsulate(Self.innerUDP, source: Self.remote4, destination: Self.local4,
                                                                   instanceID: Self.instanceID, fields: LISP.OuterFields(ttl: 0)))))
        // Outer IPv4 options (header checksum kept right): parseOuter would take it, XDP punts.
        var options = good
        options.insert(contentsOf: [1, 1, 1, 0], at: 34)
        options[14] = 0x46
        Ref.put16(&options, 16, Ref.u16(options, 16) + 4)
        Ref.put16(&options, 24, 0)
        Ref.put16(&options, 24, Ref.checksum(Array(options[14..<38])))
        cases.append(("outer IPv4 options", options))
        // An outer fragment, a wrong header checksum, KK bits, a truncated frame, a bad inner length.
        var fragment = good
        fragment[20] |= 0x20
        Ref.put16(&fragment, 24, 0)
        Ref.put16(&fragment, 24, Ref.checksum(Array(fragment[14..<34])))
        cases.append(("outer fragment", fragment))
        var checksum = good
        checksum[24] ^= 1
        cases.append(("outer header checksum", checksum))
        var kk = good
        kk[42] |= 0x01
        cases.append(("KK bits", kk))
        cases.append(("truncated", Array(good[..<(good.count - 3)])))
        var innerLength = good
        Ref.put16(&innerLength, 52, Ref.u16(innerLength, 52) + 1)
        cases.append(("inner length beyond the UDP payload", innerLength))
        // IPv6 outer with an extension header before UDP (parseOuter's notLISP; XDP never unwraps it).
        let v6 = try #require(Self.encapsulate(Self.innerUDP6, source: Self.remote6, destination: Self.local6, instanceID: Self.instanceID))
        _ = try Self.install(f, outer: v6)
        var ext = Array(v6[..<54]) + Build.ext(next: 17) + Array(v6[54...])
        ext[20] = 60
        Ref.put16(&ext, 18, Ref.u16(ext, 18) + 8)
        cases.append(("IPv6 destination options", ext))
        let slot = try #require(try f.cache.addMask(XDPFlowCacheTests.exactMask))
        for (name, frame) in cases {
            // The inner frame's entry, wherever the worker would have put it.
            if let any = Self.decapsulate(frame, check: { _ in true }) {
                _ = try? f.cache.install(maskSlot: slot, key: any.key, actions: [.output(slot: 1)])
            }
            let before = f.program.statistics()
            let result = try f.run(frame)
            #expect(result.frame == frame, "\(name): the frame is unchanged")
            #expect(f.program.statistics().hits == before.hits, "\(name): no hit")
        }
        #expect(f.cache.decapCounters(slot: 3).packets == 0)
        // And the good one is taken.
        #expect(try f.run(good).action == XDPTestRun.redirect)
    }

    /// The actions of a decapsulated hit that cannot be done exactly (dec_ttl reaching 0 after the
    /// outer TTL lowered the inner one) are punted with the outer frame restored byte for byte.
    @Test func puntAfterDecapsulationRestoresTheOuterFrame() throws {
        guard let f = Fixture.make() else { return }
        // Inner TTL 30, outer TTL 1: the worker's inner TTL becomes 1, and dec_ttl would expire it.
        let outer = try #require(Self.encapsulate(Self.innerUDP, source: Self.remote4, destination: Self.local4,
                                                  instanceID: Self.instanceID, fields: LISP.OuterFields(ttl: 1)))
        _ = try Self.install(f, outer: outer, actions: [.decrementTTL, .output(slot: 1)])
        let result = try f.run(outer)
        #expect(result.action == XDPTestRun.pass && result.frame == outer)
        #expect(f.program.statistics().punted == 1 && f.program.statistics().hits == 0)
        #expect(f.cache.decapCounters(slot: 3).packets == 0)
    }

    @Test func cacheOffLeavesEveryFrameToTheWorkers() throws {
        guard let f = Fixture.make() else { return }
        let outer = try #require(Self.encapsulate(Self.innerUDP, source: Self.remote4, destination: Self.local4, instanceID: Self.instanceID))
        _ = try Self.install(f, outer: outer)
        try f.cache.setEnabled(false)
        let result = try f.run(outer)
        #expect(result.action == XDPTestRun.pass && result.frame == outer)
        #expect(f.program.statistics() == .init())
    }

    /// The owner: one entry per fixed port whose route leaves by an underlay device, the worker's
    /// port (the first) for a shared key, none for a capturing port or a local_ip the route does
    /// not use; sync rewrites and deletes before it returns, and hands back the last counts.
    @Test func planAndSyncFollowTheConfiguration() throws {
        guard let f = Fixture.make() else { return }
        let key4 = XDPDecapKey(ifindex: Self.ifindex, localRLOC: Self.local4, remoteRLOC: Self.remote4, instanceID: Self.instanceID)
        f.cache.removeDecapEntry(key4)
        let egress = (localRLOC: Self.local4, ifindex: Self.ifindex)
        let a = XDPDecapEntries.Port(inPort: 0x8000_0005, remote: Self.remote4, key: Self.instanceID, egress: egress)
        let b = XDPDecapEntries.Port(inPort: 0x8000_0006, remote: Self.remote4, key: Self.instanceID, egress: egress)
        let otherLocal = XDPDecapEntries.Port(inPort: 0x8000_0007, remote: Self.stranger4, local: Self.local6, key: 1, egress: egress)
        let unresolved = XDPDecapEntries.Port(inPort: 0x8000_0008, remote: Self.stranger4, key: 2, egress: nil)
        #expect(XDPDecapEntries.plan([a, b, otherLocal, unresolved]) == [key4: 0x8000_0005])
        #expect(XDPDecapEntries.plan([b, a]) == [key4: 0x8000_0006])
        var capturing = a
        capturing.capturing = true
        #expect(XDPDecapEntries.plan([capturing, b]).isEmpty, "a capturing port's key is not handed to the next port")

        let owner = XDPDecapEntries(cache: f.cache)
        try owner.sync(XDPDecapEntries.plan([a]))
        let outer = try #require(Self.encapsulate(Self.innerUDP, source: Self.remote4, destination: Self.local4, instanceID: Self.instanceID))
        _ = try Self.install(f, outer: outer)
        #expect(try f.run(outer).action == XDPTestRun.redirect)
        #expect(owner.counters().first?.packets == 1)
        // The port goes (or its remote changes): the entry is gone when sync returns.
        let removed = try owner.sync(XDPDecapEntries.plan([]))
        #expect(removed.count == 1 && removed[0].packets == 1 && removed[0].inPort == 0x8000_0005)
        let after = try f.run(outer)
        #expect(after.action == XDPTestRun.pass && after.frame == outer)
        #expect(owner.installed.isEmpty)
    }
}
