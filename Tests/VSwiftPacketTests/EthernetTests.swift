import Testing
import VSwiftPacket

@Suite("Ethernet header access")
struct EthernetTests {
    @Test func readsAndWritesAddressesInPlace() {
        var frame: [UInt8] = [0x52, 0x54, 0x00, 0x1b, 0xea, 0xd5, 0x02, 0, 0, 0, 0, 0, 0x08, 0x00, 0x45]
        frame.withUnsafeMutableBytes { raw in
            let p = raw.baseAddress!
            #expect(Ethernet.destination(p) == 0x5254_001b_ead5)
            #expect(Ethernet.source(p) == 0x0200_0000_0000)
            #expect(Ethernet.etherType(p) == 0x0800)
            Ethernet.setDestination(p, 0x5254_00b8_2775)
            Ethernet.setSource(p, 0xffff_ffff_ffff)
        }
        #expect(Array(frame[0..<12]) == [0x52, 0x54, 0x00, 0xb8, 0x27, 0x75, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
        #expect(Array(frame[12...]) == [0x08, 0x00, 0x45])
    }

    @Test func groupBit() {
        #expect(Ethernet.isGroup(Ethernet.broadcast))
        #expect(Ethernet.isGroup(0x0100_5e00_0001))
        #expect(Ethernet.isGroup(0x3333_0000_0001))
        #expect(!Ethernet.isGroup(0x5254_00b8_2775))
        #expect(!Ethernet.isGroup(0x0200_0000_0000))
    }
}
