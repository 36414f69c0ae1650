import Testing
import VSwiftTesting
import VSwiftPacket

/// IPv6 outer fragment reassembly (RFC 8200 §4.5; RFC 5722 overlaps; RFC 6946 atomic fragments;
/// RFC 7112 header chain). Fragments are cut here by hand from a packet spelled out byte by byte,
/// independently of the code. Order, duplicates, overlaps and too many fragments: in IPv4ReassemblyTests,
/// for both families.
@Suite("IPv6 reassembly")
struct IPv6ReassemblyTests {
    static let source = V6.a
    /// A UDP packet to port 4341 of `payload` bytes after the IPv6 header (a counting pattern).
    static func packet(payload: Int = 1480) -> [UInt8] {
        Build.ipv6(src: source, next: 17, Build.udp(src: 49200, dst: 4341, (0..<(payload - 8)).map { UInt8(truncatingIfNeeded: $0 &* 7) }))
    }

    /// One fragment: IPv6 header (Next Header 44), Fragment header (RFC 8200 §4.5), `bytes`.
    static func fragment(_ packet: [UInt8], _ bytes: ArraySlice<UInt8>, offset: Int, more: Bool, id: UInt32 = 0x1234_5678,
                         next: UInt8 = 17) -> [UInt8] {
        Fragments.ipv6Fragment(packet, bytes, offset: offset, more: more, id: id, next: next)
    }

    /// The fragments of `packet` with `size` payload bytes each (a multiple of 8; the last less).
    static func fragments(_ packet: [UInt8], size: Int, id: UInt32 = 0x1234_5678) -> [[UInt8]] {
        Fragments.ipv6(packet, size: size, id: id)
    }

    func add(_ r: FragmentReassembler, _ fragment: [UInt8], now: UInt64 = 100) -> FragmentReassembler.Outcome {
        fragment.withUnsafeBytes { r.addIPv6($0.baseAddress!, length: fragment.count, now: now) }
    }

    func whole(_ r: FragmentReassembler) -> [UInt8] { r.wholeDatagram() }

    func kind(_ ip: [UInt8], tags: [(UInt16, UInt16)] = []) -> (FragmentReassembler.IPv6FragmentKind, Int) {
        let frame = Build.ethernet(tags: tags, type: 0x86dd, ip)
        let r = frame.withUnsafeBytes { FragmentReassembler.ipv6UDPFragment($0.baseAddress!, length: frame.count) }
        return (r.kind, r.l3)
    }

    /// A packet whose first fragment never comes waits, then is discarded at the timeout (the
    /// IPv4 policy, within RFC 8200's 60 s).
    @Test func aPacketMissingItsFirstFragmentTimesOut() {
        let pieces = Self.fragments(Self.packet(), size: 504)
        let r = FragmentReassembler()
        #expect(r.limits.timeout <= 60)
        #expect(add(r, pieces[1], now: 10) == .held)
        #expect(add(r, pieces[2], now: 11) == .held)
        #expect(r.expire(now: 12) == 0)
        #expect(r.expire(now: 13) == 1)
        #expect(r.count == 0)
    }

    @Test func endlessFirstFragmentsFillTheTableAndNoMore() {
        var limits = FragmentReassembler.Limits()
        limits.datagrams = 8
        let r = FragmentReassembler(limits: limits)
        var full = 0
        for id in 0..<1_000 {
            switch add(r, Self.fragments(Self.packet(), size: 504, id: UInt32(id))[0], now: 50) {
            case .held: break
            case .tableFull: full += 1
            default: Issue.record("fragment \(id)")
            }
        }
        #expect(r.count == 8 && full == 1_000 - 8)
        #expect(r.expire(now: 53) == 8)
    }

    @Test func aPacketOverTheLimitIsDiscarded() {
        var limits = FragmentReassembler.Limits()
        limits.datagramLength = 1000
        let r = FragmentReassembler(limits: limits)
        let original = Self.packet()
        let pieces = Self.fragments(original, size: 504)
        #expect(add(r, pieces[0]) == .held)
        #expect(add(r, pieces[1]) == .tooBig)   // ends at 1008 + 40 > 1000
        #expect(r.count == 0)
        // An offset near 64 KiB, whatever the limit (RFC 8200 §4.5: beyond 65,535 is discarded).
        let far = Self.fragment(original, original[40..<48], offset: 65_528, more: false)
        #expect(add(FragmentReassembler(), far) == .tooBig)
    }

    @Test func inconsistentFragmentsAreMalformed() {
        let original = Self.packet()
        let r = FragmentReassembler()
        // RFC 8200 §4.5: M set and a length not a multiple of 8.
        #expect(add(r, Self.fragment(original, original[40..<85], offset: 0, more: true)) == .malformed)
        // A Payload Length beyond the bytes given.
        var long = Self.fragments(original, size: 504)[2]
        Ref.put16(&long, 4, UInt16(long.count - 40 + 1))
        #expect(add(r, long) == .malformed)
        // Not a Fragment header after the IPv6 header.
        var plain = Self.fragments(original, size: 504)[1]
        plain[6] = 17
        #expect(add(r, plain) == .malformed)
        #expect(r.count == 0)
    }

