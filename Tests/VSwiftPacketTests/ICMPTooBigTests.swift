import Testing
import VSwiftTesting
import VSwiftPacket

/// The "packet too big" answers of the tunnel ingress (RFC 1191 §4, RFC 4443 §3.2, RFC 1812
/// §4.3.2.3) and inner fragmentation (RFC 791 §3.2): expected bytes spelled out with `Ref`.
@Suite("ICMP too big and inner fragmentation")
struct ICMPTooBigTests {
    static let hostMAC: UInt64 = 0x5254_00b8_2775
    static let gatewayMAC: UInt64 = 0x5254_001b_ead5

    func answer4(_ frame: [UInt8], l3: Int = 14, mtu: UInt16 = 1464) -> [UInt8] {
        var out = [UInt8](repeating: 0xee, count: 2048)
        let n = frame.withUnsafeBytes { f in
            out.withUnsafeMutableBytes { o in
                ICMPTooBig.writeIPv4(answering: f.baseAddress!, length: frame.count, l3: l3, nextHopMTU: mtu,
                                     identification: 0x0102, into: o.baseAddress!)
            }
        }
        return Array(out[0..<n])
    }

    /// RFC 1191 §4: type 3, code 4, unused 16 bits, next-hop MTU; RFC 792: the original header
    /// and data after it. From the original destination back to its source, MACs swapped.
    @Test func fragmentationNeededQuotesTheOriginalAndCarriesTheMTU() {
        let ip = Build.ipv4(src: 0x0a01_0114, dst: 0x0a01_011e, proto: 17, frag: 0x4000, Build.udp([UInt8](repeating: 0x5a, count: 100)))
        let frame = Build.ethernet(dst: Self.gatewayMAC, src: Self.hostMAC, type: 0x0800, ip)
        var icmp: [UInt8] = [3, 4, 0, 0, 0, 0] + Ref.be16(1464) + ip
        Ref.put16(&icmp, 2, Ref.checksum(icmp))
        var header: [UInt8] = [0x45, 0xc0] + Ref.be16(UInt16(20 + icmp.count)) + [0x01, 0x02, 0, 0, 64, 1, 0, 0]
            + [10, 1, 1, 30, 10, 1, 1, 20]
        Ref.put16(&header, 10, Ref.checksum(header))
        let expected = Ref.mac(Self.hostMAC) + Ref.mac(Self.gatewayMAC) + [0x08, 0x00] + header + icmp
        #expect(answer4(frame) == expected)
    }

    /// RFC 1812 §4.3.2.3: no more than 576 bytes in all; VLAN tags are kept.
    @Test func aLongOriginalIsQuotedUpTo576BytesAndTagsAreKept() {
        let ip = Build.ipv4(proto: 17, frag: 0x4000, Build.udp([UInt8](repeating: 1, count: 1400)))
        let frame = Build.ethernet(tags: [(0x8100, 7)], type: 0x0800, ip)
        let out = answer4(frame, l3: 18)
        #expect(out.count == 18 + 576)
        #expect(Array(out[12..<18]) == [0x81, 0x00, 0, 7, 0x08, 0x00])
        #expect(Ref.u16(out, 18 + 2) == 576)
        #expect(Array(out[(18 + 28)...]) == Array(ip[0..<548]))
        #expect(Ref.checksum(Array(out[18..<38])) == 0 && Ref.checksum(Array(out[38...])) == 0)
    }

    /// RFC 4443 §3.2: type 2, code 0, 32-bit MTU, as much of the original as fits in 1280 bytes;
    /// the checksum covers the IPv6 pseudo-header.
    @Test func packetTooBigForIPv6() {
        let ip = Build.ipv6(next: 17, Build.udp([UInt8](repeating: 0x33, count: 1400)))
        let frame = Build.ethernet(dst: Self.gatewayMAC, src: Self.hostMAC, type: 0x86dd, ip)
        var out = [UInt8](repeating: 0, count: 2048)
        let n = frame.withUnsafeBytes { f in
            out.withUnsafeMutableBytes { o in
                ICMPTooBig.writeIPv6(answering: f.baseAddress!, length: frame.count, l3: 14, mtu: 1444, into: o.baseAddress!)
            }
        }
        out = Array(out[0..<n])
        #expect(n == 14 + 1280)
        let body = [2, 0, 0, 0] + Ref.be32(1444) + Array(ip[0..<1232])
        let withSum = Build.withL4Checksum6(body, proto: 58, src: .b, dst: .a)
        let expected = Ref.mac(Self.hostMAC) + Ref.mac(Self.gatewayMAC) + [0x86, 0xdd]
            + Build.ipv6(src: .b, dst: .a, next: 58, withSum)
        #expect(out == expected)
    }

