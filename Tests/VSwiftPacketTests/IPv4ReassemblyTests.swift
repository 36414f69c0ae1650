import Testing
import VSwiftTesting
import VSwiftPacket

/// Outer fragment reassembly (RFC 791 §3.2; RFC 5722's discard-on-overlap; RFC 9300 §7). Fragments
/// are cut here by hand from a datagram spelled out byte by byte, independently of the code.
@Suite("IPv4 reassembly, and IPv6 where the rule is the same")
struct IPv4ReassemblyTests {
    /// A UDP datagram of `payload` bytes (a counting pattern), identification 0x1234, DF clear.
    static func datagram(payload: Int = 1480, id: UInt16 = 0x1234, source: UInt32 = 0xc000_0202) -> [UInt8] {
        var d = Build.ipv4(src: source, dst: 0xc000_0201, proto: 17,
                           Build.udp(src: 49200, dst: 4341, (0..<(payload - 8)).map { UInt8(truncatingIfNeeded: $0 &* 7) }))
        Ref.put16(&d, 4, id)
        Ref.put16(&d, 10, 0)
        Ref.put16(&d, 10, Ref.checksum(Array(d[0..<20])))
        return d
    }

    /// The fragments of `datagram` with `size` payload bytes each (a multiple of 8; the last less).
    static func fragments(_ datagram: [UInt8], size: Int) -> [[UInt8]] {
        Fragments.ipv4(datagram, size: size)
    }

    /// The datagram of either family (IPv6: `IPv6ReassemblyTests.packet`) and its fragments, for
    /// the rules both share.
    static func datagram(_ family: Int) -> [UInt8] { family == 6 ? IPv6ReassemblyTests.packet() : datagram() }

    static func fragments(_ datagram: [UInt8], size: Int, family: Int) -> [[UInt8]] {
        family == 6 ? IPv6ReassemblyTests.fragments(datagram, size: size) : fragments(datagram, size: size)
    }

    /// Hands `fragment` to the reassembler's IPv4 or IPv6 entry, by its version.
    func add(_ r: FragmentReassembler, _ fragment: [UInt8], now: UInt64 = 100) -> FragmentReassembler.Outcome {
        fragment.withUnsafeBytes {
            fragment[0] >> 4 == 6 ? r.addIPv6($0.baseAddress!, length: fragment.count, now: now)
                : r.addIPv4($0.baseAddress!, length: fragment.count, now: now)
        }
    }

    func whole(_ r: FragmentReassembler) -> [UInt8] { r.wholeDatagram() }

