import CXDP
import Glibc
import Testing
import VSwiftDatapath
import VSwiftPacket
import VSwiftTesting

/// The XDP flow cache (bpf/vswift_flowcache.h through the real redirect program, BPF_PROG_RUN
/// without live frames) against the workers' own header code: for every action, the frame the
/// cache sends out is byte for byte what HeaderRewrite makes of the same frame, and whatever the
/// cache cannot do exactly is left untouched for the workers (a "punt", counted).
@Suite(.serialized) struct XDPFlowCacheTests {
    static let inPort: UInt32 = 3

    struct Fixture {
        let cache: XDPFlowCache
        let program: XDPFlowCacheProgram

        static func make(capacity: Int = 1024) -> Fixture? {
            guard let path = BPFObjects.locate(BPFObjects.redirect) else {
                Issue.record("\(BPFObjects.redirect) not found: run scripts/build-bpf.sh and set VSWIFT_BPF_DIR")
                return nil
            }
            do {
                let cache = try XDPFlowCache(capacity: capacity, portSlots: 16)
                let program = try XDPFlowCacheProgram(objectPath: path, cache: cache, inPort: inPort)
                try cache.setPort(slot: 1, ifindex: UInt32(if_nametoindex("lo")))
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

    static func key(_ frame: [UInt8], inPort: UInt32 = inPort) -> FlowKey {
        var key = FlowKey()
        frame.withUnsafeBytes { FlowExtractor.extract($0.baseAddress!, length: $0.count, inPort: inPort, into: &key) }
        return key
    }

    static let ipIdentification: UInt16 = 0x1234
    static let lispTemplate = XDPFlowCache.LISPTemplate(
        ethernetDestination: 0x0200_0000_00aa, ethernetSource: 0x0200_0000_00bb, source: 0xc000_0201,
        destination: 0xc633_6402, instanceID: 0x12_3456, fields: LISP.OuterFields(ttl: nil, tos: nil))

    static var exactMask: FlowKey {
        var mask = FlowKey()
        for w in 0..<FlowKey.wordCount { mask[word: w] = .max }
        return mask
    }

    /// What the workers' HeaderRewrite makes of `frame` under `actions` (output/drop excluded).
    static func workers(_ frame: [UInt8], _ actions: [XDPFlowCacheAction]) -> [UInt8] {
        let headroom = 128
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: headroom + frame.count, alignment: 8)
        defer { buffer.deallocate() }
        frame.withUnsafeBytes { buffer.advanced(by: headroom).copyMemory(from: $0.baseAddress!, byteCount: frame.count) }
        var p = buffer.advanced(by: headroom)
        var length = frame.count
        for action in actions {
            switch action {
            case .setEthernetSource(let mac): _ = HeaderRewrite.setEthernetSource(p, length: length, mac)
            case .setEthernetDestination(let mac): _ = HeaderRewrite.setEthernetDestination(p, length: length, mac)
            case .setIPv4Source(let a): _ = HeaderRewrite.setIPv4Source(p, length: length, a)
            case .setIPv4Destination(let a): _ = HeaderRewrite.setIPv4Destination(p, length: length, a)
            case .setNetworkTOS(let tos): _ = HeaderRewrite.setNetworkTOS(p, length: length, tos)
            case .setECN(let ecn): _ = HeaderRewrite.setECN(p, length: length, ecn)
            case .setTTL(let ttl): _ = HeaderRewrite.setTTL(p, length: length, ttl)
            case .decrementTTL: _ = HeaderRewrite.decrementTTL(p, length: length)
            case .setTransportSource(let port): _ = HeaderRewrite.setTransportSource(p, length: length, port)
            case .setTransportDestination(let port): _ = HeaderRewrite.setTransportDestination(p, length: length, port)
            case .popVLAN: _ = HeaderRewrite.popVLAN(&p, length: &length)
            case .pushVLAN(let tpid):
                _ = HeaderRewrite.pushVLAN(&p, length: &length, headroom: p - buffer, tpid: tpid, tci: 0)
            case .lispEncapsulate:
                let t = lispTemplate
                let parameters = LISP.EncapsulationParameters(
                    ethernetDestination: t.ethernetDestination, ethernetSource: t.ethernetSource,
                    source: IPAddress(ipv4: t.source), destination: IPAddress(ipv4: t.destination),
                    udpDestinationPort: t.udpDestinationPort)
                let result = LISP.encapsulate(&p, length: &length, headroom: p - buffer, instanceID: t.instanceID,
                                              parameters: parameters, fields: t.fields, ipIdentification: ipIdentification)
                precondition(result == .done, "the cache encapsulated what LISP.encapsulate refuses: \(result)")
            case .output, .drop: break
            }
        }
        return Array(UnsafeRawBufferPointer(start: p, count: length))
    }

    @Test func cacheOffAndMissesGoToTheSocketPath() throws {
        guard let f = Fixture.make() else { return }
        let frame = Build.ipv4TCP()
        try f.cache.setEnabled(false)
        // No socket in the XSKMAP: the miss path's fallback (port mode) is XDP_DROP.
        #expect(try f.run(frame).action == XDPTestRun.drop)
        #expect(f.program.statistics() == .init())
        try f.cache.setEnabled(true)
        #expect(try f.run(frame).action == XDPTestRun.drop)
        #expect(f.program.statistics().misses == 1, "no mask: a miss without a lookup")
        _ = try f.cache.addMask(Self.exactMask)
        #expect(try f.run(frame).action == XDPTestRun.drop)
        #expect(f.program.statistics().misses == 2)
    }

    @Test func hitOutputsUnchangedAndCounts() throws {
        guard let f = Fixture.make() else { return }
        let frame = Build.ipv4UDP()
        var mask = FlowKey()
        mask.set(.inPort, 0xffff_ffff)
        mask.set(.dlDst, 0xffff_ffff_ffff)
        let slot = try #require(try f.cache.addMask(mask))
        let id = try f.cache.install(maskSlot: slot, key: Self.key(frame), actions: [.output(slot: 1)])
        let result = try f.run(frame)
        #expect(result.action == XDPTestRun.redirect)
        #expect(result.frame == frame)
        let counters = f.cache.counters(id: id)
        #expect(counters.packets == 1 && counters.bytes == UInt64(frame.count) && counters.lastUsedNanoseconds > 0)
        // Another input port does not match (in_port is in the key).
        let other = try XDPFlowCacheProgram(objectPath: f.program.object.path, cache: f.cache, inPort: 4)
        #expect(try XDPTestRun.run(programFD: other.programFD, frame: frame).action == XDPTestRun.drop)
        #expect(other.statistics().misses == 1)
        f.cache.resetCounters(id: id)
        #expect(f.cache.counters(id: id) == .init())
        f.cache.remove(id: id)
        #expect(try f.run(frame).action == XDPTestRun.drop)
        #expect(f.program.statistics().misses == 1 && f.program.statistics().hits == 1)
    }

    @Test func dropAndEmptyListsDrop() throws {
        guard let f = Fixture.make() else { return }
        let slot = try #require(try f.cache.addMask(Self.exactMask))
        let a = Build.ipv4TCP(), b = Build.ipv4UDP()
        _ = try f.cache.install(maskSlot: slot, key: Self.key(a), actions: [.drop])
        _ = try f.cache.install(maskSlot: slot, key: Self.key(b), actions: [])
        #expect(try f.run(a).action == XDPTestRun.drop)
        #expect(try f.run(b).action == XDPTestRun.drop)
        #expect(f.program.statistics().hits == 2)
    }

    @Test func secondMaskAndBoundsAndRefusals() throws {
        guard let f = Fixture.make(capacity: 3) else { return }
        var l2 = FlowKey()
        l2.set(.dlSrc, 0xffff_ffff_ffff)
        let first = try #require(try f.cache.addMask(l2))
        let second = try #require(try f.cache.addMask(Self.exactMask))
        #expect(try f.cache.addMask(l2) == first)
        let frame = Build.ipv4TCP()
        _ = try f.cache.install(maskSlot: second, key: Self.key(frame), actions: [.output(slot: 1)])
        #expect(try f.run(frame).action == XDPTestRun.redirect)
        #expect(throws: XDPFlowCache.InstallError.exists) {
            _ = try f.cache.install(maskSlot: second, key: Self.key(frame), actions: [.drop])
        }
        #expect(throws: XDPFlowCache.InstallError.unencodable) {
            _ = try f.cache.install(maskSlot: first, key: Self.key(frame), actions: [.drop, .popVLAN])
        }
        #expect(throws: XDPFlowCache.InstallError.unencodable) {
            _ = try f.cache.install(maskSlot: first, key: Self.key(frame), actions: Array(repeating: .popVLAN, count: 9))
        }
        #expect(throws: XDPFlowCache.InstallError.noSuchMask(7)) {
            _ = try f.cache.install(maskSlot: 7, key: Self.key(frame), actions: [.drop])
        }
        _ = try f.cache.install(maskSlot: first, key: Self.key(Build.ipv4UDP()), actions: [.drop])
        var k = Self.key(frame)
        k.set(.inPort, 9)
        _ = try f.cache.install(maskSlot: second, key: k, actions: [.drop])
        k.set(.inPort, 10)
        #expect(throws: XDPFlowCache.InstallError.full) {
            _ = try f.cache.install(maskSlot: second, key: k, actions: [.drop])
        }
        #expect(f.cache.refusedFull == 1 && f.cache.entryCount == 3)
        try f.cache.removeMask(slot: second)
        #expect(f.cache.entryCount == 1)
        #expect(try f.run(frame).action == XDPTestRun.drop, "its entries went with the mask")
    }

    static func randomActions(_ rng: inout SplitMix64) -> [XDPFlowCacheAction] {
        var actions: [XDPFlowCacheAction] = []
        for _ in 0..<Int(1 + rng.next() % 4) {
            let r = rng.next()
            switch r % 12 {
            case 0: actions.append(.setEthernetSource(rng.next() & 0xffff_ffff_ffff))
            case 1: actions.append(.setEthernetDestination(rng.next() & 0xffff_ffff_ffff))
            case 2: actions.append(.setIPv4Source(UInt32(truncatingIfNeeded: rng.next())))
            case 3: actions.append(.setIPv4Destination(UInt32(truncatingIfNeeded: rng.next())))
            case 4: actions.append(.setNetworkTOS(UInt8(truncatingIfNeeded: rng.next())))
            case 5: actions.append(.setECN(UInt8(truncatingIfNeeded: rng.next()) & 3))
            case 6: actions.append(.setTTL(UInt8(truncatingIfNeeded: rng.next())))
            case 7: actions.append(.decrementTTL)
            case 8: actions.append(.setTransportSource(UInt16(truncatingIfNeeded: rng.next())))
            case 9: actions.append(.setTransportDestination(UInt16(truncatingIfNeeded: rng.next())))
            case 10: actions.append(.popVLAN)
            default: actions.append(.pushVLAN(tpid: r & 0x100 == 0 ? 0x8100 : 0x88a8))
            }
        }
        return actions
    }

    /// Random frames (valid and malformed) under random action lists: the cache's output equals
    /// HeaderRewrite's byte for byte, or the frame was punted untouched to the workers.
    @Test func randomActionsMatchTheWorkersByteForByte() throws {
        guard let f = Fixture.make() else { return }
        let slot = try #require(try f.cache.addMask(Self.exactMask))
        var rng = SplitMix64(seed: TestSeed.resolve(0x17a2))
        let replay = TestSeed.replay(rng.seed)
        var punted: UInt64 = 0, executed = 0
        for i in 0..<800 {
            let frame = RandomFrames.next(&rng)
            let actions = Self.randomActions(&rng)
            let id = try f.cache.install(maskSlot: slot, key: Self.key(frame), actions: actions + [.output(slot: 1)])
            defer { f.cache.remove(id: id) }
            let before = f.program.statistics()
            let result = try f.run(frame)
            let after = f.program.statistics()
            if after.punted > before.punted {
                punted += 1
                #expect(result.action == XDPTestRun.drop && result.frame == frame, "\(replay) frame \(i)")
                continue
            }
            executed += 1
            #expect(after.hits == before.hits + 1, "\(replay) frame \(i)")
            #expect(result.action == XDPTestRun.redirect, "\(replay) frame \(i)")
            let expected = Self.workers(frame, actions)
            if result.frame != expected {
                Issue.record("\(replay) frame \(i) actions \(actions)\n in  \(frame)\n xdp \(result.frame)\n swift \(expected)")
            }
        }
        #expect(executed > 600, "\(replay): \(punted) punted")
    }

    /// The punts, one by one: each reaches the workers unchanged.
    @Test func puntedCasesReachTheWorkersUnchanged() throws {
        guard let f = Fixture.make() else { return }
        let slot = try #require(try f.cache.addMask(Self.exactMask))
        let sctp = Build.ethernet(type: 0x0800, Build.ipv4(proto: 132, Build.sctp()))
        let ttl1 = Build.ethernet(type: 0x0800, Build.ipv4(proto: 17, ttl: 1, Build.udp()))
        let threeTags = Build.ipv4TCP(tags: [(0x88a8, 1), (0x8100, 2), (0x8100, 3)])
        let twoTags = Build.ipv4TCP(tags: [(0x88a8, 1), (0x8100, 2)])
        let cases: [([UInt8], [XDPFlowCacheAction])] = [
            (sctp, [.setTransportSource(1)]), (ttl1, [.decrementTTL]), (ttl1, [.setTTL(9), .decrementTTL, .setTTL(1), .decrementTTL]),
            (threeTags, [.popVLAN]), (twoTags, [.pushVLAN(tpid: 0x8100)]),
        ]
        for (n, (frame, actions)) in cases.enumerated() {
            let id = try f.cache.install(maskSlot: slot, key: Self.key(frame), actions: actions + [.output(slot: 1)])
            let result = try f.run(frame)
            #expect(result.action == XDPTestRun.drop && result.frame == frame, "case \(n)")
            #expect(f.program.statistics().punted == UInt64(n + 1), "case \(n)")
            f.cache.remove(id: id)
        }
        // dec_ttl from 2 is done here.
        let ttl2 = Build.ethernet(type: 0x0800, Build.ipv4(proto: 17, ttl: 2, Build.udp()))
        _ = try f.cache.install(maskSlot: slot, key: Self.key(ttl2), actions: [.decrementTTL, .output(slot: 1)])
        let result = try f.run(ttl2)
        #expect(result.action == XDPTestRun.redirect && result.frame == Self.workers(ttl2, [.decrementTTL]))
    }
}

