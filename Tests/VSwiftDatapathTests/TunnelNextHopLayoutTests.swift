import Testing
import VSwiftPacket
@testable import VSwiftDatapath

/// The packet path reads one cache line of a next hop (Tunnel.swift, `TunnelNextHop`): its first 64
/// bytes hold everything encapsulation reads, entries are 128 bytes apart, the table 64-aligned.
@Suite("Tunnel next hop: the packet path's fields are one cache line")
struct TunnelNextHopLayoutTests {
    @Test func thePacketPathFieldsAreTheFirst64Bytes() throws {
        #expect(MemoryLayout<TunnelNextHop>.stride == 128)
        #expect(MemoryLayout<TunnelNextHop>.offset(of: \.parameters) == 0)
        let hot: [(Int?, Int)] = [
            (MemoryLayout<TunnelNextHop>.offset(of: \.parameters), MemoryLayout<LISP.EncapsulationParameters>.size),
            (MemoryLayout<TunnelNextHop>.offset(of: \.status), MemoryLayout<TunnelNextHop.Status>.size),
            (MemoryLayout<TunnelNextHop>.offset(of: \.egressPort), MemoryLayout<PortSlot>.size),
            (MemoryLayout<TunnelNextHop>.offset(of: \.egressBridge), MemoryLayout<BridgeSlot>.size),
            (MemoryLayout<TunnelNextHop>.offset(of: \.mtu), MemoryLayout<UInt32>.size),
        ]
        for (offset, size) in hot {
            let offset = try #require(offset)
            #expect(offset + size <= 64)
        }
    }

    @Test func theTableIsCacheLineAligned() {
        let table = TunnelNextHopTable()
        #expect(UInt(bitPattern: table.entries) % 64 == 0)
    }
}
