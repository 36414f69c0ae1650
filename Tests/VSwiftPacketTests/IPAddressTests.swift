import Testing
import VSwiftPacket
import VSwiftTesting

@Suite struct IPAddressTests {
    @Test func ipv4() {
        let a = IPAddress("192.0.2.1")
        #expect(a == IPAddress(ipv4: 0xc000_0201))
        #expect(a?.isIPv4 == true)
        #expect(a?.ipv4 == 0xc000_0201)
        #expect(a?.high == 0 && a?.low == 0x0000_ffff_c000_0201)
        #expect(a?.description == "192.0.2.1")
        #expect(IPAddress("0.0.0.0")?.description == "0.0.0.0")
        #expect(IPAddress("255.255.255.255")?.ipv4 == 0xffff_ffff)
        #expect(IPAddress("10.0.0.255")?.description == "10.0.0.255")
    }

    @Test(arguments: ["", "1", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.256", "01.2.3.4", "1.2.3.04", "1..3.4",
                      ".1.2.3", "1.2.3.", "a.b.c.d", "1.2.3.4 ", " 1.2.3.4", "1.2.3.-4", "1234.1.1.1", "1.2.3.4/24"])
    func badIPv4(_ text: String) {
        #expect(IPAddress(text) == nil, "\(text)")
    }

    @Test(arguments: [
        // input, (high, low), canonical
        ("::", 0, 0, "::"),
        ("::1", 0, 1, "::1"),
        ("1::", 0x0001_0000_0000_0000, 0, "1::"),
        ("2001:db8::1", 0x2001_0db8_0000_0000, 1, "2001:db8::1"),
        ("2001:DB8:0:0:0:0:0:1", 0x2001_0db8_0000_0000, 1, "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", 0x2001_0db8_0000_0000, 1, "2001:db8::1"),
        ("0:0:0:0:0:0:0:0", 0, 0, "::"),
        ("1:2:3:4:5:6:7:8", 0x0001_0002_0003_0004, 0x0005_0006_0007_0008, "1:2:3:4:5:6:7:8"),
        // A single zero group is not compressed (RFC 5952 §4.2.2).
        ("2001:db8:0:1:1:1:1:1", 0x2001_0db8_0000_0001, 0x0001_0001_0001_0001, "2001:db8:0:1:1:1:1:1"),
        ("::2:3:4:5:6:7:8", 0x0000_0002_0003_0004, 0x0005_0006_0007_0008, "0:2:3:4:5:6:7:8"),
        ("1:2:3:4:5:6:7::", 0x0001_0002_0003_0004, 0x0005_0006_0007_0000, "1:2:3:4:5:6:7:0"),
        // The longest run wins; of equal runs, the first (§4.2.3).
        ("1:0:0:2:0:0:0:3", 0x0001_0000_0000_0002, 0x0000_0000_0000_0003, "1:0:0:2::3"),
        ("2001:db8:0:0:1:0:0:1", 0x2001_0db8_0000_0000, 0x0001_0000_0000_0001, "2001:db8::1:0:0:1"),
        ("fe80::aBcD:12", 0xfe80_0000_0000_0000, 0x0000_0000_abcd_0012, "fe80::abcd:12"),
        // Embedded dotted quads.
        ("::ffff:192.0.2.1", 0, 0x0000_ffff_c000_0201, "192.0.2.1"),
        ("::FFFF:255.255.255.255", 0, 0x0000_ffff_ffff_ffff, "255.255.255.255"),
        ("::192.0.2.1", 0, 0xc000_0201, "::c000:201"),
        ("64:ff9b::192.0.2.33", 0x0064_ff9b_0000_0000, 0xc000_0221, "64:ff9b::c000:221"),
        ("1:2:3:4:5:6:1.2.3.4", 0x0001_0002_0003_0004, 0x0005_0006_0102_0304, "1:2:3:4:5:6:102:304"),
    ] as [(String, UInt64, UInt64, String)])
    func ipv6(_ text: String, _ high: UInt64, _ low: UInt64, _ canonical: String) throws {
        let a = try #require(IPAddress(text), "\(text)")
        #expect(a.high == high && a.low == low, "\(text)")
        #expect(a.description == canonical, "\(text)")
        #expect(IPAddress(canonical) == a, "\(text)")
    }

    @Test(arguments: [":", ":::", "1:::2", "1::2::3", ":1::", ":1:2:3:4:5:6:7:8", "1::2:", "1:2:3:4:5:6:7:8:",
                      "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8", "12345::",
                      "g::", "::1.2.3", "1.2.3.4::", "::1.2.3.4:5", "::1.2.3.04", "fe80::1%eth0", "[::1]",
                      "1:2:3:4:5:6:7:1.2.3.4", "::ffff:256.0.0.1", ":: ", "1: :2"])
    func badIPv6(_ text: String) {
        #expect(IPAddress(text) == nil, "\(text)")
    }

    @Test func storeAndLoad() {
        let a = IPAddress("2001:db8:1:2:3:4:5:6")!
        #expect(a.bytes == [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6])
        var buffer = [UInt8](repeating: 0xee, count: 18)
        buffer.withUnsafeMutableBytes { a.store(to: $0.baseAddress! + 1) }
        #expect(buffer[0] == 0xee && buffer[17] == 0xee)
        #expect(Array(buffer[1..<17]) == a.bytes)
        let b = buffer.withUnsafeBytes { IPAddress(loadingFrom: $0.baseAddress! + 1) }
        #expect(b == a)
        #expect(IPAddress(ipv4: 0x0102_0304).bytes == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4])
    }

    /// Printing then parsing gives the same address, for addresses with many zero patterns.
    @Test func roundTrip() {
        var rng = SplitMix64(seed: TestSeed.resolve(21))
        let replay = TestSeed.replay(rng.seed)
        for _ in 0..<2000 {
            var groups: [UInt64] = []
            for _ in 0..<8 { groups.append(Bool.random(using: &rng) ? 0 : UInt64.random(in: 0...0xffff, using: &rng)) }
            let a = IPAddress(high: groups[0..<4].reduce(0) { $0 << 16 | $1 }, low: groups[4..<8].reduce(0) { $0 << 16 | $1 })
            let text = a.description
            #expect(IPAddress(text) == a, "\(text) \(replay)")
            #expect(!text.contains(":::"), "\(replay)")
            #expect(text == text.lowercased(), "\(replay)")
        }
    }
}
