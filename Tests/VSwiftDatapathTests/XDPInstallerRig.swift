import Glibc
import Testing
@testable import VSwiftDatapath
import VSwiftFlowCache
import VSwiftPacket

/// What the installer suites' rigs share (XDPFlowCacheInstallerTests, the LISP revalidation and
/// decap wiring suites, the capture and forget suites, and the redirect-target suites that borrow
/// their rigs): the installer against the real redirect program (BPF_PROG_RUN, no live frames)
/// over one cache (1024 entries unless said, 16 port slots), one worker's hand-over and forget
/// rings, and lo in the DEVMAP slots the entries redirect to. Each suite's `Rig` subclasses it
/// with its table and ports; the equivalence properties use it as it is.
class XDPInstallerRig {
    let cache: XDPFlowCache
    let program: XDPFlowCacheProgram
    let ring: FlowCacheKeyRing
    let installer: XDPFlowCacheInstaller
    /// The worker's forget ring (the installer's own when no worker was given: nothing drains it).
    var forgets: FlowCacheKeyRing { installer.forgets[0] }

    /// `outputs`: the slots whose DEVMAP entries are lo; `inPort`: the slot the program's frames
    /// arrive on; `worker`: whose rings the installer serves (a PipelineHarness worker), else rings
    /// of the rig's own (nothing drains the forget ring).
    init(capacity: Int = 1024, outputs: [PortSlot], inPort: PortSlot, worker: Worker? = nil) throws {
        let path = try #require(BPFObjects.locate(BPFObjects.redirect), "run scripts/build.sh and set VSWIFT_BPF_DIR")
        cache = try XDPFlowCache(capacity: capacity, portSlots: 16)
        try cache.setEnabled(true)
        for output in outputs { try cache.setPort(slot: UInt32(output.rawValue), ifindex: UInt32(if_nametoindex("lo"))) }
        program = try XDPFlowCacheProgram(objectPath: path, cache: cache, inPort: XDPFlowCacheTranslation.inPortID(inPort))
        ring = worker?.flowCacheRequests ?? FlowCacheKeyRing()
        installer = XDPFlowCacheInstaller(cache: cache, rings: [ring], forgets: worker.map { [$0.flowCacheForgets] })
    }

    /// What a worker does on a classifier miss (bridge 0, classified with the table of
    /// `version`): the key handed over through its ring, then one pass of the installer thread.
    func handOver(_ key: FlowKey, version: UInt64) {
        guard let slot = ring.reserve() else {
            Issue.record("the hand-over ring is full: a rig's test hands over one key at a time")
            return
        }
        slot.pointee.key = key
        slot.pointee.version = version
        slot.pointee.bridge = 0
        ring.commit()
        installer.runOnce(fold: false)
    }

    /// The miss of `frame` arriving on OpenFlow port `inPort`.
    func miss(_ frame: [UInt8], version: UInt64, inPort: UInt32 = 1) {
        var key = FlowKey()
        frame.withUnsafeBytes { FlowExtractor.extract($0.baseAddress!, length: $0.count, inPort: inPort, into: &key) }
        handOver(key, version: version)
    }

    func run(_ frame: [UInt8]) throws -> XDPTestRun.Result {
        try XDPTestRun.run(programFD: program.programFD, frame: frame)
    }
}