    /// RFC 791 §3.2, RFC 8200 §4.5.
    @Test(arguments: ["in order", "reverse", "shuffled"], [4, 6])
    func fragmentsInAnyOrderMakeTheDatagramOnceWhole(order: String, family: Int) {
        let original = Self.datagram(family)
        var pieces = Self.fragments(original, size: 504, family: family)
        #expect(pieces.count == 3)
        if order == "reverse" { pieces.reverse() }
        if order == "shuffled" { pieces = [pieces[1], pieces[2], pieces[0]] }
        let r = FragmentReassembler()
        for piece in pieces.dropLast() { #expect(add(r, piece) == .held) }
        #expect(add(r, pieces.last!) == .complete)
        #expect(whole(r) == original)
        if family == 4 { #expect(Ref.checksum(Array(whole(r)[0..<20])) == 0) }
        r.release(r.completed)
        #expect(r.count == 0)
    }

    @Test(arguments: [4, 6])
    func anExactDuplicateIsDroppedAloneAndTheDatagramStillCompletes(family: Int) {
        let original = Self.datagram(family)
        let pieces = Self.fragments(original, size: 504, family: family)
        let r = FragmentReassembler()
        #expect(add(r, pieces[0]) == .held)
        #expect(add(r, pieces[0]) == .duplicate)
        #expect(add(r, pieces[1]) == .held)
        #expect(add(r, pieces[2]) == .complete)
        #expect(whole(r) == original)
    }

    /// RFC 8200 §4.5 and RFC 5722 §4 (IPv6), applied to IPv4 as Linux does: overlapping fragments
    /// discard the datagram.
    @Test(arguments: [4, 6])
    func anOverlappingFragmentDiscardsTheDatagram(family: Int) {
        let original = Self.datagram(family)
        let pieces = Self.fragments(original, size: 504, family: family)
        let shifted = Self.fragments(original, size: 512, family: family)   // [0, 512) overlaps [504, 1008)
        let r = FragmentReassembler()
        #expect(add(r, pieces[1]) == .held)
        #expect(add(r, shifted[0]) == .overlap)
        #expect(r.count == 0)
        // What follows starts a new datagram, which never completes from the leftovers.
        #expect(add(r, pieces[2]) == .held)
        #expect(add(r, pieces[0]) == .held)
        #expect(r.count == 1)
    }

    @Test func aDatagramThatWaitsTooLongIsDiscarded() {
        let pieces = Self.fragments(Self.datagram(), size: 504)
        let r = FragmentReassembler()
        #expect(add(r, pieces[0], now: 10) == .held)
        #expect(r.expire(now: 12) == 0)
        #expect(r.expire(now: 13) == 1)
        #expect(r.count == 0)
        #expect(add(r, pieces[1], now: 13) == .held)
        #expect(add(r, pieces[2], now: 13) == .held)
    }

    /// The attack: endless first fragments with distinct identifications. Memory stays what
    /// `init` allocated; the table fills, later ones are counted, and once the timeout frees it a
    /// real datagram is reassembled again.
    @Test func endlessFirstFragmentsFillTheTableAndNoMore() {
        var limits = FragmentReassembler.Limits()
        limits.datagrams = 8
        let r = FragmentReassembler(limits: limits)
        var full = 0
        var first = Self.fragments(Self.datagram(), size: 504)[0]
        for id in 0..<10_000 {
            Ref.put16(&first, 4, UInt16(truncatingIfNeeded: id))
            switch add(r, first, now: 50) {
            case .held: break
            case .tableFull: full += 1
            default: Issue.record("fragment \(id)")
            }
        }
        #expect(r.count == 8 && full == 10_000 - 8)
        #expect(r.expire(now: 53) == 8)
        let original = Self.datagram(id: 0xbeef)
        let pieces = Self.fragments(original, size: 504)
        #expect(add(r, pieces[0], now: 53) == .held)
        #expect(add(r, pieces[1], now: 53) == .held)
        #expect(add(r, pieces[2], now: 53) == .complete)
        #expect(whole(r) == original)
    }

    @Test func aDatagramOverTheLimitIsDiscarded() {
        var limits = FragmentReassembler.Limits()
        limits.datagramLength = 1000
        let r = FragmentReassembler(limits: limits)
        let pieces = Self.fragments(Self.datagram(), size: 504)
        #expect(add(r, pieces[0]) == .held)
        #expect(add(r, pieces[1]) == .tooBig)   // ends at 1008 + 20 > 1000
        #expect(r.count == 0)
        // An offset near 64 KiB, whatever the limit.
        var far = pieces[1]
        Ref.put16(&far, 6, 0x2000 | 8100)
        Ref.put16(&far, 10, 0)
        Ref.put16(&far, 10, Ref.checksum(Array(far[0..<20])))
        #expect(add(FragmentReassembler(), far) == .tooBig)
    }

    @Test(arguments: [4, 6])
    func tooManyFragmentsDiscardTheDatagram(family: Int) {
        var limits = FragmentReassembler.Limits()
        limits.fragmentsPerDatagram = 4
        let r = FragmentReassembler(limits: limits)
        let pieces = Self.fragments(Self.datagram(family), size: 64, family: family)
        for piece in pieces[0..<4] { #expect(add(r, piece) == .held) }
        #expect(add(r, pieces[4]) == .tooManyFragments)
        #expect(r.count == 0)
    }

    @Test func inconsistentFragmentsAreMalformed() {
        let original = Self.datagram()
        let pieces = Self.fragments(original, size: 504)
        let r = FragmentReassembler()
        // A non-last fragment whose payload is not a multiple of 8.
        var odd = pieces[0]
        odd.removeLast(3)
        Ref.put16(&odd, 2, UInt16(odd.count))
        #expect(add(r, odd) == .malformed)
        // Bytes past the last fragment's end: the datagram is discarded.
        #expect(add(r, pieces[1]) == .held)
        var shortLast = pieces[0]
        Ref.put16(&shortLast, 6, 0)   // MF clear, offset 0: the datagram ends at 504
        #expect(add(r, shortLast) == .malformed)
        #expect(r.count == 0)
        // A total length beyond the bytes given.
        var long = pieces[2]
        Ref.put16(&long, 2, UInt16(long.count + 1))
        #expect(add(r, long) == .malformed)
    }

    @Test func onlyWellFormedUDPFragmentsAreTakenFromFrames() {
        let pieces = Self.fragments(Self.datagram(), size: 504)
        func offset(_ ip: [UInt8], tags: [(UInt16, UInt16)] = []) -> Int {
            let frame = Build.ethernet(tags: tags, type: 0x0800, ip)
            return frame.withUnsafeBytes { FragmentReassembler.ipv4UDPFragmentOffset($0.baseAddress!, length: frame.count) }
        }
        #expect(offset(pieces[0]) == 14)
        #expect(offset(pieces[2]) == 14)
        #expect(offset(pieces[1], tags: [(0x8100, 5)]) == 18)
        #expect(offset(Self.datagram()) == 0)            // not a fragment
        var bad = pieces[1]
        bad[10] ^= 0xff                                  // header checksum
        #expect(offset(bad) == 0)
        var tcp = pieces[1]
        tcp[9] = 6
        Ref.put16(&tcp, 10, 0)
        Ref.put16(&tcp, 10, Ref.checksum(Array(tcp[0..<20])))
        #expect(offset(tcp) == 0)
    }
}

extension FragmentReassembler {
    /// The datagram `add` just completed, as bytes.
    func wholeDatagram() -> [UInt8] {
        let d = datagram(completed)
        return Array(UnsafeRawBufferPointer(start: d.start, count: d.length))
    }
}
