import Testing
import VSwiftTesting
@testable import VSwiftPacket

/// `LISP.innerPacket` reads an untagged IPv4 frame inline and parses everything else out of line;
/// the two must agree on every frame, and the prefetch hint must name the same destination
/// whenever the inline case applies (the map-cache lookup at output relies on both).
@Suite("LISP inner packet: the inline IPv4 case and the general parse agree")
struct LISPInnerPacketTests {
    /// Random frames around the boundaries: ethertypes IPv4 / IPv6 / VLAN / ARP, any version
    /// nibble, lengths 0…80 (the 34-byte IPv4 and 54-byte IPv6 minimums inside the range).
    @Test func inlineAndGeneralParseAgreeOnRandomFrames() {
        var rng = SplitMix64(seed: TestSeed.resolve(41))
        let etherTypes: [UInt16] = [0x0800, 0x86dd, 0x8100, 0x88a8, 0x0806, 0x0800, 0x0800]
        for _ in 0..<20_000 {
            let length = Int(rng.next() % 81)
            var frame = (0..<max(length, 1)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if length >= 14 {
                let type = etherTypes[Int(rng.next() % UInt64(etherTypes.count))]
                frame[12] = UInt8(type >> 8); frame[13] = UInt8(type & 0xff)
                if length >= 18 && (type == 0x8100 || type == 0x88a8) && rng.next() % 2 == 0 {
                    frame[16] = 0x08; frame[17] = 0x00
                }
                if length > 14 && rng.next() % 2 == 0 { frame[14] = 0x45 }
            }
            frame.withUnsafeBytes { raw in
                let p = raw.baseAddress!
                let inline = LISP.innerPacket(p, length: length)
                let general = LISP.innerPacketParsing(p, length: length)
                #expect(inline?.destination == general?.destination)
                #expect(inline?.source == general?.source)
                #expect(inline?.l3Offset == general?.l3Offset)
                #expect(inline?.isIPv6 == general?.isIPv6)
                if LISP.isUntaggedIPv4(p, length: length) {
                    #expect(general?.l3Offset == 14 && general?.isIPv6 == false)
                    #expect(LISP.untaggedIPv4Destination(p) == general?.destination)
                    let wire = LISP.untaggedIPv4DestinationOnWire(p)
                    #expect(IPAddress(ipv4: UInt32(bigEndian: wire)) == general?.destination)
                    #expect(LISP.ipv4EthertypeDestinationOnWire(p, length: length) == wire)
                }
            }
        }
    }

    @Test func anUntaggedIPv4FrameIsReadInline() {
        var frame = [UInt8](repeating: 0, count: 34)
        frame[12] = 0x08; frame[14] = 0x45
        frame[26...29] = [10, 0, 0, 1]; frame[30...33] = [10, 2, 3, 4]
        frame.withUnsafeBytes { raw in
            let p = raw.baseAddress!
            #expect(LISP.isUntaggedIPv4(p, length: 34))
            #expect(!LISP.isUntaggedIPv4(p, length: 33))
            let inner = LISP.innerPacket(p, length: 34)
            #expect(inner?.destination == IPAddress("10.2.3.4")!)
            #expect(inner?.source == IPAddress("10.0.0.1")!)
            #expect(LISP.innerPacket(p, length: 33) == nil)
        }
    }
}
