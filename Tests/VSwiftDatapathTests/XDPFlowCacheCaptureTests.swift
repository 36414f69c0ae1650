import Glibc
import Testing
import VSwiftClassifier
import VSwiftFlowCache
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftDatapath

/// A capture keeps its port out of every entry, and only its port: starting it takes out the
/// entries that touch the port (they wait), the bridge's other entries stay in, and stopping it
/// puts the waiting ones back without a new miss — the workers' exact-match caches hold those
/// flows, so they would not ask again (DESIGN.md, "Wiring", *Changes*). The installer and the real
/// maps (`XDPInstallerRig`).
@Suite(.serialized) struct XDPFlowCacheCaptureTests {
    static let ports: [UInt32: XDPCachePortInfo] = [1: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 1),
                                                    2: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 2),
                                                    3: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 3)]
    static let ofport: [PortSlot: UInt32] = [1: 1, 2: 2, 3: 3]

    /// The rig over a bridge 0 of `flows` (ports 1, 2, 3 in slots 1, 2, 3), and the table's version.
    static func rig(_ flows: [String]) throws -> (XDPInstallerRig, UInt64) {
        let rig = try XDPInstallerRig(capacity: 64, outputs: [], inPort: 1)
        let slots: [OpenFlowPortNumber: PortSlot] = [1: 1, 2: 2, 3: 3]
        let table = try CompiledFlowTable(rules: try PipelineHarness.rules(flows), portSlot: { slots[$0] })
        rig.installer.refresh(bridge: 0, table: table, ports: Self.ports, ofport: Self.ofport)
        return (rig, table.classifier.version)
    }

    /// The input ports of the installed entries.
    static func inputs(_ installer: XDPFlowCacheInstaller) -> [UInt64] {
        installer.snapshot().map { $0.entry.flow.maskedKey.get(.inPort) }.sorted()
    }

    @Test func aCaptureTakesOutOnlyItsPortsEntriesAndTheyComeBackWhenItStops() throws {
        let (rig, version) = try Self.rig(["priority=10,in_port=1,ip,actions=output:2", "priority=10,in_port=3,ip,actions=drop"])
        let installer = rig.installer
        rig.miss(Build.ipv4UDP(), version: version, inPort: 1)
        rig.miss(Build.ipv4UDP(), version: version, inPort: 3)
        #expect(Self.inputs(installer) == [1, 3])

        // A capture on port 2: the entry that outputs to it goes, port 3's drop stays in.
        installer.setCapturing(2, true)
        #expect(Self.inputs(installer) == [3], "only the entry touching the captured port goes")
        // A second capture on the same port changes nothing.
        installer.setCapturing(2, true)
        #expect(Self.inputs(installer) == [3])
        installer.setCapturing(2, false)
        #expect(Self.inputs(installer) == [3], "one capture still runs")

        // The last capture stops: the entry is back without a new miss.
        installer.setCapturing(2, false)
        #expect(Self.inputs(installer) == [1, 3])
        #expect(installer.statistics.requests == 2)
    }

    @Test func aMissDuringACaptureWaitsForItToStop() throws {
        let (rig, version) = try Self.rig(["priority=10,in_port=1,ip,actions=output:2"])
        let installer = rig.installer
        installer.setCapturing(1, true)
        rig.miss(Build.ipv4UDP(), version: version, inPort: 1)
        #expect(installer.entryCount == 0, "a capturing port is in no entry")
        #expect(installer.statistics.notCacheable == 1)
        installer.setCapturing(1, false)
        #expect(Self.inputs(installer) == [1], "installed when the capture stops")
    }
}