    /// RFC 1122 §3.2.2, RFC 1812 §4.3.2.7, RFC 4443 §2.4 (e): no answer about an ICMP error, a
    /// later fragment, or to/from addresses that are not one host's.
    @Test func noAnswerWhereTheRFCsForbidIt() {
        func may4(_ ip: [UInt8]) -> Bool { ip.withUnsafeBytes { ICMPTooBig.mayAnswerIPv4($0.baseAddress!, length: ip.count) } }
        func may6(_ ip: [UInt8]) -> Bool { ip.withUnsafeBytes { ICMPTooBig.mayAnswerIPv6($0.baseAddress!, length: ip.count) } }
        let udp = Build.udp([1, 2, 3])
        #expect(may4(Build.ipv4(proto: 17, frag: 0x4000, udp)))
        #expect(may4(Build.ipv4(proto: 1, frag: 0x4000, Build.icmp(type: 8, code: 0))))
        #expect(!may4(Build.ipv4(proto: 1, frag: 0x4000, Build.icmp(type: 3, code: 1))))
        #expect(!may4(Build.ipv4(proto: 1, frag: 0x4000, Build.icmp(type: 11, code: 0))))
        #expect(!may4(Build.ipv4(proto: 17, frag: 0x0010, udp)))                  // a later fragment
        #expect(!may4(Build.ipv4(src: 0, proto: 17, udp)))
        #expect(!may4(Build.ipv4(src: 0x7f00_0001, proto: 17, udp)))
        #expect(!may4(Build.ipv4(src: 0xe000_0001, proto: 17, udp)))
        #expect(!may4(Build.ipv4(dst: 0xe000_00fb, proto: 17, udp)))
        #expect(!may4(Build.ipv4(dst: 0xffff_ffff, proto: 17, udp)))
        #expect(may6(Build.ipv6(next: 17, udp)))
        #expect(may6(Build.ipv6(next: 58, Build.icmpv6(type: 128, code: 0))))
        #expect(!may6(Build.ipv6(next: 58, Build.icmpv6(type: 1, code: 4))))
        #expect(!may6(Build.ipv6(src: V6(high: 0, low: 0), next: 17, udp)))
        #expect(!may6(Build.ipv6(src: V6(high: 0xff02_0000_0000_0000, low: 1), next: 17, udp)))
        #expect(!may6(Build.ipv6(dst: V6(high: 0xff02_0000_0000_0000, low: 1), next: 17, udp)))
    }

    /// RFC 791 §3.1: only options with the copied flag go into later fragments.
    @Test func laterFragmentsCarryOnlyCopiedOptions() {
        // Record route (7, not copied), NOP, security-like option 0x82 (copied), end of list.
        let options: [UInt8] = [7, 7, 4, 0, 0, 0, 0, 1, 0x82, 4, 0xaa, 0xbb, 0, 0, 0, 0]
        let ip = Build.ipv4(proto: 17, options: options, Build.udp([9, 9, 9]))
        var out = [UInt8](repeating: 0xee, count: 60)
        let n = ip.withUnsafeBytes { p in
            out.withUnsafeMutableBytes { IPv4Fragmentation.laterFragmentHeader(p.baseAddress!, headerLength: 36, into: $0.baseAddress!) }
        }
        #expect(n == 24)
        #expect(out[0] == 0x46)
        #expect(Array(out[1..<20]) == Array(ip[1..<20]))
        #expect(Array(out[20..<24]) == [0x82, 4, 0xaa, 0xbb])
    }

    @Test func fragmentHeadersGetLengthOffsetFlagsAndChecksum() {
        var ip = Build.ipv4(proto: 17, Build.udp([UInt8](repeating: 0, count: 100)))
        ip.withUnsafeMutableBytes {
            IPv4Fragmentation.finishHeader($0.baseAddress!, headerLength: 20, payloadLength: 48, offset: 96, moreFragments: true)
        }
        #expect(Ref.u16(ip, 2) == 68 && Ref.u16(ip, 6) == 0x2000 | 12)
        #expect(Ref.checksum(Array(ip[0..<20])) == 0)
        #expect(IPv4Fragmentation.payloadPerFragment(maxPacket: 1464, headerLength: 20) == 1440)
        #expect(IPv4Fragmentation.payloadPerFragment(maxPacket: 27, headerLength: 20) == 0)
    }
}
