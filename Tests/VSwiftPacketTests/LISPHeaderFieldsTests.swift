import Testing
import VSwiftTesting
import VSwiftPacket

/// TTL, DSCP and ECN between the inner and outer headers of a LISP tunnel (RFC 9300 §5.3,
/// RFC 6040 §4.1/§4.2) and the LISP header's flags (RFC 9300 §5.3, RFC 8061). Expected bytes are
/// built here by hand from the RFC text, not by the code under test.
enum FieldsFixture {
    static let families = [(false, false), (true, false), (false, true), (true, true)]

    /// An inner packet with the given TOS / traffic class byte and TTL / hop limit.
    static func inner(v6: Bool, tos: UInt8, ttl: UInt8) -> [UInt8] {
        if v6 {
            return Build.ipv6(next: 17, tc: tos, label: 0x54321, hopLimit: ttl,
                              Build.withL4Checksum6(Build.udp(src: 7, dst: 9, [1, 2, 3]), proto: 17))
        }
        return Build.ipv4(proto: 17, tos: tos, ttl: ttl, Build.withL4Checksum4(Build.udp(src: 7, dst: 9, [1, 2, 3]), proto: 17))
    }

    /// `inner` encapsulated, then its outer TOS / traffic class byte and TTL / hop limit set as an
    /// underlay might have left them (outer IPv4 header checksum fixed; the outer IPv6 UDP checksum
    /// covers neither field).
    static func packet(_ inner: [UInt8], outerV6: Bool, outerTOS: UInt8, outerTTL: UInt8) -> [UInt8] {
        var f = runEncap(LISPFixture.frame(inner), parameters: LISPFixture.parameters(outer6: outerV6)).output
        if outerV6 {
            Ref.put32(&f, 14, Ref.u32(f, 14) & ~0x0ff0_0000 | UInt32(outerTOS) << 20)
            f[21] = outerTTL
        } else {
            f[15] = outerTOS
            f[22] = outerTTL
            LISPDecapsulationTests.fixIPv4(&f)
        }
        return f
    }

    /// `inner` with its ECN field and TTL replaced (IPv4 header checksum recomputed).
    static func changed(_ inner: [UInt8], ecn: UInt8, ttl: UInt8) -> [UInt8] {
        var e = inner
        if e[0] >> 4 == 6 {
            Ref.put32(&e, 0, Ref.u32(e, 0) & ~0x0030_0000 | UInt32(ecn) << 20)
            e[7] = ttl
        } else {
            e[1] = e[1] & 0xfc | ecn
            e[8] = ttl
            Ref.put16(&e, 10, 0)
            Ref.put16(&e, 10, Ref.checksum(Array(e[0..<20])))
        }
        return e
    }

    static func header(_ inner: [UInt8]) -> [UInt8] {
        inner[0] >> 4 == 6 ? decapsulatedHeader6 : decapsulatedHeader4
    }
}

@Suite("LISP TTL, DSCP and ECN (RFC 9300 §5.3, RFC 6040)")
struct LISPHeaderFieldsTests {
    /// RFC 6040 §4.2 Figure 4, rows = arriving inner, columns = arriving outer, in the RFC's own
    /// column order (Not-ECT, ECT(0), ECT(1), CE); nil = drop.
    static let notECT: UInt8 = 0, ect1: UInt8 = 1, ect0: UInt8 = 2, ce: UInt8 = 3
    static let figure4: [(inner: UInt8, row: [UInt8?])] = [
        (notECT, [notECT, notECT, notECT, nil]),
        (ect0, [ect0, ect0, ect1, ce]),
        (ect1, [ect1, ect1, ect1, ce]),
        (ce, [ce, ce, ce, ce]),
    ]
    static let figure4Columns: [UInt8] = [notECT, ect0, ect1, ce]

    @Test("RFC 6040 §4.2 Figure 4: the decapsulation table, cell by cell")
    func rfc6040Figure4Table() {
        for (inner, row) in Self.figure4 {
            for (column, outer) in Self.figure4Columns.enumerated() {
                let expected = row[column] ?? 4
                // The DSCP bits around the ECN field do not matter.
                #expect(LISP.decapsulatedECN(inner: inner | 0xb8, outer: outer | 0x44) == expected, "inner \(inner) outer \(outer)")
            }
        }
    }

