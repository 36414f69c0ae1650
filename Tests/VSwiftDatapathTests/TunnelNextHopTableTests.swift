import Testing
import VSwiftPacket
@testable import VSwiftDatapath

/// The workers' next-hop table (remote_ip=flow can ask for any number of remotes).
@Suite("Tunnel next-hop table")
struct TunnelNextHopTableTests {
    func hop(_ n: Int, port: UInt16 = LISP.udpPort) -> TunnelNextHop {
        TunnelNextHop(remote: IPAddress(ipv4: 0x0a00_0000 | UInt32(n)), local: IPAddress(), udpPort: port, status: .resolved)
    }

    @Test func findsWhatWasInsertedAndNothingElse() {
        let table = TunnelNextHopTable()
        for n in 0..<1_000 { #expect(table.insert(hop(n)) >= 0) }
        for n in 0..<1_000 {
            let h = hop(n)
            let (index, found) = table.find(h.remote, local: h.local, udpPort: h.udpPort)
            #expect(found && table.entries[index].remote == h.remote)
        }
        // Another remote, or the same remote on another UDP port, is not there.
        #expect(!table.find(hop(5_000).remote, local: IPAddress(), udpPort: LISP.udpPort).found)
        #expect(!table.find(hop(1).remote, local: IPAddress(), udpPort: 4342).found)
        // Inserting again replaces in place.
        let again = hop(7)
        #expect(table.insert(again) == table.find(again.remote, local: again.local, udpPort: again.udpPort).index)
    }

    @Test func aRemoteWithNoFreeSlotNearItsHashIsRefusedAndNoneIsLost() {
        let table = TunnelNextHopTable()
        var kept: [Int] = [], refused: [Int] = []
        for n in 0..<TunnelNextHopTable.capacity {
            if table.insert(hop(n)) >= 0 { kept.append(n) } else { refused.append(n) }
        }
        // As many remotes as slots: a key may use only the few slots after its hash, so some are
        // refused while slots are still free (a search of the whole table would take them all).
        #expect(kept.count < TunnelNextHopTable.capacity && kept.count > TunnelNextHopTable.capacity / 2)
        #expect(!refused.isEmpty)
        for n in kept { #expect(table.find(hop(n).remote, local: IPAddress(), udpPort: LISP.udpPort).found) }
        for n in refused {
            let (index, found) = table.find(hop(n).remote, local: IPAddress(), udpPort: LISP.udpPort)
            #expect(!found && index == -1)
        }
        table.clear()
        #expect(table.insert(hop(refused[0])) >= 0)
    }
}