    /// An IPv4 datagram and an IPv6 packet share the table without mixing, whatever their ids.
    @Test func bothFamiliesShareTheTable() {
        let r = FragmentReassembler()
        let v6 = Self.packet()
        let v4 = IPv4ReassemblyTests.datagram(id: 0x5678)
        let v6Pieces = Self.fragments(v6, size: 504, id: 0x5678)
        let v4Pieces = IPv4ReassemblyTests.fragments(v4, size: 504)
        #expect(add(r, v6Pieces[0]) == .held)
        #expect(v4Pieces[0].withUnsafeBytes { r.addIPv4($0.baseAddress!, length: v4Pieces[0].count, now: 100) } == .held)
        #expect(add(r, v6Pieces[1]) == .held)
        #expect(add(r, v6Pieces[2]) == .complete)
        #expect(whole(r) == v6)
        r.release(r.completed)
        #expect(r.count == 1)
    }

    @Test("RFC 8200 §4.5: which frames are IPv6 UDP fragments")
    func whichFramesAreFragments() {
        let original = Self.packet()
        let pieces = Self.fragments(original, size: 504)
        #expect(kind(pieces[0]) == (.fragment, 14))
        #expect(kind(pieces[2]) == (.fragment, 14))
        #expect(kind(pieces[1], tags: [(0x8100, 5)]) == (.fragment, 18))
        #expect(kind(original).0 == .none)                                      // not a fragment
        // RFC 7112: a first fragment whose chain does not reach UDP is not ours.
        #expect(kind(Self.fragment(original, original[40..<48], offset: 0, more: true, next: 60)).0 == .none)
        var short = pieces[1]
        Ref.put16(&short, 4, UInt16(short.count - 40 + 8))                      // beyond the frame
        #expect(kind(short).0 == .none)
        var v5 = pieces[1]
        v5[0] = 0x50
        #expect(kind(v5).0 == .none)
    }

    /// RFC 6946 §4: an atomic fragment (offset 0, M clear) is processed as the packet it carries;
    /// with its Fragment header removed it is byte for byte the unfragmented packet.
    @Test("RFC 6946: an atomic fragment is the unfragmented packet")
    func anAtomicFragmentIsTheUnfragmentedPacket() {
        let original = Self.packet(payload: 200)
        let atomic = Self.fragment(original, original[40...], offset: 0, more: false)
        #expect(kind(atomic) == (.atomic, 14))
        var frame = Build.ethernet(tags: [(0x8100, 7)], type: 0x86dd, atomic)
        let l3 = 18
        frame.withUnsafeMutableBytes { FragmentReassembler.removeAtomicFragmentHeader($0.baseAddress!, l3: l3) }
        #expect(Array(frame[8...]) == Build.ethernet(tags: [(0x8100, 7)], type: 0x86dd, original))
        // addIPv6 is not for atomic fragments, but one given to it completes alone.
        let r = FragmentReassembler()
        #expect(add(r, atomic) == .complete)
        #expect(whole(r) == original)
    }

    /// What is supported: a Fragment header directly after the IPv6 header. Behind Hop-by-Hop,
    /// Routing or Destination Options it is recognised, for the worker to drop and count.
    @Test func aFragmentHeaderBehindExtensionHeadersIsRecognisedNotReassembled() {
        let original = Self.packet()
        let piece = Self.fragments(original, size: 504)[1]
        let fragmentPart = Array(piece[40...])
        func behind(_ chain: [[UInt8]], fragmentNext: UInt8 = 17) -> [UInt8] {
            var f = fragmentPart
            f[0] = fragmentNext
            let payload = chain.joined() + f
            return Build.ipv6(src: Self.source, next: chain.isEmpty ? 44 : 0, Array(payload))
        }
        #expect(kind(behind([Build.ext(next: 44)])) == (.behindExtensionHeaders, 14))
        var routing = Build.ipv6(src: Self.source, next: 0, Build.ext(next: 43) + Build.ext(next: 60, units: 1)
                                 + Build.ext(next: 44) + fragmentPart)
        #expect(kind(routing) == (.behindExtensionHeaders, 14))
        routing[40] = 6                                                          // Hop-by-Hop then TCP: no fragment
        #expect(kind(routing).0 == .none)
        #expect(kind(behind([Build.ext(next: 44)], fragmentNext: 6)).0 == .none) // a TCP fragment
        let r = FragmentReassembler()
        #expect(add(r, behind([Build.ext(next: 44)])) == .malformed)
    }
}