    @Test("RFC 6040 §4.2: every inner × outer ECN on decapsulation, byte-exact, IPv4 and IPv6 inner and outer; outer CE on inner Not-ECT drops; the inner IPv4 checksum follows",
          arguments: FieldsFixture.families)
    func rfc6040DecapsulationEveryCombination(innerV6: Bool, outerV6: Bool) throws {
        for (inner, row) in Self.figure4 {
            for (column, outer) in Self.figure4Columns.enumerated() {
                let packet = FieldsFixture.inner(v6: innerV6, tos: 0x28 | inner, ttl: 64)
                let frame = FieldsFixture.packet(packet, outerV6: outerV6, outerTOS: 0x80 | outer, outerTTL: 64)
                let (result, output) = decapResult(frame)
                if let ecn = row[column] {
                    #expect(result == .done, "inner \(inner) outer \(outer)")
                    // DSCP stays the inner one (0x28), not the outer's.
                    #expect(output == FieldsFixture.header(packet) + FieldsFixture.changed(packet, ecn: ecn, ttl: 64),
                            "inner \(inner) outer \(outer)")
                } else {
                    #expect(result == .congestionOnNotECT, "inner \(inner) outer \(outer)")
                    #expect(output == frame)
                }
            }
        }
    }

    @Test("RFC 6040 §4.1 normal mode: encapsulation copies the inner ECN field (CE too) to the outer header, with tos=inherit and with a fixed tos",
          arguments: FieldsFixture.families)
    func rfc6040EncapsulationCopiesECN(innerV6: Bool, outerV6: Bool) throws {
        for ecn: UInt8 in 0...3 {
            let inner = FieldsFixture.inner(v6: innerV6, tos: 0xb8 | ecn, ttl: 64)
            let params = LISPFixture.parameters(outer6: outerV6)
            let inherit = runEncap(LISPFixture.frame(inner), iid: 5, parameters: params)
            #expect(inherit.result == .done)
            let sp = Ref.u16(inherit.output, outerV6 ? 54 : 34)
            #expect(inherit.output == LISPFixture.expected(inner: inner, outer6: outerV6, iid: 5, sourcePort: sp, tos: 0xb8 | ecn))
            // tos=40 (DSCP 10): the fixed DSCP, the inner ECN. The ECN bits of a fixed tos never count.
            for fixed: UInt8 in [0x28, 0x2b] {
                let run = runEncap(LISPFixture.frame(inner), iid: 5, parameters: params, fields: LISP.OuterFields(tos: fixed))
                #expect(run.output == LISPFixture.expected(inner: inner, outer6: outerV6, iid: 5, sourcePort: sp, tos: 0x28 | ecn))
            }
            // And back: the inner packet arrives as it left.
            #expect(try #require(decap(inherit.output)) == FieldsFixture.header(inner) + inner)
        }
    }

    @Test("RFC 9300 §5.3: the outer TTL is the inner one with ttl=inherit, or the fixed one; the outer DSCP likewise",
          arguments: FieldsFixture.families)
    func rfc9300EncapsulationTTL(innerV6: Bool, outerV6: Bool) {
        let params = LISPFixture.parameters(outer6: outerV6)
        for ttl: UInt8 in [1, 2, 63, 64, 255] {
            let inner = FieldsFixture.inner(v6: innerV6, tos: 0x11, ttl: ttl)
            let run = runEncap(LISPFixture.frame(inner), parameters: params)
            let sp = Ref.u16(run.output, outerV6 ? 54 : 34)
            #expect(run.output == LISPFixture.expected(inner: inner, outer6: outerV6, iid: 0, sourcePort: sp, ttl: ttl, tos: 0x11))
            for fixed: UInt8 in [1, 64, 255] {
                let fixedRun = runEncap(LISPFixture.frame(inner), parameters: params, fields: LISP.OuterFields(ttl: fixed))
                #expect(fixedRun.output == LISPFixture.expected(inner: inner, outer6: outerV6, iid: 0, sourcePort: sp, ttl: fixed, tos: 0x11))
                let both = runEncap(LISPFixture.frame(inner), parameters: params, fields: LISP.OuterFields(ttl: fixed, tos: 0xfc))
                #expect(both.output == LISPFixture.expected(inner: inner, outer6: outerV6, iid: 0, sourcePort: sp, ttl: fixed, tos: 0xfd))
            }
        }
    }

    @Test("RFC 9300 §5.3: on decapsulation the inner TTL becomes the outer one when the outer is lower (IPv4 checksum updated, IPv6 hop limit); a TTL of 0 that way is dropped",
          arguments: FieldsFixture.families)
    func rfc9300DecapsulationTTL(innerV6: Bool, outerV6: Bool) throws {
        // (inner TTL, outer TTL, inner TTL after, or nil: dropped as expired)
        let cases: [(UInt8, UInt8, UInt8?)] = [
            (64, 10, 10), (64, 63, 63), (64, 64, 64), (64, 200, 64), (64, 1, 1), (1, 64, 1), (255, 254, 254),
            (255, 255, 255), (64, 0, nil), (0, 64, nil), (0, 0, nil),
        ]
        for (innerTTL, outerTTL, after) in cases {
            for ecn: UInt8 in [0, 2] {
                let inner = FieldsFixture.inner(v6: innerV6, tos: 0x48 | ecn, ttl: innerTTL)
                let frame = FieldsFixture.packet(inner, outerV6: outerV6, outerTOS: 0x48 | ecn, outerTTL: outerTTL)
                let (result, output) = decapResult(frame)
                if let after {
                    #expect(result == .done, "\(innerTTL) \(outerTTL)")
                    #expect(output == FieldsFixture.header(inner) + FieldsFixture.changed(inner, ecn: ecn, ttl: after),
                            "\(innerTTL) \(outerTTL)")
                } else {
                    #expect(result == .ttlExpired, "\(innerTTL) \(outerTTL)")
                    #expect(output == frame)
                }
            }
        }
        // Both at once: outer CE and a lower TTL over ECT(0); and the ECN drop wins over the TTL one.
        let inner = FieldsFixture.inner(v6: innerV6, tos: 0x02, ttl: 64)
        let both = FieldsFixture.packet(inner, outerV6: outerV6, outerTOS: 0x03, outerTTL: 9)
        #expect(try #require(decap(both)) == FieldsFixture.header(inner) + FieldsFixture.changed(inner, ecn: 3, ttl: 9))
        let notECT = FieldsFixture.inner(v6: innerV6, tos: 0, ttl: 64)
        #expect(decapResult(FieldsFixture.packet(notECT, outerV6: outerV6, outerTOS: 3, outerTTL: 0)).0 == .congestionOnNotECT)
    }

    /// An inner IPv4 header whose checksum was wrong stays exactly as wrong (RFC 1624 update), so
    /// the receiver still sees it is wrong.
    @Test func wrongInnerChecksumStaysWrong() throws {
        var inner = FieldsFixture.inner(v6: false, tos: 0x02, ttl: 64)
        inner[10] ^= 0x5a
        let frame = FieldsFixture.packet(inner, outerV6: false, outerTOS: 0x03, outerTTL: 7)
        let output = try #require(decap(frame))
        var expected = FieldsFixture.changed(inner, ecn: 3, ttl: 7)
        Ref.put16(&expected, 10, Ref.u16(output, 24))
        #expect(output == decapsulatedHeader4 + expected)
        // The header's one's-complement sum is what it was: as far from 0xffff (valid) as before.
        #expect(Ref.sum(Array(output[14..<34])) == Ref.sum(Array(inner[0..<20])))
        #expect(Ref.sum(Array(output[14..<34])) != 0xffff)
    }

    @Test func outerFieldsOptionValues() {
        let inherit = LISP.OuterFields()
        #expect(inherit.ttl == nil && inherit.tos == nil)
        let copied = inherit.outer(innerTOS: 0xb9, innerTTL: 17)
        #expect(copied.tos == 0xb9 && copied.ttl == 17)
        let fixed = LISP.OuterFields(ttl: 9, tos: 0x2b)
        #expect(fixed.ttl == 9 && fixed.tos == 0x28)
        let set = fixed.outer(innerTOS: 0xb9, innerTTL: 17)
        #expect(set.tos == 0x29 && set.ttl == 9)
        #expect(LISP.OuterFields(ttl: 5) != LISP.OuterFields(ttl: 6))
        #expect(LISP.OuterFields(tos: 0) != LISP.OuterFields())
    }
}