extension XDPFlowCacheTests {
    /// LISP encapsulation in XDP against LISP.encapsulate (RFC 9300 §5.1 headers; TTL/TOS by
    /// OuterFields, RFC 6040 §4.1 ECN copy): random IPv4/IPv6 inner packets (tagged, padded,
    /// fragmented, malformed), random rewrites before, inherited and fixed TTL/DSCP.
    @Test func lispEncapsulationMatchesTheWorkersByteForByte() throws {
        guard let f = Fixture.make() else { return }
        let slot = try #require(try f.cache.addMask(Self.exactMask))
        try f.program.setNextIPIdentification(Self.ipIdentification)
        try f.cache.setLISPTemplate(slot: 5, Self.lispTemplate)
        var fixed = Self.lispTemplate
        fixed.fields = LISP.OuterFields(ttl: 17, tos: 0xb8)
        fixed.udpDestinationPort = 4342
        try f.cache.setLISPTemplate(slot: 6, fixed)
        // IPv6 outer (RFC 9300 §5.1 over IPv6; UDP checksum computed, RFC 8200 §8.1): inherited and fixed.
        let six = Self.lispTemplate6
        var sixFixed = six
        sixFixed.fields = LISP.OuterFields(ttl: 5, tos: 0x20)
        try f.cache.setLISPTemplate(slot: 7, six)
        try f.cache.setLISPTemplate(slot: 8, sixFixed)
        let templates: [UInt32: XDPFlowCache.LISPTemplate] = [5: Self.lispTemplate, 6: fixed, 7: six, 8: sixFixed]
        var executed6 = 0
        var rng = SplitMix64(seed: TestSeed.resolve(0x17a3))
        let replay = TestSeed.replay(rng.seed)
        var executed = 0, punted = 0
        for i in 0..<800 {
            let frame = RandomFrames.next(&rng)
            let template = UInt32(5 + rng.next() % 4)
            let rewrites = rng.next() % 3 == 0 ? Self.randomActions(&rng) : []
            let actions = rewrites + [.lispEncapsulate(template: template)]
            let id = try f.cache.install(maskSlot: slot, key: Self.key(frame), actions: actions + [.output(slot: 1)])
            defer { f.cache.remove(id: id) }
            let before = f.program.statistics()
            let result = try f.run(frame)
            try f.program.setNextIPIdentification(Self.ipIdentification)
            if f.program.statistics().punted > before.punted {
                punted += 1
                #expect(result.frame == frame, "\(replay) frame \(i)")
                continue
            }
            executed += 1
            if template >= 7 { executed6 += 1 }
            #expect(result.action == XDPTestRun.redirect, "\(replay) frame \(i)")
            let expected = Self.workers(frame, rewrites, lisp: templates[template]!)
            if result.frame != expected {
                Issue.record("\(replay) frame \(i) actions \(actions)\n in  \(frame)\n xdp \(result.frame)\n swift \(expected)")
            }
        }
        #expect(executed > 200 && executed6 > 100, "\(replay): \(punted) punted, \(executed6) over IPv6")
    }