@Suite("LISP header flags (RFC 9300 §5.3, RFC 8061)")
struct LISPFlagTests {
    /// The first LISP header byte is N L E V I R K K.
    @Test func flagBitsAreWhereRFC9300SectionFiveThreePutsThem() {
        #expect(LISP.flagNonce == 0x80 && LISP.flagLocatorStatusBits == 0x40 && LISP.flagEchoNonce == 0x20)
        #expect(LISP.flagMapVersion == 0x10 && LISP.flagInstanceID == 0x08)
        #expect(LISP.flagReserved == 0x04 && LISP.flagsKeyID == 0x03)
    }

    /// Every value of the flags byte, over every family: KK ≠ 00 is `.encrypted` (with the
    /// instance ID read, the LISP header is in the clear), anything else decapsulates — R ignored,
    /// N with V taken as a nonce, E and V ignored — to exactly the inner packet.
    @Test("RFC 9300 §5.3: R ignored on receipt, N and V together accepted as a nonce, E and V ignored; RFC 8061: KK ≠ 00 is encrypted",
          arguments: FieldsFixture.families)
    func everyFlagCombination(innerV6: Bool, outerV6: Bool) throws {
        let (inner, good) = LISPDecapsulationTests.encapsulated(innerV6: innerV6, outerV6: outerV6)
        let lisp = outerV6 ? 62 : 42
        for flags in 0...255 {
            var frame = good
            frame[lisp] = UInt8(flags)
            if outerV6 { Ref.put16(&frame, 60, 0) } // the flags are under the UDP checksum: none
            let (result, headers) = parseOuter(frame)
            #expect(headers.flags == UInt8(flags))
            #expect(headers.hasInstanceID == (flags & 0x08 != 0))
            #expect(headers.instanceID == (flags & 0x08 != 0 ? 0x00abcd : 0))
            if flags & 0x03 != 0 {
                #expect(result == .encrypted, "flags \(flags)")
            } else {
                #expect(result == .lisp, "flags \(flags)")
                #expect(try #require(decap(frame)) == FieldsFixture.header(inner) + inner, "flags \(flags)")
            }
        }
    }

    /// An encrypted payload is not an IP packet: it is `.encrypted`, not `.malformed`, whatever its
    /// bytes, and never passes as `.lisp`.
    @Test func encryptedPayloadIsNotParsed() {
        let ciphertext: [UInt8] = (0..<48).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        for kk: UInt8 in 1...3 {
            let frame = lispFrame(destinationMAC: [2, 0, 0, 0, 0, 1], source: [192, 0, 2, 1], destination: [192, 0, 2, 2],
                                  flags: 0x88 | kk, iid: 77, inner: ciphertext)
            let (result, headers) = parseOuter(frame)
            #expect(result == .encrypted)
            #expect(headers.instanceID == 77 && headers.source == IPAddress("192.0.2.1"))
        }
    }

    /// Encapsulation sends R = 0 and KK = 00 (flags 0x48: L and I).
    @Test func transmitSetsReservedAndKeyBitsToZero() {
        for outer6 in [false, true] {
            let run = runEncap(LISPFixture.frame(LISPFixture.inner(v6: false)), iid: 3, parameters: LISPFixture.parameters(outer6: outer6))
            #expect(run.output[outer6 ? 62 : 42] & 0x07 == 0)
        }
    }
}