    static let lispTemplate6 = XDPFlowCache.LISPTemplate(
        ethernetDestination: 0x0200_0000_00cc, ethernetSource: 0x0200_0000_00dd,
        sourceAddress: IPAddress(high: 0x2001_0db8_0000_0001, low: 0x0000_0000_0000_0001),
        destinationAddress: IPAddress(high: 0x2001_0db8_0000_0002, low: 0xfedc_ba98_7654_3210),
        instanceID: 0xab_cdef, fields: LISP.OuterFields(ttl: nil, tos: nil), egressMTU: 9000)

    /// Lengths around every chunk boundary of the XDP checksum (256-byte loop, 128…4 steps, a 1–3
    /// byte tail), odd and even, IPv4 and IPv6 inner packets: the IPv6 outer UDP checksum equals
    /// LISP.encapsulate's (RFC 768: computed over pseudo-header and datagram, 0 sent as 0xffff).
    @Test func lispEncapsulationOverIPv6ChecksumsEveryLength() throws {
        guard let f = Fixture.make() else { return }
        let slot = try #require(try f.cache.addMask(Self.exactMask))
        try f.cache.setLISPTemplate(slot: 1, Self.lispTemplate6)
        var lengths = Array(0..<70)
        for boundary in [128, 256, 512, 1024, 1400] { lengths += (boundary - 20)...(boundary + 3) }
        for payload in lengths {
            for six in [false, true] {
                let bytes = (0..<payload).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
                let frame = six
                    ? Build.ethernet(type: 0x86dd, Build.ipv6(next: 17, Build.withL4Checksum6(Build.udp(src: 1000, dst: 2000, bytes), proto: 17)))
                    : Build.ipv4UDP(src: 1000, dst: 2000, bytes)
                let id = try f.cache.install(maskSlot: slot, key: Self.key(frame), actions: [.lispEncapsulate(template: 1), .output(slot: 1)])
                defer { f.cache.remove(id: id) }
                let result = try f.run(frame)
                #expect(result.action == XDPTestRun.redirect, "payload \(payload) ipv6 \(six)")
                let expected = Self.workers(frame, [], lisp: Self.lispTemplate6)
                #expect(result.frame == expected, "payload \(payload) ipv6 \(six)")
            }
        }
        #expect(f.program.statistics().punted == 0)
        // Over the egress MTU (frame - 14 + 56 > MTU, the workers' compare): left to the workers,
        // which fragment or answer Packet Too Big (RFC 9300 §7.1); at the MTU: done here.
        let frame = Build.ipv4UDP(src: 1000, dst: 2000, [UInt8](repeating: 7, count: 100))
        let id = try f.cache.install(maskSlot: slot, key: Self.key(frame), actions: [.lispEncapsulate(template: 1), .output(slot: 1)])
        var small = Self.lispTemplate6
        small.egressMTU = UInt16(frame.count - 14 + 56 - 1)
        try f.cache.setLISPTemplate(slot: 1, small)
        #expect(try f.run(frame).frame == frame)
        #expect(f.program.statistics().punted == 1)
        small.egressMTU += 1
        try f.cache.setLISPTemplate(slot: 1, small)
        #expect(try f.run(frame).frame == Self.workers(frame, [], lisp: small))
        f.cache.remove(id: id)
        // A template mixing families is refused.
        var mixed = Self.lispTemplate6
        mixed.source = 0x0a00_0001
        #expect(throws: DatapathError.self) { try f.cache.setLISPTemplate(slot: 2, mixed) }
    }

    /// `workers(frame, rewrites)` then LISP.encapsulate with `lisp`.
    static func workers(_ frame: [UInt8], _ rewrites: [XDPFlowCacheAction], lisp: XDPFlowCache.LISPTemplate) -> [UInt8] {
        let rewritten = workers(frame, rewrites)
        let headroom = 128
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: headroom + rewritten.count, alignment: 8)
        defer { buffer.deallocate() }
        rewritten.withUnsafeBytes { buffer.advanced(by: headroom).copyMemory(from: $0.baseAddress!, byteCount: rewritten.count) }
        var p = buffer.advanced(by: headroom)
        var length = rewritten.count
        let parameters = LISP.EncapsulationParameters(
            ethernetDestination: lisp.ethernetDestination, ethernetSource: lisp.ethernetSource,
            source: lisp.sourceAddress, destination: lisp.destinationAddress,
            udpDestinationPort: lisp.udpDestinationPort)
        let result = LISP.encapsulate(&p, length: &length, headroom: headroom, instanceID: lisp.instanceID,
                                      parameters: parameters, fields: lisp.fields, ipIdentification: ipIdentification)
        guard result == .done else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: length))
    }
}
